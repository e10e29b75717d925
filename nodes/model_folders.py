"""The `exvideo` model folder: models/exvideo, plus any `exvideo:` entries of extra_model_paths.yaml."""

import os

import folder_paths

FOLDER = "exvideo"
EXTENSIONS = {".safetensors"}  # pickles are never loaded


def register() -> None:
    default = os.path.join(folder_paths.models_dir, FOLDER)
    # extra_model_paths.yaml is read before custom nodes load, so paths it
    # declared for this folder may already be registered (without extensions);
    # they keep their place, so an `is_default` path stays the first.
    paths = list(folder_paths.folder_names_and_paths.get(FOLDER, ([], set()))[0])
    if default not in paths:
        paths.append(default)
    folder_paths.folder_names_and_paths[FOLDER] = (paths, EXTENSIONS)


def extension_names() -> list[str]:
    return folder_paths.get_filename_list(FOLDER)


def extension_path(name: str) -> str:
    return folder_paths.get_full_path_or_raise(FOLDER, name)
