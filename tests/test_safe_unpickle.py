"""No file we load runs code: pickles that name a callable are refused before it is imported,
through the zoo reader itself and through every command that loads a checkpoint."""

from __future__ import annotations

import collections
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

from mask2former import CheckpointError, build_model, get_preset, load_model, save_model
from mask2former.cli import main
from mask2former.data.synthetic import write_synthetic
from mask2former.safe_unpickle import load_arrays_pickle
from mask2former.testing.hf_reference import make_hf_model
from mask2former.testing.official_layout import to_official


class _Payload:
    """Unpickling this object would run ``command`` (and create the marker file)."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def _payloads(marker):
    touch = f"touch {marker}"
    return [
        _Payload(os.system, touch),
        _Payload(subprocess.call, ["touch", str(marker)]),
        _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        _Payload(eval, f"open({str(marker)!r}, 'w')"),
    ]


def test_arrays_and_plain_containers_load_in_every_protocol():
    data = {"model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "f": np.asfortranarray(np.ones((3, 2))),
                      "s": np.float32(2.5), "i": np.array(7, dtype=np.int64)},
            "__author__": "zoo", "matching_heuristics": True, "meta": collections.OrderedDict(a=1),
            "set": {1, 2}, "bytes": b"\x00\xff", "none": None}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        loaded = load_arrays_pickle(pickle.dumps(data, protocol=protocol), "zoo.pkl")
        for key, value in data["model"].items():
            assert np.array_equal(loaded["model"][key], value), (protocol, key)
        assert {k: v for k, v in loaded.items() if k != "model"} == {k: v for k, v in data.items() if k != "model"}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_payloads_are_refused_before_they_run(tmp_path, protocol):
    marker = tmp_path / "marker"
    for payload in _payloads(marker):
        blob = pickle.dumps({"model": {"w": np.zeros(2)}, "x": payload}, protocol=protocol)
        with pytest.raises(CheckpointError, match="refused to load: the file asks to run"):
            load_arrays_pickle(blob, "evil.pkl")
        assert not marker.exists()


def test_object_arrays_are_not_weights(tmp_path):
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": np.array([1, "a"], dtype=object)}}))
    with pytest.raises(CheckpointError, match="not a numeric array"):
        load_model(path)


# ----------------------------------------------------------------------------- every entry point


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One hostile file per checkpoint format, each creating ``marker`` if anything runs it."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "marker"
    model = build_model(get_preset("tiny"))
    official = {k: v.numpy() for k, v in to_official(model).items()}
    official["payload"] = _Payload(os.system, f"touch {marker}")
    with open(root / "zoo.pkl", "wb") as f:
        pickle.dump({"model": official, "__author__": "zoo"}, f)
    state = {k: v for k, v in model.state_dict().items()}
    torch.save({"format": "mask2former", "version": 2, "config": {}, "model": state,
                "payload": _Payload(os.system, f"touch {marker}")}, root / "ours.pt")
    _, real_hf = make_hf_model(root)  # a real config.json, so loading reaches the weights file
    hf = root / "hf"
    hf.mkdir()
    (hf / "config.json").write_text((real_hf / "config.json").read_text())
    torch.save({"x": _Payload(os.system, f"touch {marker}")}, hf / "pytorch_model.bin")
    return root, marker


def _data(tmp_path):
    path = write_synthetic(tmp_path / "data", num_train=4, num_val=2, seed=0)
    return path


@pytest.mark.parametrize("name", ["zoo.pkl", "ours.pt"])
def test_load_model_predict_eval_convert_init_run_nothing(tmp_path, hostile, name, capsys):
    root, marker = hostile
    checkpoint = str(root / name)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(checkpoint)
    data = _data(tmp_path)
    image = next((tmp_path / "data" / "images" / "val").iterdir())
    commands = [
        ["predict", "--checkpoint", checkpoint, "--input", str(image), "--output", str(tmp_path / "p")],
        ["eval", "--checkpoint", checkpoint, "--data", str(data)],
        ["convert", checkpoint, str(tmp_path / "c.pt")],
        ["train", "--data", str(data), "--preset", "tiny", "--iters", "1", "--init", checkpoint,
         "--output", str(tmp_path / "t"), "--set", "num_workers=0"],
    ]
    for command in commands:
        assert main(["-q", *command]) == 1, command
        err = capsys.readouterr().err
        assert "refused to load: the file asks to run" in err and name in err, (command, err)
        assert "Traceback" not in err
    assert not marker.exists()


def test_hf_directory_runs_nothing(hostile):
    root, marker = hostile
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(root / "hf")
    assert not marker.exists()


def test_resume_from_a_planted_last_pt_runs_nothing(tmp_path, hostile, capsys):
    """Whoever can write a run folder cannot get code run by whoever resumes it."""
    root, marker = hostile
    data = _data(tmp_path)
    args = ["-q", "train", "--data", str(data), "--preset", "tiny", "--iters", "1", "--output", str(tmp_path / "run"),
            "--set", "num_workers=0"]
    assert main(args) == 0
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes((root / "ours.pt").read_bytes())
    assert main([*args, "--resume"]) == 1
    err = capsys.readouterr().err
    assert "last.pt: refused to load: the file asks to run" in err
    assert not marker.exists()


def test_a_real_checkpoint_still_loads_after_all_that(tmp_path, tiny_model):
    """The restrictions refuse only what they should: our own files and zoo files load."""
    path = save_model(tiny_model, tmp_path / "ok.pt")
    assert load_model(path).config == tiny_model.config
    official = {k: v.numpy() for k, v in to_official(tiny_model).items()}
    with open(tmp_path / "zoo.pkl", "wb") as f:
        pickle.dump({"model": official, "__author__": "zoo", "matching_heuristics": True}, f, protocol=2)
    loaded = load_model(tmp_path / "zoo.pkl", preset=tiny_model.config)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_a_damaged_length_field_allocates_nothing_big(tmp_path):
    """Regression (fuzz, .pkl mutant 9): a string length mutated to 1.8 GB in a small file once
    made loading allocate the claimed size before noticing the file was shorter."""
    import tracemalloc

    blob = bytearray(pickle.dumps({"model": {"w": np.zeros(1000, dtype=np.float32)}}, protocol=2))
    at = blob.index(b"X\x05\x00\x00\x00model")
    blob[at + 1:at + 5] = (1_828_716_549).to_bytes(4, "little")
    path = tmp_path / "damaged.pkl"
    path.write_bytes(bytes(blob))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="damaged.pkl: cannot read as a pickle checkpoint"):
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, peak


def test_a_damaged_memo_index_allocates_nothing_big():
    """Regression (fuzz, .pkl mutant 242): LONG_BINPUT naming memo slot 175,726,962 made the C
    unpickler grow its memo to that size (1.4 GB) from a 4 MB file."""
    import tracemalloc

    # {"model": {}} with the key stored in memo slot 175,726,962
    blob = b"\x80\x02}q\x00X\x05\x00\x00\x00modelr" + (175_726_962).to_bytes(4, "little") + b"}s."
    assert pickle._loads(blob) == {"model": {}}  # valid (the C unpickler would allocate 1.4 GB for it)
    tracemalloc.start()
    try:
        assert load_arrays_pickle(blob, "memo.pkl") == {"model": {}}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, peak


def test_array_reconstruction_allocates_only_what_the_data_holds():
    """numpy pickles start every array empty; a file asking for a huge empty array is refused,
    and so is any codec but the latin-1 that protocol 2 uses for bytes."""
    blob = pickle.dumps(np.zeros(3, dtype=np.float32), protocol=2)
    empty_shape = b"K\x00\x85"  # BININT1 0, TUPLE1: the "(0,)" numpy writes
    assert blob.count(empty_shape) == 1
    huge = blob.replace(empty_shape, b"J\x00\x00\x00\x40\x85")  # (2**30,)
    with pytest.raises(CheckpointError, match="unexpected array reconstruction"):
        load_arrays_pickle(huge, "huge.pkl")
    other_codec = blob.replace(b"X\x06\x00\x00\x00latin1", b"X\x06\x00\x00\x00rot_13")
    assert other_codec != blob
    with pytest.raises(CheckpointError, match="unexpected text encoding"):
        load_arrays_pickle(other_codec, "codec.pkl")
