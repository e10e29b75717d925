"""Paths confined to a folder: names from users (prefixes, run names, folders) never lead outside it."""

from __future__ import annotations

import os

from .errors import ExVideoError, InputError


def resolve_inside(folder: str | os.PathLike, name: str, error: type[ExVideoError] = InputError) -> str:
    """`folder/name` as an absolute path; raises `error` for names (absolute, `..`) that lead outside `folder`."""
    folder = os.path.abspath(folder)
    path = os.path.abspath(os.path.join(folder, name))
    if os.path.commonpath((folder, path)) != folder:
        raise error(f"{name!r} leads outside {folder}: only paths inside that folder are allowed.")
    return path


def file_identity(path: str | os.PathLike) -> tuple[int, int]:
    """(size, modification time in ns) of a file, or (-1, -1) where there is none: what tells that a file was
    written again without reading it (hashing a large video or checkpoint on every queue would)."""
    try:
        stat = os.stat(path)
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns
