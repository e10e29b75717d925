"""Errors that name the problem and the fix, so a node can show them as they are."""


class ExVideoError(Exception):
    """Base class of every error this pack raises on purpose."""


class CheckpointError(ExVideoError, ValueError):
    """A file or state dict is not a usable ExVideo extension."""


class IncompatibleModelError(ExVideoError, ValueError):
    """An extension does not fit the MODEL it is applied to."""


class FrameCountError(ExVideoError, ValueError):
    """A video has more frames than the extension's position table."""


class InputError(ExVideoError, ValueError):
    """An input, setting or size the pack cannot use (the message says which values would do)."""


class SaveError(ExVideoError, OSError):
    """A file could not be written (read-only folder, full disk); nothing was left under its name."""


class VideoError(ExVideoError, ValueError):
    """Frames that cannot be turned into a video or image, or video settings that cannot be used."""


class VideoReadError(VideoError):
    """A video file that is missing, unreadable or holds no usable frames."""


class VideoWriteError(VideoError):
    """A video or image that could not be written where asked."""
