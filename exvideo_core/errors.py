"""Errors that name the problem and the fix, so a node can show them as they are.

Every error the pack raises on purpose is an `ExVideoError` of one of four
kinds, so a caller can catch what went wrong without knowing every class:

- `InputError`: a value, setting or size the user gave that cannot be used;
- `FileError`: a file that is missing, unreadable or not what it should be,
  or that could not be written;
- `ModelError`: a MODEL, VAE or image encoder that cannot do what is asked;
- `TrainingError`: a training run asked for what its mode or its state does
  not hold, or that cannot go on.

The other classes say more within a kind. Every class is defined here, once
(a test holds that); the modules whose rule raises one import it from here,
and old import paths (`exvideo_core.train.DatasetError`, ...) still work.
"""


class ExVideoError(Exception):
    """Base class of every error this pack raises on purpose; raise one of its kinds, not this."""


# The four kinds.

class InputError(ExVideoError, ValueError):
    """An input, setting or size the pack cannot use (the message says which values would do)."""


class FileError(ExVideoError):
    """A file that is missing, unreadable or not the kind it should be, or one that could not be written."""


class ModelError(ExVideoError):
    """A MODEL, VAE or image encoder that does not fit what it is used for."""


class TrainingError(ExVideoError):
    """A training run asked for what its mode or its state does not hold, or that cannot go on."""


# Inputs.

class FrameCountError(InputError):
    """A video has more frames than the extension's position table (or fewer than any extension needs)."""


class VideoError(InputError):
    """Frames that cannot be turned into a video or image, or video settings that cannot be used."""


class DatasetError(InputError):
    """No usable training clip, or settings that cannot give one."""


class TrainConfigError(InputError):
    """A training setting that cannot work, named with the range it must lie in."""


class ResumeSettingsError(TrainConfigError):
    """A saved run was asked to continue with other settings; `changed` names them."""

    def __init__(self, message: str, changed: list[str]):
        super().__init__(message)
        self.changed = changed


class ResumeDataError(InputError):
    """A saved run was asked to continue on other clips than it was trained on."""


class TrainStateError(InputError):
    """A run name or path that cannot hold a training state."""


# Files.

class CheckpointError(FileError, ValueError):
    """A file or state dict is not a usable ExVideo extension (or training state, clip cache or LoRA of ours)."""


class SaveError(FileError, OSError):
    """A file could not be written (read-only folder, full disk); nothing was left under its name."""


class VideoReadError(VideoError, FileError):
    """A video file that is missing, unreadable or holds no usable frames."""


class VideoWriteError(VideoError, FileError):
    """A video or image that could not be written where asked."""


class HostNotFoundError(FileError):
    """No ComfyUI to run on: none of the folders looked in holds one."""


# Models.

class IncompatibleModelError(ModelError, ValueError):
    """An extension does not fit the MODEL it is applied to."""


# Training.

class TrainingDivergedError(TrainingError):
    """The loss or the gradients stopped being finite; the trainer holds the tensors of the last good step."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class NoLoRAError(TrainingError, ValueError):
    """A full-mode run's lora output was used as a LoRA."""
