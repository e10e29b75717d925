"""The `exvideo` model folder: models/exvideo, plus any `exvideo:` entries of extra_model_paths.yaml."""

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
    if default not in paths:
        paths.append(default)
    folder_paths.folder_names_and_paths[FOLDER] = (paths, EXTENSIONS)
    create_first_folder()


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
