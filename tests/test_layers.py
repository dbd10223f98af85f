"""The library's layers: every import points down, no module imports itself round a cycle, only the UI package
(attnviz.app.ui) imports streamlit, and pages stay off the model internals. Read from the source, not from the code's
own list."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each layer may import from the layers before it and from itself; models and data are side by side, apart.
LAYERS = [{"checks", "i18n"}, {"models"}, {"data"}, {"decoding"}, {"training"}, {"interpret"}, {"app"},
          {"cli", "bench", "classroom", "cluster", "__main__"}]
APART = {("models", "data"), ("data", "models")}
MODEL_INTERNALS = ("attnviz.models.attention", "attnviz.models.transformer", "attnviz.models.rnn",
                   "attnviz.models.hooks", "attnviz.models.config")


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_files():
    return sorted((ROOT / "attnviz").rglob("*.py"))


def imports_of(path):
    """Every attnviz module a file imports, at the top or inside a function ("from attnviz.x import y" counts
    attnviz.x.y when that is a module, else attnviz.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("attnviz")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("attnviz"):
            for a in node.names:
                candidate = f"{node.module}.{a.name}"
                is_module = (ROOT / Path(*candidate.split("."))).with_suffix(".py").exists() or \
                    (ROOT / Path(*candidate.split(".")) / "__init__.py").exists()
                found.add(candidate if is_module else node.module)
    return found


def layer(module):
    """The layer index of a module (the package `attnviz` itself re-exports the models)."""
    top = module.split(".")[1] if "." in module else "models"
    return next(i for i, names in enumerate(LAYERS) if top in names), top


def test_every_library_module_has_a_layer():
    for path in library_files():
        layer(module_name(path))


def test_every_import_points_down():
    upward = []
    for path in library_files():
        importer = module_name(path)
        if importer == "attnviz":
            continue
        (low, top) = layer(importer)
        for imported in imports_of(path):
            level, other = layer(imported)
            if level > low or (top, other) in APART:
                upward.append(f"{importer} imports {imported}")
    assert not upward, "imports that point up or across: " + "; ".join(upward)


def test_no_import_cycle():
    graph = {module_name(p): {m for m in imports_of(p) if m != module_name(p)} for p in library_files()}
    graph = {m: {n for n in deps if n in graph} for m, deps in graph.items()}
    state = {}

    def visit(module, path):
        state[module] = "open"
        for nxt in sorted(graph[module]):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_a_known_upward_import_is_caught(tmp_path):
    """The checker itself: a models module importing training is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from attnviz.training.loop import train\n")
    assert layer(next(iter(imports_of(bad))))[0] > layer("attnviz.models.rnn")[0]


def test_pages_stay_off_model_internals():
    for page in sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]:
        touched = [m for m in imports_of(page) if m.startswith(MODEL_INTERNALS)]
        assert not touched, f"{page.name} imports {touched}: go through attnviz.app or attnviz.interpret"


UI_PACKAGE = "attnviz.app.ui"


def test_only_the_ui_package_imports_streamlit():
    modules = sorted(name for name in map(module_name, library_files())
                     if name != UI_PACKAGE and not name.startswith(UI_PACKAGE + "."))
    assert "attnviz.app.figures" in modules and not any(name.startswith(UI_PACKAGE) for name in modules)
    script = ("import importlib, sys\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module(name)\n"
              "    assert 'streamlit' not in sys.modules, name + ' imported streamlit'\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
