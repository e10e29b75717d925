"""A custom-node pack for test servers only: a small random SVD MODEL, for runs the full-size UNet can't afford.

`start_comfy_server(..., harness_nodes=True)` puts this folder on the server's
custom-node path (through its extra_model_paths.yaml); no shipped server or
template sees it. The MODEL is a ComfyUI SVD `ModelPatcher` like the one
Image Only Checkpoint Loader returns, with 32 base channels and the real
CLIP vision width, so the pack's nodes and the real VAE and CLIP vision of
the full-size checkpoint work with it unchanged.
"""

from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model

# The real CLIP vision embedding's width, so Training Clips' embeddings fit the small UNet's cross-attention.
SMALL_SVD_FOR_REAL_ENCODERS = {**SMALL_UNET_CONFIG, "context_dim": 1024}


class ExVideoHarnessSmallSVD:
    CATEGORY = "ExVideo/test harness"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "build"
    DESCRIPTION = "Test servers only: a small random-weight SVD UNet."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1})}}

    def build(self, seed):
        return (build_svd_model(SMALL_SVD_FOR_REAL_ENCODERS, seed=seed),)


class ExVideoHarnessSmallWorld:
    """The project's small SVD, trained on the small world: what Image Only Checkpoint Loader would give for it.

    ComfyUI detects SVD checkpoints only at full width, so the small UNet,
    VAE and CLIP vision come from here; everything after this node is the
    pack's own (Apply ExVideo loads the small world's extension from
    models/exvideo like any other).
    """

    CATEGORY = "ExVideo/test harness"
    RETURN_TYPES = ("MODEL", "CLIP_VISION", "VAE")
    FUNCTION = "load"
    DESCRIPTION = "The project's small world SVD (scripts/exvideo_harness/small_world), not SVD-XT."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def load(self):
        from exvideo_harness.small_world import models

        return models.load_unet(), models.build_clip_vision(), models.load_vae()


NODE_CLASS_MAPPINGS = {"ExVideoHarnessSmallSVD": ExVideoHarnessSmallSVD,
                       "ExVideoHarnessSmallWorld": ExVideoHarnessSmallWorld}
