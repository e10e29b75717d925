import pytest
import torch
from diffsynth.models.svd_unet import PositionalID, get_timestep_embedding

from exvideo_core.position import extend_table, initial_table, ping_pong_positions


def test_ping_pong_bounces_inside_svd_range():
    ids = ping_pong_positions(90).tolist()
    assert ids[:25] == list(range(25))
    assert ids[25:45] == list(range(23, 3, -1))
    assert ids[45:65] == list(range(5, 25))
    assert ids[65:85] == list(range(23, 3, -1))
    assert max(ids) == 24 and min(ids) == 0


def test_ping_pong_equals_diffsynth_positional_id():
    assert ping_pong_positions(300).tolist() == PositionalID()(300).tolist()


@pytest.mark.parametrize("channels", [320, 1280])
def test_initial_table_equals_diffsynth_trainable_timesteps(channels):
    theirs = get_timestep_embedding(PositionalID()(128), channels, flip_sin_to_cos=True, downscale_freq_shift=0)
    assert torch.equal(initial_table(128, channels), theirs)


def test_extend_keeps_trained_rows_and_adds_diffsynth_rows():
    trained = initial_table(30, 64) + torch.randn(30, 64)
    extended = extend_table(trained, 128)
    assert extended.shape == (128, 64)
    assert torch.equal(extended[:30], trained)
    assert torch.equal(extended[30:], initial_table(128, 64)[30:])


def test_extend_refuses_to_shrink():
    with pytest.raises(ValueError, match="cannot shrink a 30-frame"):
        extend_table(torch.zeros(30, 8), 20)


def test_extending_to_the_tables_own_length_keeps_it():
    """Loading an extension at exactly its trained length (128 of 128) is the common case, not a shrink."""
    trained = initial_table(30, 8) + torch.randn(30, 8)
    assert torch.equal(extend_table(trained, 30), trained)
