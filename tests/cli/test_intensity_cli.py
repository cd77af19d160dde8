"""``train --window LOW,HIGH`` / ``--intensity``: the rule wins over DATA.yaml's and says so, the
checkpoint stores it, and ``predict`` maps a 16-bit image exactly as that rule maps it by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former import load_model
from mask2former.cli import main
from mask2former.data.image import read_image
from mask2former.data.intensity import OnModelScale, apply_intensity
from mask2former.inference.predictor import Predictor

TRAIN = ["--preset", "tiny_resnet", "--iters", "1", "--batch-size", "2", "--set", "num_workers=0",
         "input.augmentation=none", "eval_period=0"]
LOW, HIGH = 3000.0, 20000.0  # the synthetic bands span about 1,000 .. 34,000


@pytest.fixture
def survey(tmp_path):
    assert main(["-q", "synth", str(tmp_path / "survey"), "--kind", "multispectral", "--train", "2", "--val", "1",
                 "--seed", "2"]) == 0
    return tmp_path / "survey" / "DATA.yaml"


def _scores(predictor: Predictor, image) -> torch.Tensor:
    result = predictor(image, task="semantic")
    assert result.semantic is not None
    return result.semantic.scores


def test_a_window_given_to_train_is_the_rule_predict_applies(survey, tmp_path, caplog):
    assert "intensity: percentile" in survey.read_text()
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="mask2former"):
        assert main(["train", "--data", str(survey), "--output", str(run), "--window", "-1000,400",
                     "--window", f"{LOW:g},{HIGH:g}", *TRAIN]) == 0  # the last --window counts; negative numbers pass
    assert (f"intensity window {LOW:g}..{HIGH:g} (command line, over DATA.yaml's intensity 'percentile')"
            in caplog.text)
    model = load_model(run / "model_final.pt")
    assert (model.config.pixels.intensity, model.config.pixels.window) == ("window", (LOW, HIGH))

    tif = survey.parent / "images" / "val" / "000.tif"
    out = tmp_path / "predicted"
    assert main(["-q", "predict", "--checkpoint", str(run / "model_final.pt"), "--input", str(tif), "--output",
                 str(out), "--task", "semantic"]) == 0
    raw = read_image(tif)
    assert raw.dtype == np.float32 and raw.max() > HIGH and raw.min() < LOW  # the window clips both ends
    by_hand = ((np.clip(raw.astype(np.float64), LOW, HIGH) - LOW) * (255.0 / (HIGH - LOW))).astype(np.float32)
    predictor = Predictor(model)
    expected = _scores(predictor, OnModelScale(by_hand))
    assert torch.equal(_scores(predictor, tif), expected)
    assert np.array_equal(np.asarray(Image.open(out / "semantic" / "000.png")), expected.argmax(0).numpy())
    # eval reads the same DATA.yaml (which says percentile) and applies the checkpoint's window all the same
    assert main(["-q", "eval", "--checkpoint", str(run / "model_final.pt"), "--data", str(survey), "--output",
                 str(tmp_path / "eval"), "--task", "semantic"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "eval" / "semantic" / "000.png")),
                          expected.argmax(0).numpy())
    by_file = apply_intensity(raw, "percentile")  # what DATA.yaml's rule would have fed: not the same
    assert not torch.allclose(_scores(predictor, OnModelScale(by_file)), expected, atol=1e-4)


def test_intensity_on_the_command_line_replaces_a_window_of_the_file(survey, tmp_path, caplog):
    survey.write_text(survey.read_text().replace("intensity: percentile", "window: [0, 65535]"))
    with caplog.at_level("INFO", logger="mask2former"):
        assert main(["train", "--data", str(survey), "--output", str(tmp_path / "run"), "--intensity", "zscore",
                     *TRAIN]) == 0
    assert "intensity zscore (command line, over DATA.yaml's intensity 'window')" in caplog.text
    pixels = load_model(tmp_path / "run" / "model_final.pt").config.pixels
    assert (pixels.intensity, pixels.window) == ("zscore", ())


@pytest.mark.parametrize(("options", "message"), [
    (["--window", "400,-1000"], "argument --window: expected LOW,HIGH, two numbers with LOW < HIGH"),
    (["--window", "0,nan"], "argument --window: expected LOW,HIGH"),
    (["--window", "1,2,3"], "argument --window: expected LOW,HIGH"),
    (["--intensity", "minmax"], "argument --intensity: invalid choice: 'minmax'"),
])
def test_bad_intensity_options_are_usage_errors(options, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--preset", "tiny_resnet", *options, "--print-config"])
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_a_window_with_another_rule_or_a_window_rule_without_one_is_refused(survey, tmp_path, capsys):
    assert main(["train", "--preset", "tiny_resnet", "--window", "0,10", "--intensity", "zscore",
                 "--print-config"]) == 1
    assert "--window clips to a fixed range, which is intensity 'window', not --intensity zscore" in \
        capsys.readouterr().err
    assert main(["train", "--data", str(survey), "--output", str(tmp_path / "run"), "--intensity", "window",
                 *TRAIN]) == 1
    assert "error: --intensity window clips to a fixed range: give it with --window LOW,HIGH" in \
        capsys.readouterr().err
    assert not (tmp_path / "run" / "model_final.pt").exists()


def test_print_config_shows_the_command_lines_rule(capsys):
    assert main(["train", "--preset", "tiny_resnet", "--window=-1000,400", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "intensity: window" in printed and "- -1000.0\n    - 400.0" in printed
