"""Checks that turn an impossible setting into a ValueError naming the field and the fix.

Shared by every layer that validates what a user typed: model configs, training configs, task parameters and text.
Messages come in the session's language (attnviz.i18n); the field names in them (d_model, n_heads) are code.
"""
from attnviz.i18n import N_, _, ngettext


class SettingError(ValueError):
    """A setting that cannot work, naming its field, so that a form can show the message next to that field.
    `fix` is already in the session's language: `reject("d_model", 63, _("use an even number"))`."""

    def __init__(self, field, value, fix):
        super().__init__(_("{field}={value} is not possible: {fix}").format(field=field, value=repr(value), fix=fix))
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
            reject(name, value, _("use a whole number of {minimum} or more").format(minimum=minimum)
                   if maximum is None else _("use a whole number of {minimum} or more and at most {maximum}").format(
                       minimum=minimum, maximum=f"{maximum:,}"))


def check_number(config, name, low, high, fix, low_open=False, high_open=False):
    """A real number within [low, high] (an open end excludes the bound itself)."""
    value = getattr(config, name)
    if not is_number(value) or value != value or not (
            (low < value if low_open else low <= value) and (value < high if high_open else value <= high)):
        reject(name, value, fix)


def check_choice(config, name, choices):
    value = getattr(config, name)
    if not isinstance(value, str) or value not in choices:
        reject(name, value, _("choose one of {choices}").format(choices=", ".join(choices)))


def check_bool(config, names):
    for name in names:
        if not isinstance(getattr(config, name), bool):
            reject(name, getattr(config, name), _("use True or False"))


def check_text(text):
    """`text`, if it is a str that UTF-8 can hold; a ValueError otherwise (tokenizers fail on anything else)."""
    if not isinstance(text, str):
        raise ValueError(_("a tokenizer reads text, not a {kind}").format(kind=type(text).__name__))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate, which no file or text box can hold
        raise ValueError(_("the text has an invalid character (lone surrogate) at position {position}").format(
            position=error.start)) from None
    return text


# What every page says about a user's input, so the same input gets the same answer everywhere.

EMPTY_INPUT = N_("The input is empty or only spaces: type something for the model to read.")  # shown as _(EMPTY_INPUT)


def cut_note(n_tokens, kept, max_tokens, what=None):
    """The note for an input cut to its first `max_tokens` tokens (`kept`, the text of those); `what` names the input
    in the session's language (default: "The input")."""
    return _("{what} is {n_tokens} tokens long; only its first {max_tokens} are used (\u201c{kept}\u201d): more than "
             "that per side makes unreadable heatmaps.").format(what=what or _("The input"), n_tokens=n_tokens,
                                                                  max_tokens=max_tokens, kept=kept)


def unknown_note(unknown, unknown_token="<unk>"):
    """The note for characters a tokenizer does not know (`unknown`, a list of them)."""
    return ngettext("The model's tokenizer does not know {characters}: it reads it as {unknown_token}, so expect a "
                    "strange output.",
                    "The model's tokenizer does not know {characters}: it reads them as {unknown_token}, so expect a "
                    "strange output.", len(unknown)).format(characters=", ".join(map(repr, unknown)),
                                                            unknown_token=unknown_token)
