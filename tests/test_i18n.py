"""Translations: the catalog covers every message in the source, keeps its placeholders and markup, the language
is per session, and the browser's preference picks the first language."""
import re
import threading
from pathlib import Path

import pytest
from babel.messages import pofile
from babel.messages.extract import extract_from_dir

from attnviz import i18n
from attnviz.i18n import LANGUAGES, SOURCE_LANGUAGE, catalog_path, preferred_language

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def source_messages():
    """Every message the code marks for translation (app.py, pages/, attnviz/), found by Babel's own extractor."""
    method_map = [("tests/**", "ignore"), (".venv/**", "ignore"), ("**.py", "python")]
    return {message for _file, _line, message, _comments, _context in extract_from_dir(ROOT, method_map, KEYWORDS)}


def read_catalog(language):
    with catalog_path(language).open("rb") as po:
        return pofile.read_po(po, locale=language)


def singular(message_id):
    """A message's id as the catalog keys it: the message itself, or the singular of an ngettext pair."""
    return message_id if isinstance(message_id, str) else message_id[0]


def forms(translation):
    """The translated forms of a message: one, or one per plural form of an ngettext pair."""
    return [translation] if isinstance(translation, str) else list(translation)


def placeholders(text):
    """The str.format fields of a message ({device}); LaTeX braces like \\frac{QK}{d} are not fields."""
    return sorted(re.findall(r"(?<![\\}^_])\{([a-z_]+)\}", text))


MARKUP = re.compile(r"\*\*|`|\$\$?|\\[a-z]+|\{[a-z_]*\}")  # bold, code, maths and LaTeX commands, placeholders


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE])
def test_every_message_has_a_translation_with_the_same_placeholders_and_markup(language):
    catalog = read_catalog(language)
    translated = {singular(message.id): forms(message.string) for message in catalog if message.id}
    messages = source_messages()
    assert messages, "the extractor found no message"
    missing = sorted((m for m in messages if not all(translated.get(singular(m), [""]))), key=singular)
    assert not missing, f"{len(missing)} messages have no {language} translation, e.g. {missing[:3]}"
    for message in messages:
        source = singular(message)
        for target in translated[source]:
            assert placeholders(target) == placeholders(source), source
            assert sorted(MARKUP.findall(target)) == sorted(MARKUP.findall(source)), source


def test_no_translation_is_kept_for_a_message_the_code_no_longer_has():
    messages = {singular(m) for m in source_messages()}
    for language in LANGUAGES:
        if language != SOURCE_LANGUAGE:
            stale = sorted(singular(m.id) for m in read_catalog(language) if m.id and singular(m.id) not in messages)
            assert not stale, f"{language}: stale entries (run pybabel update): {stale[:3]}"


def test_translations_are_chinese():
    i18n.use_language("zh")
    try:
        assert i18n._("Attention explorer") == "注意力浏览器"
        assert i18n._("Positional encodings") == "位置编码"  # the seed's term
        assert i18n._("Trains on {device}").format(device="CPU") == "训练设备：CPU"
    finally:
        i18n.use_language(SOURCE_LANGUAGE)
    assert i18n._("Attention explorer") == "Attention explorer"


def test_each_thread_keeps_its_own_language():
    """Streamlit runs every session's page in a thread of its own: one session's language never leaks to another."""
    seen, barrier = {}, threading.Barrier(2, timeout=30)

    def session(language):
        i18n.use_language(language)
        barrier.wait()  # both languages are set before either reads
        seen[language] = [i18n._("Home") for _ in range(200)]

    threads = [threading.Thread(target=session, args=(language,)) for language in ("en", "zh")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert seen == {"en": ["Home"] * 200, "zh": ["首页"] * 200}


@pytest.mark.parametrize("preferences, language", [
    ("zh-CN", "zh"), ("zh-TW", "zh"), ("en-US", "en"), ("fr-FR", "en"), (None, "en"), ("", "en"),
    ("fr-FR,zh-CN;q=0.9,en;q=0.8", "zh"), ("en;q=0.5,zh;q=0.9", "zh"), ("de,en;q=0.7", "en"), ("zh;q=oops,en", "en"),
])
def test_browser_preference(preferences, language):
    assert preferred_language(preferences) == language


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="no catalog"):
        i18n.use_language("xx")
