"""Every error the pack raises on purpose is an ExVideoError from errors.py (or a subclass defined beside its rule)."""

import ast
import builtins

from exvideo_harness.cache import REPO_ROOT

# Raised only where a subclass must implement a method: a programming error, not an input.
ALLOWED_BUILTINS = {"NotImplementedError"}
# A module __getattr__ must raise AttributeError (PEP 562), or hasattr() and imports break.
PROTOCOL = {("exvideo_core/lazy.py", "AttributeError")}


def _raised_names(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
            yield node.lineno, node.exc.func.id


def test_no_deliberate_error_is_a_bare_builtin():
    files = sorted((REPO_ROOT / "exvideo_core").rglob("*.py")) + sorted((REPO_ROOT / "nodes").rglob("*.py"))
    builtin_errors = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}
    bare = [f"{path.relative_to(REPO_ROOT)}:{line} raises {name}" for path in files
            for line, name in _raised_names(path)
            if name in builtin_errors - ALLOWED_BUILTINS and (str(path.relative_to(REPO_ROOT)), name) not in PROTOCOL]
    assert not bare, bare
