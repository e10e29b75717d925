"""Widget ranges and defaults that used to trip users: every size widget bounded as the core is, one meaning of
motion_bucket_id, and a Post-Tune seed that stays put between queues (as /object_info tells the frontend)."""

import pytest
from nodes import MAX_RESOLUTION

from exvideo_core.constraints import MIN_PIXELS, VAE_DOWNSCALE
from exvideo_core.train.dataset import MAX_MOTION_BUCKET, MEASURE_MOTION
from exvideo_harness.pack import load_pack_nodes
from exvideo_harness.workflows import has_control_widget

# Sizes of something other than video frames.
NOT_VIDEO_SIZES = {("ExVideoLossPlot", "width"), ("ExVideoLossPlot", "height")}
# Sizes where 0 means "keep the file's": only the step is the VAE's.
ZERO_KEEPS = {("ExVideoLoadVideo", "custom_width"), ("ExVideoLoadVideo", "custom_height")}


@pytest.fixture(scope="module")
def nodes():
    return {node.GET_SCHEMA().node_id: node for node in load_pack_nodes().NODES}


def inputs(node, name: str | None = None):
    found = {item.id: item for item in node.GET_SCHEMA().inputs}
    return found if name is None else found[name]


def test_every_size_widget_reads_its_minimum_and_step_from_the_constraints(nodes):
    """Image to Video and Refine took 16 px, which the core refused at run time below 128."""
    sizes = [(node_id, name, item) for node_id, node in nodes.items() for name, item in inputs(node).items()
             if name.endswith(("width", "height")) and (node_id, name) not in NOT_VIDEO_SIZES]
    assert {(node_id, name) for node_id, name, _ in sizes} >= {
        (node, side) for node in ("ExVideoSampler", "ExVideoRefine", "ExVideoTrainingClips")
        for side in ("width", "height")} | ZERO_KEEPS
    for node_id, name, item in sizes:
        assert item.step == VAE_DOWNSCALE, (node_id, name)
        assert item.max == MAX_RESOLUTION, (node_id, name)  # ComfyUI's own bound, a multiple of the step
        assert item.min == (0 if (node_id, name) in ZERO_KEEPS else MIN_PIXELS), (node_id, name)
        assert item.default == 0 or (item.default >= MIN_PIXELS and item.default % VAE_DOWNSCALE == 0)


def test_motion_bucket_id_means_the_same_everywhere(nodes):
    """0 used to mean "measure" in Training Clips while the samplers started at 1: now 0 is bucket 0
    everywhere, and Training Clips measures at MEASURE_MOTION, its default."""
    buckets = {node_id: inputs(node)["motion_bucket_id"] for node_id, node in nodes.items()
               if "motion_bucket_id" in inputs(node)}
    assert set(buckets) == {"ExVideoSampler", "ExVideoRefine", "ExVideoContinue", "ExVideoKeyframes",
                            "ExVideoTrainingClips"}
    clips = buckets.pop("ExVideoTrainingClips")
    assert (clips.min, clips.default, clips.max) == (MEASURE_MOTION, MEASURE_MOTION, 1023)
    assert f"{MEASURE_MOTION} measures each clip's motion" in clips.tooltip and "0 or more" in clips.tooltip
    for node_id, item in buckets.items():
        assert (item.min, item.max) == (0, 1023), node_id
        assert 0 <= item.default <= MAX_MOTION_BUCKET


def test_post_tune_seed_is_fixed_by_default(nodes):
    """With the frontend's "randomize" a seed changed after each queue and the next resume was refused."""
    info = nodes["ExVideoTrain"].GET_NODE_INFO_V1()  # what /object_info serves
    spec = info["input"]["required"]["seed"]
    assert spec[0] == "INT" and spec[1]["control_after_generate"] is False
    # The frontend adds its control widget to a "seed" unless told not to (`control_after_generate ?? name is
    # seed`); the harness reads the widgets as it does.
    assert not has_control_widget("seed", spec)
    # The samplers keep theirs: a new video each queue is what a user expects there.
    sampler = nodes["ExVideoSampler"].GET_NODE_INFO_V1()["input"]["required"]["seed"]
    assert has_control_widget("seed", sampler)


@pytest.mark.parametrize("mode", ["fixed", "increment", "decrement", "randomize"])
def test_a_post_tune_saved_with_the_seed_control_is_refused_before_it_runs(nodes, mode):
    """Its saved values are one more than the widgets: the control's mode lands in run_name, which would
    otherwise quietly name a new run after it."""
    message = nodes["ExVideoTrain"].validate_inputs(run_name=mode)
    assert message.startswith(f"run_name is {mode!r}, the mode of a seed's control widget")
    assert "Set run_name and resume again" in message
    assert nodes["ExVideoTrain"].validate_inputs(run_name="my_extension") is True
