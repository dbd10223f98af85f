"""Checks that turn an impossible setting into a ValueError naming the field and the fix.

Shared by every layer that validates what a user typed: model configs, training configs, task parameters and text.
"""


class SettingError(ValueError):
    """A setting that cannot work, naming its field, so that a form can show the message next to that field."""

    def __init__(self, field, value, fix):
        super().__init__(f"{field}={value!r} is not possible: {fix}")
        self.field, self.value, self.fix = field, value, fix

    def __reduce__(self):  # pickled by its fields: it crosses from a training worker to the server
        return type(self), (self.field, self.value, self.fix)


def reject(field, value, fix):
    raise SettingError(field, value, fix)


def is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_whole(config, names, minimum=1, maximum=None):
    """Each field of `names` is a whole number in [minimum, maximum]."""
    for name in names:
        value = getattr(config, name)
        if not is_whole(value) or value < minimum or (maximum is not None and value > maximum):
            reject(name, value, f"use a whole number of {minimum} or more"
                   + ("" if maximum is None else f" and at most {maximum:,}"))


def check_number(config, name, low, high, fix, low_open=False, high_open=False):
    """A real number within [low, high] (an open end excludes the bound itself)."""
    value = getattr(config, name)
    if not is_number(value) or value != value or not (
            (low < value if low_open else low <= value) and (value < high if high_open else value <= high)):
        reject(name, value, fix)


def check_choice(config, name, choices):
    value = getattr(config, name)
    if not isinstance(value, str) or value not in choices:
        reject(name, value, f"choose one of {', '.join(choices)}")


def check_bool(config, names):
    for name in names:
        if not isinstance(getattr(config, name), bool):
            reject(name, getattr(config, name), "use True or False")


def check_text(text):
    """`text`, if it is a str that UTF-8 can hold; a ValueError otherwise (tokenizers fail on anything else)."""
    if not isinstance(text, str):
        raise ValueError(f"a tokenizer reads text, not a {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate, which no file or text box can hold
        raise ValueError(f"the text has an invalid character (lone surrogate) at position {error.start}") from None
    return text


# What every page says about a user's input, so the same input gets the same answer everywhere.

EMPTY_INPUT = "The input is empty or only spaces: type something for the model to read."


def cut_note(n_tokens, kept, max_tokens, what="The input"):
    """The note for an input cut to its first `max_tokens` tokens (`kept`, the text of those)."""
    return (f"{what} is {n_tokens} tokens long; only its first {max_tokens} are used (\u201c{kept}\u201d): more "
            "than that per side makes unreadable heatmaps.")


def unknown_note(unknown, unknown_token="<unk>"):
    """The note for characters a tokenizer does not know (`unknown`, a list of them)."""
    return (f"The model's tokenizer does not know {', '.join(map(repr, unknown))}: it reads "
            f"{'it' if len(unknown) == 1 else 'them'} as {unknown_token}, so expect a strange output.")
