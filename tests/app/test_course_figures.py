"""The course's live figures and their captions are in the session's language: in a Chinese session no English
word is left in a lesson's figure or caption, whichever option the learner picks, only names and notation."""
import re

import pytest
from page_helpers import figure_texts, latin_words

from attnviz.app.course import LESSONS
from attnviz.data.tokenizers import SPECIAL_LABELS
from attnviz.training import checkpoint_folder

# Names and notation a Chinese figure or caption keeps: architectures, the symbols of the formulas, and the special
# tokens (<eos> in a hover is HTML-escaped: &lt;eos&gt;)
NAMES = {"Transformer", "LSTM", "RNN", "CNN", "Bahdanau", "tanh", "softmax", "ln", "logit", "PAD", "d_k", "d_model",
         "i_t", "f_t", "o_t", "g_t", "c_t", "h_t", "p_i", "s_j", "lt", "gt",
         *(label.strip("<>") for label in SPECIAL_LABELS)}


def model_names():
    """The words of the shipped models' names (reverse-lstm), which captions name as they are."""
    return {word for path in checkpoint_folder.SHIPPED_DIR.iterdir() for word in re.findall(r"[A-Za-z_]+", path.name)}


def lesson_states():
    """(lesson slug, its input values): the defaults, and each option of each choice with the other defaults."""
    for lesson in LESSONS:
        yield lesson.slug, lesson.defaults()
        for choice in (i for i in lesson.inputs if i.options):
            for option in choice.options:
                if option != choice.default:
                    yield f"{lesson.slug}-{option}", {**lesson.defaults(), choice.key: option}


@pytest.mark.parametrize("slug, values", list(lesson_states()), ids=[slug for slug, _values in lesson_states()])
def test_a_lesson_figure_and_its_caption_are_chinese(slug, values, chinese):
    lesson = next(lesson for lesson in LESSONS if slug.startswith(lesson.slug))
    drawn = lesson.figure(values)
    given = latin_words(str(value) for value in values.values())  # the learner's own text
    allowed = NAMES | model_names() | given
    prose = re.sub(r"(`+)(.+?)\1", " ", drawn.caption)  # without code spans: what the model wrote (``a`b``)
    assert latin_words(figure_texts(drawn.figure)) <= allowed
    assert latin_words([prose]) <= allowed, prose
    assert re.search(r"[\u4e00-\u9fff]", prose)  # Chinese, not only names and numbers
