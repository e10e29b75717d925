"""Custom socket types shared by the nodes."""

from comfy_api.v0_0_2 import io

# An ExVideoWeights object: a loaded, extended or trained extension.
ExVideo = io.Custom("EXVIDEO")
