"""Options are checked up front: a bad value is an argparse error (exit 2, naming the option) or,
for ``--set`` and ``--device``, one ``error:`` line naming the key or the option (exit 1), in both
cases before any data, checkpoint or model is read."""

from __future__ import annotations

import argparse

import pytest

from mask2former.cli import main
from mask2former.cli.options import (
    channel_width,
    finite_float,
    non_negative_int,
    positive_float,
    positive_int,
    preset_name,
    probability,
)


@pytest.mark.parametrize(
    ("helper", "good", "bad"),
    [
        (positive_int, [("1", 1), ("+7", 7), ("300", 300)], ["0", "-3", "1.5", "one", "", "nan"]),
        (non_negative_int, [("0", 0), ("12", 12)], ["-1", "2.0", "x"]),
        (finite_float, [("-2.5", -2.5), ("1e-4", 1e-4), ("0", 0.0)], ["nan", "inf", "-inf", "1e999", "abc"]),
        (positive_float, [("1e-4", 1e-4), ("3", 3.0)], ["0", "-1e-4", "nan", "inf"]),
        (probability, [("0", 0.0), ("1", 1.0), ("0.5", 0.5)], ["-0.01", "1.01", "nan", "inf", "half"]),
        (channel_width, [("auto", "auto"), ("8", 8), ("256", 256)], ["7", "0", "-8", "wide", "Auto"]),
        (preset_name, [("demo", "demo"), ("r50_coco_panoptic", "r50_coco_panoptic")], ["r50_coco_panoptik", ""]),
    ],
)
def test_helpers_accept_the_range_and_refuse_the_rest(helper, good, bad):
    for text, value in good:
        assert helper(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected|unknown preset"):
            helper(text)


def test_huge_values_are_quoted_briefly():
    with pytest.raises(argparse.ArgumentTypeError) as error:
        positive_int("9" * 100_000)
    assert len(str(error.value)) < 200


def _usage_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect argparse's exit 2, return its last stderr line (the one with the message)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--batch-size", "0"], "mask2former train: error: argument --batch-size: expected an integer >= 1, "
                                         "got '0'"),
        (["train", "--iters", "0"], "mask2former train: error: argument --iters: expected an integer >= 1, got '0'"),
        (["train", "--iters", "1e3"], "argument --iters: expected an integer >= 1, got '1e3'"),
        (["train", "--preset", "r50_coco_panoptik"], "argument --preset: unknown preset 'r50_coco_panoptik'; did you "
                                                     "mean 'r50_coco_panoptic'"),
        (["eval", "--checkpoint", "c.pt", "--data", "d.yaml", "--batch-size", "0"],
         "mask2former eval: error: argument --batch-size: expected an integer >= 1, got '0'"),
        (["eval", "--checkpoint", "c.pt", "--data", "d.yaml", "--preset", "demoo"], "argument --preset: unknown "
                                                                                     "preset 'demoo'"),
        (["compare", "--data", "d.yaml", "--iters", "-5"], "argument --iters: expected an integer >= 1, got '-5'"),
        (["compare", "--data", "d.yaml", "--batch-size", "0"], "argument --batch-size: expected an integer >= 1"),
        (["compare", "--data", "d.yaml", "--baseline-lr", "nan"], "argument --baseline-lr: expected a finite number, "
                                                                  "got 'nan'"),
        (["compare", "--data", "d.yaml", "--baseline-lr", "0"], "argument --baseline-lr: expected a finite number > 0"),
        (["compare", "--data", "d.yaml", "--baseline-rois", "0"], "argument --baseline-rois: expected an integer >= 1"),
        (["compare", "--data", "d.yaml", "--baseline-width", "4"], "argument --baseline-width: expected 'auto' or a "
                                                                   "channel count >= 8, got '4'"),
        (["demo", "--iters", "0"], "mask2former demo: error: argument --iters: expected an integer >= 1, got '0'"),
        (["demo", "--compare-iters", "0"], "argument --compare-iters: expected an integer >= 1, got '0'"),
        (["synth", "out", "--train", "0"], "mask2former synth: error: argument --train: expected an integer >= 1"),
        (["synth", "out", "--val", "-1"], "argument --val: expected an integer >= 0, got '-1'"),
        (["synth", "out", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
        (["convert", "a.pkl", "b.pt", "--preset", "nope"], "argument --preset: unknown preset 'nope'"),
    ],
)
def test_bad_option_values_are_usage_errors(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # nothing may be written: the folder must stay empty
    line = _usage_error(capsys, argv)
    assert message in line, line
    assert not list(tmp_path.iterdir())


def _one_error_line(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit 1 with exactly one ``error:`` line and no traceback; return it."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


BAD_SETTINGS = [
    ("checkpoint_period=0", "error: checkpoint_period must be an integer >= 1, got 0"),
    ("log_period=0", "error: log_period must be an integer >= 1, got 0"),
    ("keep_checkpoints=-1", "error: keep_checkpoints must be an integer >= 0, got -1"),
    ("eval_period=-5", "error: eval_period must be an integer >= 0, got -5"),
    ("num_workers=-1", "error: num_workers must be an integer >= 0, got -1"),
    ("model.inference.min_size=0", "error: model.inference.min_size must be an integer >= 1, got 0"),
    ("model.inference.max_size=100", "error: model.inference.max_size must be an integer >= "
                                     "model.inference.min_size (256), got 100"),
    ("model.inference.object_mask_threshold=.nan", "error: model.inference.object_mask_threshold: expected a finite "
                                                   "number, got nan"),
    ("model.inference.overlap_threshold=.inf", "error: model.inference.overlap_threshold: expected a finite number, "
                                               "got inf"),
    ("model.inference.overlap_threshold=1.5", "error: model.inference.overlap_threshold must be a finite number in "
                                              "[0, 1], got 1.5"),
    ("model.loss.dice_weight=.nan", "error: model.loss.dice_weight: expected a finite number, got nan"),
    ("solver.base_lr=-1e-4", "error: solver.base_lr must be a finite number >= 0, got -0.0001"),
    ("input.crop_size=[0,0]", "error: input.crop_size[0] must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize(("setting", "message"), BAD_SETTINGS)
def test_train_refuses_bad_settings_before_reading_the_data(tmp_path, capsys, setting, message):
    missing = tmp_path / "missing" / "DATA.yaml"  # were it read, the error would be about this file
    line = _one_error_line(capsys, ["train", "--data", str(missing), "--output", str(tmp_path / "run"),
                                    "--set", setting])
    assert line == message
    assert not (tmp_path / "run").exists()


def test_compare_refuses_bad_settings_before_reading_the_data(tmp_path, capsys):
    line = _one_error_line(capsys, ["compare", "--data", str(tmp_path / "missing.yaml"), "--output",
                                    str(tmp_path / "cmp"), "--set", "log_period=0"])
    assert line == "error: log_period must be an integer >= 1, got 0"
    assert not (tmp_path / "cmp").exists()


def test_demo_refuses_bad_settings_before_writing_the_data(tmp_path, capsys):
    line = _one_error_line(capsys, ["demo", "--output", str(tmp_path / "demo"), "--set", "checkpoint_period=0"])
    assert line == "error: checkpoint_period must be an integer >= 1, got 0"
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data", "{tmp}/missing.yaml", "--output", "{tmp}/run"],
        ["eval", "--checkpoint", "{tmp}/missing.pt", "--data", "{tmp}/missing.yaml", "--output", "{tmp}/run"],
        ["compare", "--data", "{tmp}/missing.yaml", "--output", "{tmp}/run"],
    ],
)
@pytest.mark.parametrize("device", ["cuda:99", "banana"])
def test_unavailable_device_is_refused_before_anything_is_read(tmp_path, capsys, argv, device):
    filled = [a.format(tmp=tmp_path) for a in argv]
    line = _one_error_line(capsys, [*filled, "--device", device])
    assert line.startswith("error: --device") and device in line, line
    assert "missing" not in line
    assert not (tmp_path / "run").exists()


def test_train_without_data_is_an_error_not_a_bug(capsys):
    line = _one_error_line(capsys, ["train", "--preset", "tiny"])
    assert line == "error: --data DATA.yaml is required (or use --print-config)"


def test_print_config_shows_a_valid_override(capsys):
    assert main(["train", "--preset", "tiny", "--iters", "7", "--set", "keep_checkpoints=0", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "max_iter: 7" in out and "keep_checkpoints: 0" in out


def test_scale_to_batch_scales_the_preset_and_says_what_it_did(capsys):
    """detectron2's reference-world-size rule from the preset's batch 16 to --batch-size 2: lr x1/8,
    iterations, warm-up and periods x8; COCO's decay steps are fractions of max_iter, so they follow."""
    import yaml

    assert main(["train", "--preset", "r50_coco_panoptic", "--batch-size", "2", "--scale-to-batch",
                 "--print-config"]) == 0
    captured = capsys.readouterr()
    config = yaml.safe_load(captured.out)
    assert config["batch_size"] == 2 and config["max_iter"] == 368750 * 8
    assert config["solver"]["base_lr"] == pytest.approx(1e-4 / 8) and config["solver"]["warmup_iters"] == 80
    assert config["checkpoint_period"] == 40000
    assert "--scale-to-batch: batch 16 -> 2: learning rate x0.125, iterations x8" in captured.err
    assert "max_iter: 368750 -> 2950000" in captured.err


def test_scale_to_batch_keeps_what_iters_and_set_give(capsys):
    assert main(["train", "--preset", "r50_coco_panoptic", "--batch-size", "4", "--scale-to-batch", "--iters", "100",
                 "--set", "solver.base_lr=0.0003", "--print-config"]) == 0
    captured = capsys.readouterr()
    assert "max_iter: 100\n" in captured.out and "base_lr: 0.0003\n" in captured.out
    assert "warmup_iters: 40\n" in captured.out  # the rest still scaled
    assert "kept as given: max_iter, solver.base_lr" in captured.err


def test_scale_to_batch_without_batch_size_is_an_error(capsys):
    line = _one_error_line(capsys, ["train", "--preset", "r50_coco_panoptic", "--scale-to-batch", "--print-config"])
    assert line == ("error: --scale-to-batch scales the recipe from the preset's batch (16) to --batch-size: give "
                    "--batch-size too")


def test_max_image_pixels_option_refuses_larger_images(tmp_path, tiny_model, capsys, monkeypatch):
    """--max-image-pixels reaches the readers (through the environment, so DataLoader workers see it too)."""
    import numpy as np
    from PIL import Image

    from mask2former import save_model

    monkeypatch.setenv("MASK2FORMER_MAX_IMAGE_PIXELS", "")  # restored after the test
    checkpoint = save_model(tiny_model, tmp_path / "m.pt")
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    args = ["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "a.png"), "--output",
            str(tmp_path / "out")]
    assert main(["-q", "--max-image-pixels", "599", *args]) == 1
    err = capsys.readouterr().err
    assert "a.png" in err and "600" in err and "599" in err, err
    assert main(["-q", "--max-image-pixels", "600", *args]) == 0
    with pytest.raises(SystemExit) as e:
        main(["--max-image-pixels", "0", *args])
    assert e.value.code == 2
    assert "argument --max-image-pixels: expected an integer >= 1" in capsys.readouterr().err


def test_an_alias_bomb_in_set_is_refused_at_once(capsys):
    import time

    bomb = "[" + ",".join(["&a [x,x,x,x,x,x,x,x,x]"] + [f"&{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
                                                       for p, c in zip("abcdefgh", "bcdefghi")]) + "]"
    start = time.perf_counter()
    assert main(["train", "--print-config", "--set", f"model.dataset={bomb}"]) == 1
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err
    assert err.startswith("error: --set 'model.dataset': aliases expand the document") and len(err) < 400, err
