"""Loading every checkpoint format strictly; official layouts checked key by key."""

from __future__ import annotations

import pickle

import pytest
import torch

from mask2former import build_model, get_preset, load_model, save_model
from mask2former.atomic_files import atomic_write
from mask2former.convert import config_from_state, convert_official_state_dict
from mask2former.testing.hf_reference import make_hf_model
from mask2former.testing.official_layout import official_keys, to_official
from mask2former.weights import CheckpointError, load_state_strict


def _write_pkl(path, state):
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "test"}, f)


@pytest.mark.parametrize(("preset", "tensors"), [("r50_coco_panoptic", 557), ("swin_t_coco_panoptic", 481)])
def test_official_layout_of_zoo_models_round_trips(preset, tensors):
    """The key inventory of real-size official checkpoints: counts as published, strict load back."""
    model = build_model(get_preset(preset))
    official = to_official(model)
    assert len(official) - 1 == tensors  # criterion.empty_weight excluded from the count
    converted = convert_official_state_dict(official)
    fresh = build_model(get_preset(preset))
    load_state_strict(fresh, converted, "official")
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    inferred = config_from_state(converted)
    assert inferred.backbone.name == model.config.backbone.name
    assert (inferred.num_classes, inferred.decoder.num_queries) == (133, 100)


def test_r101_and_swin_l_architecture_inferred():
    for preset in ("r101_coco_instance", "swin_l_in21k_coco_panoptic"):
        config = get_preset(preset)
        model = build_model(config)
        inferred = config_from_state(convert_official_state_dict(to_official(model)))
        assert inferred.backbone == config.backbone.__class__(**{**vars(config.backbone),
                                                                 "norm": inferred.backbone.norm,
                                                                 "drop_path_rate": inferred.backbone.drop_path_rate})
        assert inferred.decoder.num_queries == config.decoder.num_queries


@pytest.mark.parametrize("legacy", [False, True])
def test_official_pkl_equals_hf_path(tmp_path, legacy):
    """Weights saved in the HF layout and in the official layout give the same outputs."""
    hf, directory = make_hf_model(tmp_path, num_heads=8, seed=4)
    via_hf = load_model(directory)
    official = to_official(via_hf, legacy=legacy)
    expected = set(official_keys(via_hf.config))
    if legacy:
        expected = {k.replace("predictor.query_feat", "predictor.static_query")
                    .replace("sem_seg_head.pixel_decoder.", "sem_seg_head.") for k in expected}
    assert set(official) - {"criterion.empty_weight"} == expected
    _write_pkl(tmp_path / "model_final.pkl", official)
    via_pkl = load_model(tmp_path / "model_final.pkl")
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        a, b, ref = via_hf(x), via_pkl(x), hf(pixel_values=x)
    assert torch.equal(a.class_logits, b.class_logits) and torch.equal(a.mask_logits, b.mask_logits)
    assert (b.mask_logits - ref.masks_queries_logits).abs().max() <= 1e-4


def test_wrong_official_weights_name_the_keys(tmp_path):
    model = build_model(get_preset("tiny_resnet"))
    official = to_official(model)
    del official["sem_seg_head.predictor.decoder_norm.weight"]
    official["sem_seg_head.predictor.extra.weight"] = torch.zeros(3)
    official["sem_seg_head.predictor.class_embed.bias"] = torch.zeros(7)
    _write_pkl(tmp_path / "bad.pkl", official)
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "bad.pkl", preset=model.config)
    msg = str(e.value)
    assert "missing keys: transformer_decoder.decoder_norm.weight" in msg
    assert "unexpected keys: transformer_decoder.extra.weight" in msg
    assert "mis-shaped" in msg and "class_embed.bias" in msg and "bad.pkl" in msg


def test_preset_mismatch_is_reported(tmp_path):
    model = build_model(get_preset("tiny_resnet"))
    _write_pkl(tmp_path / "m.pkl", to_official(model))
    with pytest.raises(CheckpointError, match="do not match preset"):
        load_model(tmp_path / "m.pkl", preset="r50_coco_panoptic")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_our_format_round_trip(tmp_path, tiny_model, suffix):
    path = save_model(tiny_model, tmp_path / f"m{suffix}")
    loaded = load_model(path)
    assert loaded.config == tiny_model.config
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x).mask_logits, tiny_model(x).mask_logits)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


