"""The small world: a procedural video world, its metrics, and a small SVD trained on it by the scripts here.

    world.py       clips with ground truth (tracks, colours, bounces), from a seed
    metrics.py     persistence, motion, drift and seams, from a video's pixels alone
    models.py      the small SVD's UNet, VAE and CLIP vision (ComfyUI's classes) and its shipped weights
    training.py    the resumable run the training scripts share
    train_vae.py   stage 1: the VAE

Its modules import comfy.model_management, which picks its device on import:
without a GPU ComfyUI must be told to use the CPU first, as `main.py --cpu`.
"""

from exvideo_core.train.host import prepare_host

prepare_host()
