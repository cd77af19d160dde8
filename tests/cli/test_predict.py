"""The CLI end to end: predict writes results; bad input exits non-zero with one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
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


# ---------------------------------------------------------------------------------------------
# One bad item never costs the good ones, and never passes silently.

GOOD = ["a_rgb.jpg", "b_gray.png", "c_rgba.png"]
BAD = {"d_truncated.png": "truncated", "e_text.png": "not an image", "f_nan.tif": "NaN or infinite",
       "g_thin.png": "too thin"}


@pytest.fixture
def hostile_folder(tmp_path):
    """Three good images and four bad ones, in an order that puts bad ones between good ones."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    Image.fromarray(random_image(40, 60, 1)).save(folder / "a_rgb.jpg")
    Image.fromarray(random_image(50, 44, 2)[..., 0]).save(folder / "b_gray.png")
    rgba = np.dstack([random_image(36, 70, 3), np.full((36, 70), 128, np.uint8)])
    Image.fromarray(rgba).save(folder / "c_rgba.png")
    Image.fromarray(random_image(64, 64, 4)).save(folder / "d_truncated.png")
    data = (folder / "d_truncated.png").read_bytes()
    (folder / "d_truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "e_text.png").write_text("these are my notes, not a picture\n")
    nan = np.ones((30, 30), np.float32)
    nan[3, 3] = np.nan  # a float image no intensity rule can place
    tifffile.imwrite(folder / "f_nan.tif", nan)
    Image.fromarray(random_image(1, 3000, 5)).save(folder / "g_thin.png")
    # move a good image after the bad ones, so a run that stopped at the first bad one would lose it
    (folder / "c_rgba.png").rename(folder / "h_rgba.png")
    return folder


def _stems(names):
    return sorted(n.rsplit(".", 1)[0] for n in names)


def _index(out):
    pan = json.loads((out / "panoptic.json").read_text())
    instances = json.loads((out / "instances.json").read_text())
    return pan, instances


def _assert_index_matches_files(out):
    """panoptic.json / instances.json list exactly the images whose files exist."""
    pan, instances = _index(out)
    png_stems = sorted(p.stem for p in (out / "panoptic").iterdir())
    assert sorted(a["file_name"][:-4] for a in pan["annotations"]) == png_stems
    assert sorted(str(i["id"]) for i in pan["images"]) == png_stems
    assert {r["image_id"] for r in instances} <= set(png_stems)
    assert sorted(p.stem for p in (out / "semantic").iterdir()) == png_stems
    return png_stems


def test_bad_files_in_a_folder_cost_nothing_and_fail_the_run(tmp_path, checkpoint, hostile_folder, capsys, caplog):
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(hostile_folder), "--output", str(out),
                 "--task", "all", "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    good = ["a_rgb", "b_gray", "h_rgba"]
    assert _assert_index_matches_files(out) == good
    pan, instances = _index(out)
    assert {r["image_id"] for r in instances} == set(good)  # top-k: every image has instance entries
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(
        f"{s}_{t}.png" for s in good for t in ("semantic", "instance", "panoptic"))
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("error: 4 of 7 images failed: ")
    for name, reason in BAD.items():
        assert f"{hostile_folder / name}: " in summary and reason in summary
        # and each was reported as it happened, naming the file
        assert any(name in r.getMessage() and r.levelname == "WARNING" for r in caplog.records), name


def test_strict_stops_at_the_first_bad_image_with_a_consistent_index(tmp_path, checkpoint, hostile_folder, capsys):
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(hostile_folder), "--output", str(out),
                 "--task", "all", "--strict"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: {hostile_folder / 'd_truncated.png'}: cannot decode")
    assert _assert_index_matches_files(out) == ["a_rgb", "b_gray"]  # h_rgba comes after the bad ones
    assert "e_text" not in err  # it stopped: later files were not even read


def test_second_run_into_a_locked_folder_is_refused(tmp_path, checkpoint, capsys):
    import fcntl

    Image.fromarray(random_image(40, 40)).save(tmp_path / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".mask2former.lock", "w") as held:  # another run holds the folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "x.png"),
                     "--output", str(out), "--task", "all"])
        err = capsys.readouterr().err
        assert code == 1
        assert err.strip().splitlines()[-1] == (f"error: {out}: another prediction run is writing into this folder "
                                                "(it holds .mask2former.lock); wait for it to finish or choose "
                                                "another output folder")
        assert sorted(p.name for p in out.iterdir()) == [".mask2former.lock"]  # nothing written
    # once the other run is done, the same command works and releases the lock at the end
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "x.png"),
                 "--output", str(out), "--task", "all"]) == 0
    with open(out / ".mask2former.lock", "w") as after:
        fcntl.flock(after, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held


def test_sequential_runs_merge_the_index(tmp_path, checkpoint):
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "out"
    first.mkdir()
    second.mkdir()
    Image.fromarray(random_image(40, 60, 1)).save(first / "a.png")
    Image.fromarray(random_image(40, 60, 2)).save(first / "b.png")
    Image.fromarray(random_image(72, 50, 3)).save(second / "b.png")  # b again, now another picture and size
    Image.fromarray(random_image(48, 48, 4)).save(second / "c.png")
    args = ["--checkpoint", str(checkpoint), "--output", str(out), "--task", "all", "--no-overlays"]
    assert main(["predict", "--input", str(first), *args]) == 0
    _, instances_first = _index(out)
    assert main(["predict", "--input", str(second), *args]) == 0
    assert _assert_index_matches_files(out) == ["a", "b", "c"]
    pan, instances = _index(out)
    sizes = {i["id"]: (i["height"], i["width"]) for i in pan["images"]}
    assert sizes == {"a": (40, 60), "b": (72, 50), "c": (48, 48)}  # b replaced, a kept
    assert [r for r in instances if r["image_id"] == "a"] == [r for r in instances_first if r["image_id"] == "a"]
    for r in instances:
        if r["image_id"] == "b":
            assert r["segmentation"]["size"] == [72, 50]  # only the second run's b entries remain
    assert len([a for a in pan["annotations"] if a["image_id"] == "b"]) == 1


def test_index_of_a_model_with_other_categories_is_refused(tmp_path, checkpoint, capsys):
    from mask2former import build_model, get_preset, save_model
    from mask2former.config import CategoryInfo

    config = get_preset("tiny")
    config.categories = [CategoryInfo(id=i + 1, name=f"thing{i}") for i in range(config.num_classes)]
    other = save_model(build_model(config).eval(), tmp_path / "other.safetensors")
    Image.fromarray(random_image(40, 40)).save(tmp_path / "x.png")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "x.png"),
                 "--output", str(out), "--task", "panoptic"]) == 0
    before = (out / "panoptic.json").read_bytes()
    capsys.readouterr()
    code = main(["predict", "--checkpoint", str(other), "--input", str(tmp_path / "x.png"),
                 "--output", str(out), "--task", "panoptic"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{out / 'panoptic.json'}: written by a model with other categories" in err
    assert "choose another --output folder" in err
    assert (out / "panoptic.json").read_bytes() == before


@pytest.mark.parametrize("name", ["panoptic.json", "instances.json"])
def test_corrupt_existing_index_is_refused_not_overwritten(tmp_path, checkpoint, capsys, name):
    Image.fromarray(random_image(40, 40)).save(tmp_path / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text('{"images": [')  # a run killed while writing it, by a tool without atomic writes
    code = main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "x.png"),
                 "--output", str(out), "--task", "all"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"error: {out / name}: the existing index is not valid JSON" in err
    assert (out / name).read_text() == '{"images": ['
    assert not (out / "panoptic").exists() or not list((out / "panoptic").iterdir())


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-size", "0", "expected an integer >= 1, got '0'"),
        ("--batch-size", "-3", "expected an integer >= 1, got '-3'"),
        ("--batch-size", "two", "expected an integer >= 1, got 'two'"),
        ("--score-threshold", "nan", "expected a finite number, got 'nan'"),
        ("--score-threshold", "inf", "expected a finite number, got 'inf'"),
        ("--score-threshold", "-1", "expected a number in [0, 1], got '-1'"),
        ("--score-threshold", "2", "expected a number in [0, 1], got '2'"),
    ],
)
def test_bad_option_values_are_rejected_up_front(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as e:
        main(["predict", "--checkpoint", str(tmp_path / "missing.pt"), "--input", "x", "--output", "y",
              option, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {message}" in err
    assert not (tmp_path / "y").exists()


def test_option_types_accept_the_edges():
    from mask2former.cli.predict import positive_int, probability

    assert positive_int("1") == 1 and positive_int("64") == 64
    assert probability("0") == 0.0 and probability("1") == 1.0 and probability("0.25") == 0.25


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_missing_gpu_fails_before_the_model_loads(tmp_path, capsys):
    Image.fromarray(random_image(32, 32)).save(tmp_path / "x.png")
    code = main(["predict", "--checkpoint", str(tmp_path / "missing.pt"), "--input", str(tmp_path / "x.png"),
                 "--output", str(tmp_path / "out"), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == "error: --device cuda: no CUDA GPU is available on this machine (use --device cpu)"
    assert not (tmp_path / "out").exists()
