"""Output names the ComfyUI way: `<output>/<subfolders>/<name>_<counter:05>_.<ext>`, through `folder_paths`."""

import os
from typing import NamedTuple

import folder_paths

from ..exvideo_core.errors import InputError, SaveError
from ..exvideo_core.paths import resolve_inside


class OutputFile(NamedTuple):
    path: str  # absolute, free when returned
    filename: str  # as ComfyUI's /view expects: the name inside `subfolder`
    subfolder: str


def save_path(output_dir: str | os.PathLike, filename_prefix: str, ext: str, companions: tuple[str, ...] = (),
              width: int = 0, height: int = 0) -> OutputFile:
    """A free path `<output_dir>/<subfolders>/<name>_<counter:05>_.<ext>` named the ComfyUI way.

    The prefix may hold subfolders (created) and ComfyUI's %year%, %width%, ... variables.
    `companions` are more extensions that must be free under the same stem (a contact sheet
    beside a video). Existing files are never reused.
    """
    output_dir = os.path.abspath(output_dir)  # get_save_image_path's containment test needs it absolute and normalised
    prefix = os.path.normpath(filename_prefix)
    try:
        resolve_inside(output_dir, prefix)
    except InputError:
        raise InputError(f"filename_prefix {filename_prefix!r} leads outside the output folder {output_dir}; "
                         f"use a name or a relative subfolder such as 'ExVideo/video'.") from None
    if os.path.basename(prefix) in ("", ".", ".."):
        raise InputError(f"filename_prefix {filename_prefix!r} does not name a file.")
    # Passing the normalised prefix matters: with a trailing slash, ComfyUI's counter ignores existing files.
    try:  # it creates the subfolders
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, output_dir, width, height)
    except OSError as e:
        raise SaveError(f"Cannot create the folder of {filename_prefix!r} in {output_dir}: "
                        f"{e.strerror or e}. Nothing was written; choose a writable output folder (or free "
                        f"some disk space) and save again.") from e
    exts = [e.lstrip(".") for e in (ext, *companions)]
    # The counter comes from a directory listing that a case-insensitive filesystem can fool: check.
    while any(os.path.lexists(os.path.join(folder, f"{name}_{counter:05}_.{e}")) for e in exts):
        counter += 1
    filename = f"{name}_{counter:05}_.{exts[0]}"
    return OutputFile(os.path.join(folder, filename), filename, subfolder)


def output_file(filename_prefix: str, ext: str, companions: tuple[str, ...] = (), width: int = 0,
                height: int = 0) -> OutputFile:
    """`save_path` in ComfyUI's output folder."""
    return save_path(folder_paths.get_output_directory(), filename_prefix, ext, companions, width, height)
