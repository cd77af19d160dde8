"""Training under faults: every checkpoint it writes is a usable model, a resume names what
changed, unreadable samples are reported as one line or skipped within a bound, one writer per
output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from mask2former import CheckpointError, ConfigError, DatasetError, TrainingError, load_model
from mask2former.cli import main
from mask2former.config import TrainConfig
from mask2former.data.synthetic import write_synthetic
from mask2former.engine.train import train
from mask2former.folder_lock import FolderBusyError, folder_lock
from mask2former.presets import training_recipe


def _config(iters: int, **overrides) -> TrainConfig:
    config = training_recipe("tiny")  # 64 px crops, batch 2
    config.max_iter, config.checkpoint_period = iters, iters
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture
def data(tmp_path) -> Path:
    path = write_synthetic(tmp_path / "data", num_train=8, num_val=2, seed=0)
    config = yaml.safe_load(path.read_text())
    config.pop("val")
    path.write_text(yaml.safe_dump(config))
    return path


def _break_images(data: Path, count: int) -> list[Path]:
    """Truncate ``count`` training images to a few bytes: unreadable, but listed in the JSON."""
    images = sorted((data.parent / "images" / "train").iterdir())[:count]
    for image in images:
        image.write_bytes(image.read_bytes()[:40])
    return images


def test_every_checkpoint_is_a_model_you_can_use(tmp_path, data, capsys):
    out = tmp_path / "run"
    train(_config(4, checkpoint_period=1, keep_checkpoints=0), data, out, progress=False)
    files = sorted((out / "checkpoints").glob("*.pt"))
    assert [f.name for f in files] == ["last.pt", "model_0000001.pt", "model_0000002.pt", "model_0000003.pt"]
    image = next((data.parent / "images" / "train").iterdir())
    final = load_model(out / "model_final.pt").state_dict()
    for file in files:
        model = load_model(file)
        assert model.config.num_classes == 6
        assert main(["-q", "predict", "--checkpoint", str(file), "--input", str(image), "--output",
                     str(tmp_path / "pred" / file.stem), "--task", "all"]) == 0, capsys.readouterr().err
        assert (tmp_path / "pred" / file.stem / "panoptic.json").exists()
        assert main(["-q", "convert", str(file), str(tmp_path / f"{file.stem}.safetensors")]) == 0
    last = load_model(out / "checkpoints" / "last.pt").state_dict()
    assert all((last[k] == final[k]).all() for k in final)  # last.pt after the last iteration == the final model


def test_resume_with_a_changed_config_names_the_change(tmp_path, data):
    out = tmp_path / "run"
    train(_config(2), data, out, progress=False)
    with pytest.raises(ConfigError) as e:
        train(_config(4, seed=5), data, out, resume=True, progress=False)
    message = str(e.value)
    assert "last.pt" in message and "max_iter: 2 -> 4" in message and "seed: 0 -> 5" in message
    assert "--allow-config-change" in message
    final = train(_config(4), data, out, resume=True, allow_config_change=True, progress=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log if "loss" in r][-2:] == [3, 4]  # continued, not restarted
    assert load_model(final).config.num_classes == 6  # the synthetic dataset's classes


def test_resume_refuses_another_architecture_naming_the_checkpoint(tmp_path, data):
    out = tmp_path / "run"
    train(_config(2), data, out, progress=False)
    other = _config(2)
    other.model.decoder.num_queries = 16
    with pytest.raises(CheckpointError) as e:
        train(other, data, out, resume=True, allow_config_change=True, progress=False)
    message = str(e.value)
    assert "last.pt: cannot resume: the checkpoint holds another architecture" in message
    assert "model.decoder.num_queries: 8 -> 16" in message


def test_a_changed_learning_rate_takes_effect_on_resume(tmp_path, data):
    out = tmp_path / "run"
    config = _config(2)
    train(config, data, out, progress=False)
    changed = _config(4)
    changed.solver.base_lr = config.solver.base_lr * 10
    train(changed, data, out, resume=True, allow_config_change=True, progress=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    lr = {r["iteration"]: r["lr"] for r in log if "lr" in r}
    # the log gives the rate after each update: the new base rate, poly decay over the new 4 iterations
    assert lr[3] == pytest.approx(changed.solver.base_lr * (1 - 3 / 4) ** 0.9, rel=1e-6)


def test_an_unreadable_sample_is_one_line_naming_the_file(tmp_path, data, capsys):
    (bad,) = _break_images(data, 1)
    code = main(["-q", "train", "--data", str(data), "--preset", "tiny", "--iters", "8", "--batch-size", "2",
                 "--output", str(tmp_path / "run"), "--set", "num_workers=1"])
    err = capsys.readouterr().err
    assert code == 1
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # what the progress bar leaves aside
    assert last.startswith(f"error: {bad}: ") and "--skip-bad" in last, err
    assert err.count("error") == 1 and "Traceback" not in err and "worker" not in err


def test_skip_bad_trains_past_a_few_and_says_how_many(tmp_path, data, capsys):
    _break_images(data, 1)
    final = train(_config(8), data, tmp_path / "run", skip_bad=True, max_skipped=0.2, progress=False)
    assert final.exists()
    err = capsys.readouterr().err
    assert any(line.startswith("skipped 2 of 16 samples that failed to load (--skip-bad)")
               for line in err.splitlines()), err


def test_skip_bad_stops_when_everything_fails(tmp_path, data):
    _break_images(data, 8)
    with pytest.raises(TrainingError, match="all 2 samples of iteration 1 failed to load"):
        train(_config(50), data, tmp_path / "run", skip_bad=True, progress=False)
    assert not (tmp_path / "run" / "model_final.pt").exists()


def test_skip_bad_stops_past_its_bound(tmp_path, data):
    _break_images(data, 3)  # 3 of 8 images: 37% of the samples
    with pytest.raises(TrainingError, match=r"failed to load, more than the 10% allowed"):
        train(_config(60), data, tmp_path / "run", skip_bad=True, progress=False)


def test_skip_bad_bound_covers_records_dropped_at_build_time(tmp_path, data):
    annotations = data.parent / "annotations" / "panoptic_train.json"
    content = json.loads(annotations.read_text())
    for ann in content["annotations"][:3]:
        ann["segments_info"][0]["category_id"] = 999  # unknown: the image is dropped at build time
    annotations.write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=r"3 of 8 records of split 'train' failed their checks"):
        train(_config(2), data, tmp_path / "run", skip_bad=True, progress=False)


def test_one_writer_per_output_folder(tmp_path, data):
    out = tmp_path / "run"
    with folder_lock(out, "training run"), pytest.raises(FolderBusyError, match="another training run is writing"):
        train(_config(1), data, out, progress=False)
    train(_config(1), data, out, progress=False)  # free again once the holder is done


def test_temporary_files_of_a_killed_write_are_removed_at_start(tmp_path, data):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    stale = [out / "checkpoints" / ".last.pt.0a1b2c3d.tmp", out / ".model_final.pt.deadbeef.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    train(_config(1), data, out, progress=False)
    assert not any(path.exists() for path in stale)


def test_a_truncated_mask_is_reported_too(tmp_path, data, capsys):
    mask = sorted((data.parent / "panoptic" / "train").iterdir())[0]
    Image.new("RGB", (4, 4)).save(mask)  # wrong size for its image
    assert main(["-q", "train", "--data", str(data), "--preset", "tiny", "--iters", "8", "--batch-size", "2",
                 "--output", str(tmp_path / "run"), "--set", "num_workers=0"]) == 1
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(f"error: {mask}: mask is 4x4") and "Traceback" not in err


def test_a_run_checkpointed_in_the_earlier_config_layout_resumes(tmp_path, data):
    """Checkpoints from before the pixel settings moved to ``model.pixels`` hold them in
    ``model.inference``: resuming reads them as the same settings, not as a change."""
    from mask2former.weights import digest

    out = tmp_path / "run"
    train(_config(2), data, out, progress=False)
    last = out / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    inference = state["train_config"]["model"]["inference"]
    pixels = state["train_config"]["model"].pop("pixels")
    inference.update(pixel_mean=pixels["mean"], pixel_std=pixels["std"], size_divisibility=pixels["size_divisibility"])
    keys = ("train_config", "optimizer", "scheduler", "scaler", "iteration", "rng", "extra")
    state["training_sha256"] = digest({k: state[k] for k in keys})
    torch.save(state, last)
    train(_config(2), data, out, resume=True, progress=False)  # no "settings differ" error
