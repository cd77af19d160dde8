"""The CLI end to end: predict writes results; bad input exits non-zero with one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mask2former import save_model
from mask2former.cli import main
from tests.conftest import random_image


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    return save_model(tiny_model, tmp_path / "tiny.safetensors")


def test_predict_writes_every_output(tmp_path, checkpoint):
    images = tmp_path / "images"
    images.mkdir()
    for i, (h, w) in enumerate([(40, 60), (64, 48), (40, 60)]):
        Image.fromarray(random_image(h, w, i)).save(images / f"img{i}.png")
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(images), "--output", str(out),
                 "--task", "all", "--batch-size", "2"])
    assert code == 0
    assert sorted(p.name for p in (out / "semantic").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    assert len(list((out / "overlays").iterdir())) == 9
    assert len(json.loads((out / "panoptic.json").read_text())["annotations"]) == 3
    assert np.asarray(Image.open(out / "semantic" / "img1.png")).shape == (64, 48)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint", "{tmp}/missing.pt", "--input", "{img}"], "checkpoint not found"),
        (["--checkpoint", "{ckpt}", "--input", "{tmp}/missing.png"], "missing.png: file not found"),
        (["--checkpoint", "{ckpt}", "--input", "{tmp}/notes.png"], "notes.png: not an image"),
        (["--checkpoint", "{tmp}/notes.png", "--input", "{img}"], "notes.png: cannot read as a torch checkpoint"),
    ],
)
def test_bad_input_one_line_error(tmp_path, checkpoint, capsys, args, message):
    Image.fromarray(random_image(32, 32)).save(tmp_path / "ok.png")
    (tmp_path / "notes.png").write_text("not an image")
    filled = [a.format(tmp=tmp_path, img=tmp_path / "ok.png", ckpt=checkpoint) for a in args]
    code = main(["predict", *filled, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: ")  # after any progress-bar line


def test_unknown_preset_and_task(tmp_path, checkpoint, capsys):
    assert main(["presets", "r50_coco_panoptik"]) == 1
    assert "did you mean" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse rejects the choice itself
        main(["predict", "--checkpoint", str(checkpoint), "--input", "x", "--output", "y", "--task", "depth"])
    assert e.value.code == 2
