"""ComfyUI entry point of the ExVideo node pack (V3 node API).

ComfyUI imports this folder as one package, named after its path, and every
part of the pack imports the others relative to it (`nodes` reads the core
as `..exvideo_core`): nothing is added to `sys.path`, so the pack's folders
(exvideo_core, and in a clone tests, scripts and benchmarks) never become
top-level names in the ComfyUI process.
"""

# pytest imports this file as a plain module when the checkout's folder name is
# not a valid package name (e.g. mktemp's "tmp.XXXX"); there is nothing to register then.
if __package__:
    from .nodes import comfy_entrypoint

    __all__ = ["comfy_entrypoint"]
