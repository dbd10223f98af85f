"""Corpora that ship with Python: deterministic, docstrings read without importing, splits by document."""
import ast

import pytest

from attnviz.data import stdlib
from attnviz.data.tasks import make_task


def test_source_files_leave_tests_out_and_are_sorted():
    files = stdlib.source_files()
    assert files == tuple(sorted(files)) and len(files) > 300
    assert not any("test" in path.parts or path.name.startswith("test_") for path in files)


def test_docstrings_come_from_the_source_in_order():
    tree = ast.parse('"""A module docstring long enough to be kept here."""\n'
                     'def f():\n    """Short."""\n'
                     'class C:\n    """A class docstring that is long enough as well."""\n')
    assert stdlib.docstrings(tree) == ["A module docstring long enough to be kept here.",
                                       "A class docstring that is long enough as well."]


def test_prose_documents_are_deterministic_and_each_docstring_is_used_once():
    documents = stdlib.prose_documents()
    keys = [key for key, _ in documents]
    assert len(keys) == len(set(keys)) and keys[0].startswith("topic:")
    paragraphs = [p for key, text in documents if key.startswith("doc:") for p in text.split("\n\n")]
    assert len(paragraphs) > 1000
    stdlib.prose_documents.cache_clear()
    assert stdlib.prose_documents() == documents  # collected again, the same


def test_code_documents_stay_in_the_budget_and_are_real_python():
    documents = stdlib.code_documents()
    assert sum(len(text) for _, text in documents) <= stdlib.CODE_BUDGET
    for _, text in documents[:20]:
        ast.parse(text)


@pytest.mark.parametrize("name", ["prose", "code"])
def test_splits_are_by_document(name):
    task = make_task(name, seed=0)
    documents = stdlib.prose_documents() if name == "prose" else stdlib.code_documents()
    tokenizer = task.tokenizer
    block_to_split = {}
    for split in ("train", "val", "test"):
        for block in task.examples(split):
            block_to_split.setdefault(block, set()).add(split)
    # every document's blocks land in one split (a block of text that two documents share is left out)
    for _, text in documents[:60]:
        ids = tokenizer.encode(text)
        blocks = [tuple(ids[i:i + 128]) for i in range(0, len(ids), 128) if len(ids) - i >= 2]
        splits = set().union(*(block_to_split[b] for b in blocks if len(block_to_split.get(b, ())) == 1))
        assert len(splits) <= 1
    assert task.characters("test") > 10_000


def test_a_corpus_of_another_python_says_so():
    assert stdlib.differs_from_here(stdlib.CORPUS_PYTHON) == stdlib.differs_from_here(stdlib.CORPUS_PYTHON + ".9") == ""
    assert stdlib.differs_from_here(None) == ""
    assert "3.99" in stdlib.differs_from_here("3.99")
