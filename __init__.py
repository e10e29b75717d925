"""ComfyUI entry point of the ExVideo node pack (V3 node API)."""

from .nodes import comfy_entrypoint

__all__ = ["comfy_entrypoint"]
