"""Latent post-processing from DiffSynth's ExVideo pipeline."""

from comfy_api.v0_0_2 import io

from ..exvideo_core.sampling import renormalize_frames


class ExVideoLatentPostProcess(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExVideoLatentPostProcess",
            display_name="ExVideo Latent Post-Process",
            category="ExVideo/latent",
            description="Per-frame re-normalisation to the clip's global mean/std, then a contrast scale "
                        "(DiffSynth's post_normalize and contrast_enhance_scale). Apply before decoding.",
            inputs=[
                io.Latent.Input("samples", tooltip="A video latent (frames in the batch)."),
                io.Boolean.Input("normalize", default=True,
                                 tooltip="Pin every frame to the clip's mean and std (removes flicker)."),
                io.Float.Input("contrast_scale", default=1.2, min=0.0, max=10.0, step=0.01,
                               tooltip="Multiplies the latent; 1.2 in the reference, 1.0 leaves it unchanged."),
            ],
            outputs=[io.Latent.Output(tooltip="The re-normalised latents, for ExVideo Temporal VAE Decode.")],
        )

    @classmethod
    def execute(cls, samples, normalize, contrast_scale) -> io.NodeOutput:
        out = dict(samples)
        out["samples"] = renormalize_frames(samples["samples"], contrast_scale, normalize)
        return io.NodeOutput(out)


NODES = [ExVideoLatentPostProcess]
