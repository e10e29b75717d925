"""Fixtures the trainer's tests share."""

import pytest

from exvideo_harness.train_data import training_clips


@pytest.fixture(scope="module")
def clips() -> list:
    """The harness's two encoded moving-square clips, as a list a test may slice or extend."""
    return list(training_clips())
