"""Faster sampling: DeepCache on the SVD UNet, reusing its deep blocks' output across model calls."""

from comfy_api.v0_0_2 import io

from ..exvideo_core.deep_cache import MAX_DEPTH, MAX_INTERVAL, DeepCacheSettings, with_deep_cache

DEFAULTS = DeepCacheSettings(interval=3, depth=1)


class ExVideoDeepCache(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoDeepCache",
            display_name="ExVideo Deep Cache",
            category="ExVideo/sampling",
            description="Samples faster by running the whole UNet only every few model calls (DeepCache). The calls "
                        "between run only its shallowest blocks and reuse the deep blocks' output of the last full "
                        "call. Works on plain SVD and on ExVideo, with chunking, skips on host and context windows. "
                        "Bypass it (or set interval 1) for exactly the uncached result.",
            inputs=[
                io.Model.Input("model", tooltip="An SVD MODEL, with or without ExVideo."),
                io.Int.Input("interval", default=DEFAULTS.interval, min=1, max=MAX_INTERVAL,
                             tooltip="One full UNet call every this many calls; 1 is off. Larger is faster and "
                                     "drifts further from the uncached video."),
                io.Int.Input("depth", default=DEFAULTS.depth, min=1, max=MAX_DEPTH,
                             tooltip="UNet blocks at each end that run at every call (SVD has 12 input blocks). "
                                     "Larger is slower and closer to the uncached video."),
            ],
            outputs=[io.Model.Output(tooltip="The MODEL, sampling with the deep cache.")],
        )

    @classmethod
    def execute(cls, model, interval, depth) -> io.NodeOutput:
        return io.NodeOutput(with_deep_cache(model, DeepCacheSettings(interval=interval, depth=depth)))


NODES = [ExVideoDeepCache]
