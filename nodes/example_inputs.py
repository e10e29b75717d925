"""The files the shipped templates load from ComfyUI's input folder, put there when the pack loads.

Every template's Load Image names `exvideo_example.png`; ComfyUI looks for it
in its input folder, not beside the template. So on load the pack copies its
example inputs there, each only if no file (or link) of that name exists: a
user's file is never replaced. A folder that cannot be written to costs a
warning in the log, never the pack's loading.
"""

import logging
import os
import shutil

import folder_paths

EXAMPLE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example_workflows")
EXAMPLE_INPUTS = ("exvideo_example.png",)

log = logging.getLogger(__name__)


def install_example_inputs(input_dir: str | None = None, source_dir: str = EXAMPLE_DIR,
                           names=EXAMPLE_INPUTS) -> list[str]:
    """Copies each of `names` from `source_dir` into `input_dir` (ComfyUI's input folder by default) where absent.

    Returns the names it copied. Never raises: a failure is logged as a warning.
    """
    copied = []
    try:
        input_dir = input_dir or folder_paths.get_input_directory()
    except Exception as error:  # noqa: BLE001 - loading the pack must not fail over an example file
        log.warning("ExVideo: no input folder to put the example image in (%s)", error)
        return copied
    for name in names:
        target = os.path.join(input_dir, name)
        if os.path.lexists(target):
            continue
        try:
            os.makedirs(input_dir, exist_ok=True)
            if not _copy_new(os.path.join(source_dir, name), target):
                continue  # created meanwhile (another process): theirs stays
        except Exception as error:  # noqa: BLE001 - see above
            log.warning("ExVideo: could not put the example input %s into %s (%s); the templates' "
                        "Load Image needs it there, or choose another image", name, input_dir, error)
            continue
        copied.append(name)
        log.info("ExVideo: put the example input %s into %s", name, input_dir)
    return copied


def _copy_new(source: str, target: str) -> bool:
    """Copies `source` to `target` unless `target` exists (exclusive create: never overwrites, even in a race)."""
    with open(source, "rb") as src:
        try:
            dst = open(target, "xb")
        except FileExistsError:
            return False
        with dst:
            try:
                shutil.copyfileobj(src, dst)
            except BaseException:
                # Only a file this call created goes: a partial copy would pass for the image.
                dst.close()
                os.unlink(target)
                raise
    return True