def test_bad_files_get_clear_errors(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt: cannot read as a torch checkpoint"):
        load_model(tmp_path / "garbage.pt")
    (tmp_path / "garbage.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="garbage.pkl: cannot read as a pickle"):
        load_model(tmp_path / "garbage.pkl")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a Mask2Former checkpoint"):
        load_model(tmp_path / "other.pt")
    # a truncated file of our own format
    path = save_model(tiny_model, tmp_path / "cut.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_model(path)
    # a checkpoint of another architecture saved in our format under a different config
    other = build_model(get_preset("tiny_resnet"))
    torch.save({"format": "mask2former", "version": 1, "config": __import__("mask2former.config").config.to_dict(
        tiny_model.config), "model": other.state_dict()}, tmp_path / "wrong_arch.pt")
    with pytest.raises(CheckpointError, match="weights do not fit the model"):
        load_model(tmp_path / "wrong_arch.pt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(CheckpointError, match="neither a HuggingFace model"):
        load_model(tmp_path / "empty_dir")


def test_crash_mid_write_keeps_the_last_good_checkpoint(tmp_path, tiny_model):
    good = save_model(tiny_model, tmp_path / "last.pt")
    before = good.read_bytes()

    def dies_halfway(f) -> None:
        f.write(before[: len(before) // 2])
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(good, dies_halfway)
    assert good.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp"))
    load_model(good)  # still loads


# ----------------------------------------------------------------------------- integrity of what we write


def _tensor_bytes_offset(path, tensor):
    """Where the bytes of ``tensor`` sit inside the saved file (they are stored uncompressed)."""
    data = path.read_bytes()
    offset = data.find(tensor.contiguous().numpy().tobytes())
    assert offset > 0
    return data, offset


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_flipped_byte_in_the_weights_is_caught(tmp_path, tiny_model, suffix):
    path = save_model(tiny_model, tmp_path / f"m{suffix}")
    weight = tiny_model.state_dict()["transformer_decoder.class_embed.weight"]
    data, offset = _tensor_bytes_offset(path, weight)
    corrupted = bytearray(data)
    corrupted[offset + 5] ^= 0x10
    path.write_bytes(bytes(corrupted))
    with pytest.raises(CheckpointError, match="do not match the checksum recorded"):
        load_model(path)


def test_a_changed_config_value_is_caught(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    key = b'\\"object_mask_threshold\\": 0.8'  # the config is JSON inside the header's JSON
    assert data.count(key) == 1
    path.write_bytes(data.replace(key, b'\\"object_mask_threshold\\": 0.3'))  # same length: a valid file
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(path)


def test_random_byte_mutations_never_load_silently_changed(tmp_path, tiny_model):
    """Each single-byte mutation of a checkpoint either fails with our error or loads exactly the
    weights and config that were saved: never a silently different model."""
    import random

    path = save_model(tiny_model, tmp_path / "m.pt")
    original = path.read_bytes()
    expected = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    rng = random.Random(0)
    outcomes = {"refused": 0, "identical": 0}
    for _ in range(60):
        mutated = bytearray(original)
        position = rng.randrange(len(mutated))
        mutated[position] = (mutated[position] + rng.randrange(1, 256)) % 256
        path.write_bytes(bytes(mutated))
        try:
            model = load_model(path)
        except CheckpointError:
            outcomes["refused"] += 1
            continue
        assert model.config == tiny_model.config, position
        for key, value in expected.items():
            assert torch.equal(model.state_dict()[key], value), (position, key)
        outcomes["identical"] += 1
    assert outcomes["refused"] > 30  # most bytes of the file are weights: flipping them is caught


def test_files_get_the_users_umask(tmp_path, tiny_model):
    import os

    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            path = save_model(tiny_model, tmp_path / f"m{umask:o}.pt")
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == mode, (oct(umask), oct(path.stat().st_mode))


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs: a real full disk (needs root, as CI has; skipped where mounting is not allowed)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(full_disk):
    small = build_model(get_preset("tiny_resnet")).eval()
    path = full_disk / "last.pt"
    path.write_bytes(b"previous good checkpoint")
    with pytest.raises(OSError) as e:
        save_model(small, path)  # megabytes of weights into 256 KiB
    assert e.value.errno == 28 and e.value.filename == str(path)
    assert "No space left on device" in str(e.value)
    assert path.read_bytes() == b"previous good checkpoint"
    assert [p.name for p in full_disk.iterdir()] == ["last.pt"]  # no temporary file left behind
    from mask2former.cli import error_line

    assert error_line(e.value).startswith(f"error: {path}: no space left on device")


def test_stale_temporary_files_are_removed(tmp_path, tiny_model):
    from mask2former.atomic_files import remove_stale_temp_files

    (tmp_path / ".last.pt.1a2b3c4d.tmp").write_bytes(b"x" * 100)
    (tmp_path / ".model_0000010.pt.k2j3h4gx.tmp").write_bytes(b"x")  # mkstemp's names (older versions)
    (tmp_path / "notes.tmp").write_text("the user's own file")
    keep = save_model(tiny_model, tmp_path / "last.pt")
    assert remove_stale_temp_files(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "notes.tmp"]
    load_model(keep)


def test_a_hf_directory_without_class_names_loads_with_numbered_ones(tmp_path, caplog):
    import json

    pytest.importorskip("transformers")
    _, directory = make_hf_model(tmp_path, num_labels=5)
    config = json.loads((directory / "config.json").read_text())
    for key in ("id2label", "label2id", "num_labels"):
        config.pop(key, None)
    (directory / "config.json").write_text(json.dumps(config))
    model = load_model(directory)
    assert model.config.num_classes == 5
    assert model.config.class_names == [f"class_{i}" for i in range(5)]
    assert "names no classes" in caplog.text
