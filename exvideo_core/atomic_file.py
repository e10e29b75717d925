"""Files that appear complete under their name, or not at all: the one writer every save goes through.

Saves (MP4 videos, contact sheets, extensions, LoRAs, training states, clip
caches) go to a temporary file beside the target, are flushed to disk and
renamed over it once written, so a failed, full-disk or interrupted save never
leaves a partial file under the real name and never damages an existing one.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from typing import Callable, TypeVar

from .errors import ExVideoError, SaveError

T = TypeVar("T")


def temp_beside(path: pathlib.Path) -> pathlib.Path:
    """A new empty file in `path`'s folder (so the rename cannot cross filesystems), with `path`'s suffix.

    Created with mode 0o666 less the umask, like any file the user saves, and
    with the same suffix, since some writers (FFmpeg) pick the format by it.
    """
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return tmp


def _fsync(path: pathlib.Path) -> None:
    """Flushes the written file to disk, so the rename never publishes a name whose data a crash could lose."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[pathlib.Path], T]) -> T:
    """Runs `write(temp_path)`, fsyncs and renames the temp file to `path`; on any failure or interrupt removes it."""
    path = pathlib.Path(path)
    tmp = temp_beside(path)
    try:
        result = write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        return result
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_file(path: str | os.PathLike, write: Callable[[pathlib.Path], T], *,
               error: type[ExVideoError] = SaveError, make_folder: bool = True,
               library_errors: tuple[type[Exception], ...] = ()) -> T:
    """`atomic_write`, with the folder made (or, `make_folder=False`, required to exist) and failures named.

    OS errors (read-only folder, full disk) and `library_errors` (a writer's own
    failure type) are raised as `error`, with the reason and the fix; errors the
    pack raises on purpose inside `write` pass through unchanged.
    """
    path = pathlib.Path(path)
    if not make_folder and not path.parent.is_dir():
        raise error(f"Cannot write {path}: {path.parent} is not an existing folder.")
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, write)
    except ExVideoError:
        raise
    except (OSError, *library_errors) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise error(f"Cannot write {path}: {reason}. Nothing was written; free some disk space or choose a "
                    f"writable folder, then save again.") from e
