"""The library imports without Streamlit: only attnviz/ui.py may import it."""
import pkgutil
import subprocess
import sys
from pathlib import Path

import attnviz

ROOT = Path(__file__).resolve().parents[1]


def library_modules():
    return sorted(f"attnviz.{m.name}" for m in pkgutil.iter_modules(attnviz.__path__) if m.name != "ui")


def test_library_modules_do_not_import_streamlit():
    modules = ["attnviz", *library_modules()]
    script = ("import importlib, sys\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module(name)\n"
              "    assert 'streamlit' not in sys.modules, name + ' imported streamlit'\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_the_core_modules_are_there():
    assert {"attnviz.config", "attnviz.hooks", "attnviz.attention", "attnviz.positional",
            "attnviz.transformer", "attnviz.device"} <= set(library_modules())
