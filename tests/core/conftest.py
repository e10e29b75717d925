"""Small random SVD models and ExVideo extensions shared by the core tests."""

import pytest

from exvideo_core import load_exvideo
from exvideo_harness.exvideo_files import SMALL, random_exvideo_state_dict
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model

# Frames of the extensions' position tables.
N = 32


@pytest.fixture(scope="module")
def base():
    return build_svd_model(SMALL_UNET_CONFIG, seed=0)


@pytest.fixture(scope="module")
def weights():
    return load_exvideo(random_exvideo_state_dict(N, seed=1, **SMALL))


@pytest.fixture(scope="module")
def other_weights():
    return load_exvideo(random_exvideo_state_dict(N, seed=2, **SMALL))
