"""Text a node shows on itself while it runs: ComfyUI's progress text, which the frontend draws on the node.

The frontend draws a `ui` "text" output only on ComfyUI's own Preview Any node, so a node's message reaches
the user through the progress text, and the log, for API users and headless runs.
"""

import logging
import sys

log = logging.getLogger(__name__)


def show_text(node_cls, text: str) -> None:
    """Logs `text` and shows it on the running node (`node_cls` declares `io.Hidden.unique_id`)."""
    log.info("%s", text)
    node_id = node_cls.hidden.unique_id if node_cls.hidden is not None else None
    server = _prompt_server()
    if node_id is not None and server is not None:
        server.send_progress_text(text, node_id)


def _prompt_server():
    """ComfyUI's running PromptServer, or None (tests, scripts): looked up, not imported, because importing
    ComfyUI's server module outside ComfyUI's start-up fails, and inside it the module is loaded already."""
    module = sys.modules.get("server")
    return getattr(getattr(module, "PromptServer", None), "instance", None)
