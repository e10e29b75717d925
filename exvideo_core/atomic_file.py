"""Files that appear complete under their name, or not at all.

Saves go to a temporary file beside the target and are renamed over it once
written, so a failed, full-disk or interrupted save never leaves a partial
file under the real name and never damages an existing one.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from typing import Callable, TypeVar

T = TypeVar("T")


def temp_beside(path: pathlib.Path) -> pathlib.Path:
    """A new empty file in `path`'s folder (so the rename cannot cross filesystems), with `path`'s suffix.

    Created with mode 0o666 less the umask, like any file the user saves, and
    with the same suffix, since some writers (FFmpeg) pick the format by it.
    """
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return tmp


def atomic_write(path: str | os.PathLike, write: Callable[[pathlib.Path], T]) -> T:
    """Runs `write(temp_path)`, then renames the temp file to `path`; on any failure or interrupt removes it."""
    path = pathlib.Path(path)
    tmp = temp_beside(path)
    try:
        result = write(tmp)
        os.replace(tmp, path)
        return result
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
