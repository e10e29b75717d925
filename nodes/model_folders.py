"""The `exvideo` model folder: models/exvideo, any `exvideo:` entries of extra_model_paths.yaml, and
output/exvideo, where ExVideo Save Extension writes by default (as ComfyUI registers output/checkpoints and
output/loras for its own save nodes), so a saved extension is listed by the loaders without being moved."""

import logging
import os

import folder_paths

FOLDER = "exvideo"
EXTENSIONS = {".safetensors"}  # pickles are never loaded

log = logging.getLogger(__name__)


def register() -> None:
    default = os.path.join(folder_paths.models_dir, FOLDER)
    # extra_model_paths.yaml is read before custom nodes load, so paths it
    # declared for this folder may already be registered (without extensions);
    # they keep their place, so an `is_default` path stays the first.
    paths = list(folder_paths.folder_names_and_paths.get(FOLDER, ([], set()))[0])
    for path in (default, saved_folder()):
        if path not in paths:
            paths.append(path)
    folder_paths.folder_names_and_paths[FOLDER] = (paths, EXTENSIONS)
    create_first_folder()


def saved_folder() -> str:
    """output/exvideo: last in the list, so a file of the same name in models/exvideo wins."""
    return os.path.join(folder_paths.get_output_directory(), FOLDER)


def create_first_folder() -> None:
    """Creates the folder a user is told to put extensions in (the first exvideo path), as packs do for
    theirs, so it is there to drop a file into. A folder that cannot be made costs a warning, never the load."""
    folder = folder_paths.get_folder_paths(FOLDER)[0]
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        log.warning("ExVideo: could not create the model folder %s (%s); create it to put ExVideo extensions "
                    "in, or add an exvideo path to extra_model_paths.yaml", folder, error)


def extension_names() -> list[str]:
    return folder_paths.get_filename_list(FOLDER)


def extension_path(name: str) -> str:
    return folder_paths.get_full_path_or_raise(FOLDER, name)


def listed_name(folder_name: str, path: str) -> str | None:
    """The name a loader of `folder_name` lists the file `path` under, or None if no such folder holds it."""
    path = os.path.abspath(path)
    for folder in map(os.path.abspath, folder_paths.get_folder_paths(folder_name)):
        try:
            inside = os.path.commonpath((folder, path)) == folder != path
        except ValueError:  # another drive
            continue
        if inside:
            return os.path.relpath(path, folder).replace(os.sep, "/")
    return None
