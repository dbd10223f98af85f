"""Corpora that every Python install carries: English prose (the documentation topics and the docstrings of the
standard library) and Python source (the standard library's own modules, tests left out).

Nothing is imported to collect them: docstrings are read with `ast` from the source files, so no module's import
side effects run. The documents come in a fixed order (sorted by path, docstrings de-duplicated), so every machine
with the same Python minor version builds the same corpus; `CORPUS_PYTHON` is that version, which a checkpoint
records (`differs_from_here` says when it was built on another one).

    documents = prose_documents()     # [(key, text)]: one per documentation topic, one per module's docstrings
    documents = code_documents()      # [(key, text)]: one per source file, CODE_BUDGET characters in all
"""
import ast
import hashlib
import inspect
import platform
import sysconfig
from functools import cache
from pathlib import Path

from attnviz.i18n import _

CORPUS_PYTHON = ".".join(platform.python_version_tuple()[:2])  # e.g. "3.11"
STDLIB_TASKS = ("prose", "code")  # the tasks built from these corpora (attnviz.data.tasks)
SKIPPED_PARTS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "test_tools"}
GENERATED_PARTS = {"encodings", "pydoc_data"}  # codec tables and the topics dump: data written as code
MIN_DOCSTRING_CHARS = 40  # "Return self." and the like say nothing a model can learn from
MAX_CODE_FILE_CHARS = 60_000  # a few generated tables are larger; they are not code worth reading
CODE_BUDGET = 2_500_000  # characters of source for the code corpus (tokenizing and training stay quick)


def stdlib_root():
    return Path(sysconfig.get_paths()["stdlib"])


@cache
def source_files():
    """Relative paths of the standard library's .py files, sorted, without tests and third-party packages."""
    root = stdlib_root()
    files = [path.relative_to(root) for path in root.rglob("*.py")]
    return tuple(sorted(path for path in files if not SKIPPED_PARTS & set(path.parts) and
                        not path.name.startswith("test_")))


def read_source(path):
    """The text of one standard library file, or None if it is not UTF-8 or does not parse."""
    try:
        text = (stdlib_root() / path).read_text(encoding="utf-8")
        return text, ast.parse(text)
    except (UnicodeDecodeError, SyntaxError, ValueError):
        return None


def docstrings(tree):
    """The docstrings of a module, its classes and functions, in the order they appear, cleaned of indentation."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=False)
            if text and len(text.strip()) >= MIN_DOCSTRING_CHARS:
                found.append(inspect.cleandoc(text))
    return found


def pydoc_topics():
    """[(key, text)] of the documentation topics (pydoc_data.topics), sorted by name."""
    from pydoc_data.topics import topics
    return [(f"topic:{key}", topics[key]) for key in sorted(topics)]


@cache
def prose_documents():
    """The documentation topics, then one document per module: its docstrings, each used once in the corpus."""
    seen, documents = set(), list(pydoc_topics())
    for path in source_files():
        source = read_source(path)
        if source is None:
            continue
        fresh = [text for text in docstrings(source[1]) if text not in seen]
        seen.update(fresh)
        if fresh:
            documents.append((f"doc:{path.as_posix()}", "\n\n".join(fresh)))
    return tuple(documents)


def spread_order(path):
    """A fixed order that mixes the library's packages (sorted by path alone, a budget would fill up on a-e)."""
    return hashlib.sha256(path.as_posix().encode()).hexdigest()


@cache
def code_documents(budget=CODE_BUDGET):
    """Standard library source files, whole, in `spread_order` until `budget` characters are collected; then
    sorted by path."""
    documents, total = [], 0
    for path in sorted(source_files(), key=spread_order):
        if GENERATED_PARTS & set(path.parts):
            continue
        source = read_source(path)
        if source is None or len(source[0]) > MAX_CODE_FILE_CHARS or not source[0].strip():
            continue
        if total + len(source[0]) > budget:
            break
        documents.append((f"src:{path.as_posix()}", source[0]))
        total += len(source[0])
    return tuple(sorted(documents))


def differs_from_here(python_version):
    """A sentence for the user when a corpus was built with another Python minor version, else ''."""
    python_version = ".".join(str(python_version or "").split(".")[:2])  # a checkpoint records e.g. "3.11.7"
    if python_version and python_version != CORPUS_PYTHON:
        return _("This model's corpus was collected from Python {version}'s standard library; this server runs "
                 "Python {here}, whose documents differ a little, so its splits are not exactly the ones it was "
                 "trained and tested on.").format(version=python_version, here=CORPUS_PYTHON)
    return ""
