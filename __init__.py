"""ComfyUI entry point of the ExVideo node pack (V3 node API)."""

import os
import sys

# ComfyUI imports this folder as a package named after the folder, so the
# core library is made importable under its own name, as scripts and
# tests import it. Appended, so nothing of ComfyUI's (like `nodes`) is shadowed.
_PACK_ROOT = os.path.dirname(os.path.abspath(__file__))
if _PACK_ROOT not in sys.path:
    sys.path.append(_PACK_ROOT)

# pytest imports this file as a plain module when the checkout's folder name is
# not a valid package name (e.g. mktemp's "tmp.XXXX"); there is nothing to register then.
if __package__:
    from .nodes import comfy_entrypoint  # noqa: E402

    __all__ = ["comfy_entrypoint"]
