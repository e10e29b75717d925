"""Custom socket types shared by the nodes."""

from comfy_api.latest import io

# An ExVideoWeights object: a loaded, extended or trained extension.
ExVideo = io.Custom("EXVIDEO")
