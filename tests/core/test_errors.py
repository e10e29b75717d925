"""Every error the pack raises on purpose is an ExVideoError of one of four kinds, every class defined in errors.py."""

import ast
import builtins
import inspect

from exvideo_core import errors
from exvideo_harness.cache import REPO_ROOT

# Raised only where a subclass must implement a method: a programming error, not an input.
ALLOWED_BUILTINS = {"NotImplementedError"}
# A module __getattr__ must raise AttributeError (PEP 562), or hasattr() and imports break.
PROTOCOL = {("exvideo_core/lazy.py", "AttributeError")}
KINDS = (errors.InputError, errors.FileError, errors.ModelError, errors.TrainingError)


def _pack_files():
    return sorted((REPO_ROOT / "exvideo_core").rglob("*.py")) + sorted((REPO_ROOT / "nodes").rglob("*.py"))


def _name(node):
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _raised_names(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and _name(node.exc.func):
            yield node.lineno, _name(node.exc.func)


def test_no_deliberate_error_is_a_bare_builtin():
    files = _pack_files()
    builtin_errors = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}
    bare = [f"{path.relative_to(REPO_ROOT)}:{line} raises {name}" for path in files
            for line, name in _raised_names(path)
            if name in builtin_errors - ALLOWED_BUILTINS and (str(path.relative_to(REPO_ROOT)), name) not in PROTOCOL]
    assert not bare, bare


def test_no_deliberate_error_is_the_bare_base_class():
    """ExVideoError says only that the pack raised it; its kinds say what went wrong (a bad denoise is input)."""
    bare = [f"{path.relative_to(REPO_ROOT)}:{line}" for path in _pack_files()
            for line, name in _raised_names(path) if name == "ExVideoError"]
    assert not bare, bare


def test_every_error_class_is_defined_in_errors_py():
    """A second definition would be a second class under one name: `except` of the one misses the other."""
    outside = [f"{path.relative_to(REPO_ROOT)}:{node.lineno} defines {node.name}"
               for path in _pack_files() if path != REPO_ROOT / "exvideo_core" / "errors.py"
               for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
               if isinstance(node, ast.ClassDef)
               and any((_name(base) or "").endswith(("Error", "Exception")) for base in node.bases)]
    assert not outside, outside


def test_every_error_is_of_one_of_the_four_kinds():
    classes = [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if cls.__module__ == errors.__name__]
    assert len(classes) > 10, "the scan must see the classes"
    kindless = [cls.__name__ for cls in classes
                if cls is not errors.ExVideoError and not issubclass(cls, KINDS)]
    assert kindless == []
    assert all(issubclass(cls, errors.ExVideoError) for cls in classes)
