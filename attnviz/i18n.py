"""English and 简体中文: every user-facing string goes through gettext, with one catalog per language.

    from attnviz.i18n import _, N_
    st.title(_("Attention explorer"))
    TITLE = N_("Attention explorer")  # a module-level string: marked for extraction, translated where it is shown

Catalogs are gettext `.po` files, `attnviz/locale/<language>/LC_MESSAGES/attnviz.po`, kept up to date with Babel
(README, "Translations") and compiled by Babel when a language is first used, so no compiled `.mo` file can go
stale in the repository. English is the source language: its messages are the msgids themselves.

The language belongs to a session, not to the process: `use_language` sets it in a context variable at the top of
every page run (Streamlit runs each rerun in a thread of its own, which starts from a fresh context), so students
reading different languages on one server never see each other's.
"""
import contextvars
import functools
import gettext
import io
from pathlib import Path

from babel.messages import mofile, pofile

LANGUAGES = {"en": "English", "zh": "简体中文"}
SOURCE_LANGUAGE = "en"
DOMAIN = "attnviz"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
_language = contextvars.ContextVar("attnviz_language", default=SOURCE_LANGUAGE)


def N_(message):
    """Marks `message` for the catalog without translating it (module-level tables are built before any session)."""
    return message


def catalog_path(language):
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language):
    """The compiled catalog of `language` (English: the messages as they are)."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalog for language {language!r}: choose one of {', '.join(LANGUAGES)}")
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    with catalog_path(language).open("rb") as po:
        catalog = pofile.read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    mofile.write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def use_language(language):
    """Translate the rest of this session's page run into `language` (a key of LANGUAGES)."""
    translations(language)  # refuses an unknown language before it is set
    _language.set(language)


def current_language():
    return _language.get()


def _(message):
    """`message` in the current session's language."""
    return translations(_language.get()).gettext(message)


def ngettext(singular, plural, n):
    """The singular or plural of a message with a count, in the current session's language."""
    return translations(_language.get()).ngettext(singular, plural, n)


def preferred_language(preferences):
    """The first language of LANGUAGES in a browser's preferences, else English: `preferences` is navigator.language
    ("zh-CN") or an Accept-Language header ("zh-CN,zh;q=0.9,en;q=0.8"), or None."""
    weighted = []
    for position, part in enumerate((preferences or "").split(",")):
        tag, _semicolon, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        weighted.append((-weight, position, tag.split("-")[0].lower()))
    return next((language for *_order, language in sorted(weighted) if language in LANGUAGES), SOURCE_LANGUAGE)


class Message(str):
    """Text made where no session's language is set (a training worker, a run's own thread): English as a str, which
    also keeps its msgid and values, so that the page that shows it can put it into its session's language
    (`translate`). Values may be Messages themselves; it pickles across processes like the str it is.

        result.error = Message(N_("the loss became {loss} at step {step}"), loss=loss, step=step)
    """

    def __new__(cls, msgid, /, **values):
        message = super().__new__(cls, msgid.format(**values))
        message.msgid, message.values = msgid, values
        return message

    def __getnewargs_ex__(self):
        return (self.msgid,), self.values


def translate(text):
    """`text` in the current session's language if it is a `Message`; any other text as it is."""
    if not isinstance(text, Message):
        return text
    return _(text.msgid).format(**{name: translate(value) for name, value in text.values.items()})
