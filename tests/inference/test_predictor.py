"""Predictor: original sizes, the reference resize chain, and batches equal to singles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mask2former import Predictor, get_preset
from mask2former.data.image import ImageError
from mask2former.data.transforms import shortest_edge_size
from mask2former.errors import ConfigError
from mask2former.inference.predictor import tta_views
from tests.conftest import random_image


def test_shortest_edge_size_rule():
    assert shortest_edge_size(480, 640, 800, 1333) == (800, 1067)
    assert shortest_edge_size(100, 1000, 800, 1333) == (133, 1333)  # long side capped
    assert shortest_edge_size(800, 1200, 800, 1333) == (800, 1200)


def test_results_at_original_size_for_every_task(tiny_model):
    predictor = Predictor(tiny_model)
    result = predictor(random_image(50, 77), task="all")
    assert result.semantic.labels.shape == (50, 77)
    assert result.semantic.scores.shape == (4, 50, 77)
    assert result.instance.masks.shape[1:] == (50, 77)
    assert result.panoptic.segments.shape == (50, 77)
    assert (result.instance.scores[:-1] >= result.instance.scores[1:]).all()


def test_batch_equals_singles(tiny_model):
    images = [random_image(60, 80, 1), random_image(61, 79, 2), random_image(96, 64, 3), random_image(60, 80, 4)]
    singles = Predictor(tiny_model, batch_size=1).predict(images, "all")
    batched = Predictor(tiny_model, batch_size=4).predict(images, "all")
    for a, b in zip(singles, batched):
        torch.testing.assert_close(a.semantic.scores, b.semantic.scores, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a.instance.scores, b.instance.scores, rtol=1e-5, atol=1e-5)
        assert torch.equal(a.panoptic.segments, b.panoptic.segments)
        assert (a.height, a.width) == (b.height, b.width)


def test_postprocess_follows_reference_chain(tiny_model):
    """Semantic scores = crop of the padded-size upsampling, resized to the original size."""
    predictor = Predictor(tiny_model)
    image = random_image(50, 77)
    item = predictor.prepare(image)  # resized to the test size, as uint8
    h, w = item.tensor.shape[-2:]
    padded = (-(-h // 32) * 32, -(-w // 32) * 32)
    mean = torch.tensor(tiny_model.config.pixels.mean).view(3, 1, 1)
    std = torch.tensor(tiny_model.config.pixels.std).view(3, 1, 1)
    normalised = (item.tensor.float() - mean) / std  # normalise, then zero-pad (the reference's order)
    with torch.no_grad():
        out = tiny_model(F.pad(normalised, (0, padded[1] - w, 0, padded[0] - h))[None])
    masks = F.interpolate(out.mask_logits, size=padded, mode="bilinear", align_corners=False)[0, :, :h, :w]
    masks = F.interpolate(masks[None], size=(50, 77), mode="bilinear", align_corners=False)[0]
    expected = torch.einsum("qc,qhw->chw", out.class_logits[0].softmax(-1)[:, :-1], masks.sigmoid())
    torch.testing.assert_close(predictor(image, task="semantic").semantic.scores, expected)


def test_inputs_of_every_kind(tiny_model, tmp_path):
    predictor = Predictor(tiny_model)
    rgb = random_image(40, 40)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    from_path = predictor(str(tmp_path / "a.png"), task="semantic")
    from_pil = predictor(Image.fromarray(rgb), task="semantic")
    from_array = predictor(rgb, task="semantic")
    assert torch.equal(from_path.semantic.labels, from_array.semantic.labels)
    assert torch.equal(from_pil.semantic.labels, from_array.semantic.labels)
    gray = predictor(rgb[..., 0], task="semantic")
    assert gray.semantic.labels.shape == (40, 40)


def test_bad_inputs(tiny_model, tmp_path):
    predictor = Predictor(tiny_model)
    with pytest.raises(ImageError, match="expected an \\[H, W\\] or \\[H, W, C\\] image array"):
        predictor(np.zeros((1, 10, 10, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="image 0: pixels of type complex64 are not image intensities"):
        predictor(np.zeros((10, 10, 3), dtype=np.complex64))
    with pytest.raises(ImageError, match="image 0: the image has 4 channels but the model takes 3"):
        predictor(np.zeros((10, 10, 4), dtype=np.uint8))
    with pytest.raises(ImageError, match="missing.png: file not found"):
        predictor(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="unknown task 'depth'"):
        predictor(random_image(32, 32), task="depth")


def _d2_output_shape(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2's ResizeShortestEdge.get_output_shape, transcribed."""
    size = short * 1.0
    scale = size / min(h, w)
    newh, neww = (size, scale * w) if h < w else (scale * h, size)
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def _semantic_scores(model, view: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The official MaskFormer.forward on one view, for a model that evaluates instances too:
    normalise, zero-pad to 32, mask logits -> padded size -> crop -> original size, then the
    semantic inference."""
    x = torch.from_numpy(np.array(view)).permute(2, 0, 1).float()
    x = (x - torch.tensor(model.config.pixels.mean)[:, None, None]) / torch.tensor(model.config.pixels.std)[:, None,
                                                                                                             None]
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, -w % 32, 0, -h % 32))
    out = model(padded[None])
    masks = F.interpolate(out.mask_logits, size=padded.shape[-2:], mode="bilinear", align_corners=False)
    masks = F.interpolate(masks[:, :, :h, :w], size=size, mode="bilinear", align_corners=False)[0]
    return torch.einsum("qc,qhw->chw", out.class_logits[0].softmax(-1)[:, :-1], masks.sigmoid())


def test_semantic_tta_is_the_official_rule(tiny_model):
    """Mask2Former's SemanticSegmentorWithTTA over detectron2's DatasetMapperTTA: views resized
    from the test-resized image (the test loader's), each size by ResizeShortestEdge(min_size,
    MAX_SIZE), each also flipped; every view's scores at the original size, flipped back, and the
    plain mean; no view left out."""
    predictor = Predictor(tiny_model)  # test size: short side 64, long side <= 128
    image = random_image(70, 150)
    min_sizes, max_size = (32, 48, 64, 96, 120), 224
    test_size = _d2_output_shape(70, 150, 64, 128)
    base = np.asarray(Image.fromarray(image).resize(test_size[::-1], Image.Resampling.BILINEAR))
    expected_sizes = [_d2_output_shape(*test_size, s, max_size) for s in min_sizes]
    assert expected_sizes[-1][1] == max_size  # the 120 view is capped by the long side
    seen = []
    original = predictor.postprocess
    predictor.postprocess = lambda *args, **kwargs: seen.append(args[3]) or original(*args, **kwargs)
    got = predictor.semantic_tta(image, min_sizes=min_sizes, max_size=max_size).semantic
    assert seen == [size for size in expected_sizes for _ in range(2)]  # each view and its flip
    total = torch.zeros(4, 70, 150)
    with torch.no_grad():
        for size in expected_sizes:
            view = np.asarray(Image.fromarray(base).resize(size[::-1], Image.Resampling.BILINEAR))
            total += _semantic_scores(tiny_model, view, (70, 150))
            total += _semantic_scores(tiny_model, np.ascontiguousarray(view[:, ::-1]), (70, 150)).flip(-1)
    torch.testing.assert_close(got.scores, total / (2 * len(expected_sizes)), rtol=1e-4, atol=1e-5)
    assert torch.equal(got.labels, got.scores.argmax(0))


def test_semantic_tta_view_at_the_test_size_is_the_plain_prediction(tiny_model):
    predictor = Predictor(tiny_model)
    image = random_image(70, 90)
    one = predictor.semantic_tta(image, min_sizes=(64,), flip=False).semantic.scores
    torch.testing.assert_close(one, predictor(image, task="semantic").semantic.scores)
    flipped = predictor(np.ascontiguousarray(image[:, ::-1]), task="semantic").semantic.scores.flip(-1)
    both = predictor.semantic_tta(image, min_sizes=(64,)).semantic.scores
    torch.testing.assert_close(both, (one + flipped) / 2)
    multi = predictor.semantic_tta(image)  # tiny's default views, each back at the original size
    assert multi.semantic.scores.shape == one.shape and multi.semantic.labels.shape == (70, 90)


@pytest.mark.parametrize("preset, min_sizes, max_size", [
    # TEST.AUG of the official configs (configs/*/Base-*.yaml, the res640 Swin configs) and, where
    # a config leaves it alone (COCO, Mapillary), detectron2's defaults (config/defaults.py)
    ("r50_ade20k_semantic", (256, 384, 512, 640, 768, 896), 3584),
    ("swin_l_in21k_ade20k_semantic", (320, 480, 640, 800, 960, 1120), 4480),
    ("r50_ade20k_panoptic", (320, 480, 640, 800, 960, 1120), 4480),
    ("swin_l_in21k_ade20k_instance", (320, 480, 640, 800, 960, 1120), 4480),
    ("r50_cityscapes_semantic", (512, 768, 1024, 1280, 1536, 1792), 4096),
    ("swin_b_in21k_cityscapes_panoptic", (512, 768, 1024, 1280, 1536, 1792), 4096),
    ("r50_coco_panoptic", (400, 500, 600, 700, 800, 900, 1000, 1100, 1200), 4000),
    ("r50_mapillary_semantic", (400, 500, 600, 700, 800, 900, 1000, 1100, 1200), 4000),
])
def test_tta_views_are_the_official_configs(preset, min_sizes, max_size):
    assert tta_views(get_preset(preset)) == (min_sizes, max_size)


def test_tta_views_of_a_zoo_setting_at_another_test_size_follow_the_test_size():
    config = get_preset("r50_coco_panoptic")
    config.inference.min_size, config.inference.max_size = 512, 1024
    assert tta_views(config) == ((256, 384, 512, 640, 768, 896), 1792)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, "2"])
def test_bad_batch_size_is_an_error_not_a_clamp(tiny_model, batch_size):
    with pytest.raises(ConfigError, match="batch size: expected a whole number >= 1"):
        Predictor(tiny_model, batch_size=batch_size)


def test_missing_device_is_a_config_error(tiny_model):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        Predictor(tiny_model, device="cuda")


def test_image_too_thin_for_the_test_size_names_file_and_sizes(tiny_model, tmp_path):
    predictor = Predictor(tiny_model)  # tiny: short side 64, long side at most 128
    Image.fromarray(random_image(1, 3000)).save(tmp_path / "strip.png")
    expected = (r"strip.png: a 1x3000 image \(height x width\) is too thin to segment: at the test size "
                r"\(short side 64, long side at most 128\) it would be 0x128 px")
    with pytest.raises(ImageError, match=expected):
        predictor(str(tmp_path / "strip.png"))
    with pytest.raises(ImageError, match=expected):
        predictor.semantic_tta(str(tmp_path / "strip.png"))
    with pytest.raises(ImageError, match=r"image 0: a 3000x2 image .* 128x0 px"):
        predictor(random_image(3000, 2))
    # thin but still a pixel wide after resizing: segmented, at the original size
    assert predictor(random_image(12, 3000), task="semantic").semantic.labels.shape == (12, 3000)


def test_a_view_the_model_cannot_run_is_an_image_error_not_dropped(tiny_model):
    predictor = Predictor(tiny_model)
    # a 16 x 16 view pads to 32 x 32: one coarsest pixel, which tiny's one-channel norm groups cannot normalise
    with pytest.raises(ImageError, match=r"image: the 16x16 test-time view is too small for this model"):
        predictor.semantic_tta(random_image(40, 40), min_sizes=(64, 16))


def test_indexed_iteration_reports_bad_images_and_goes_on(tiny_model, tmp_path):
    """A failing image is handed to on_error and skipped; the others come in input order, batched
    only by padded size, equal to one-at-a-time results."""
    (tmp_path / "notes.png").write_text("not an image")
    images = [random_image(60, 80, 1), str(tmp_path / "notes.png"), random_image(96, 64, 2),
              random_image(1, 3000), random_image(60, 80, 3), str(tmp_path / "missing.png"), random_image(61, 79, 4)]
    failed = []
    predictor = Predictor(tiny_model, batch_size=2)
    got = list(predictor.iter_predict_indexed(images, "semantic", on_error=lambda i, e: failed.append((i, str(e)))))
    assert [i for i, _ in got] == [0, 2, 4, 6]
    assert [i for i, _ in failed] == [1, 3, 5]
    assert "notes.png: not an image" in failed[0][1] and "too thin" in failed[1][1]
    assert "missing.png: file not found" in failed[2][1]
    singles = Predictor(tiny_model).predict([images[i] for i in (0, 2, 4, 6)], "semantic")
    for (_, result), single in zip(got, singles):
        torch.testing.assert_close(result.semantic.scores, single.semantic.scores, rtol=1e-5, atol=1e-5)
    # without on_error the first bad image ends the iteration with its error, as before
    with pytest.raises(ImageError, match="notes.png: not an image"):
        list(predictor.iter_predict(images, "semantic"))


def test_indexed_iteration_does_not_swallow_bugs(tiny_model, monkeypatch):
    predictor = Predictor(tiny_model)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not a bad image")

    monkeypatch.setattr(predictor, "predict_batch", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        list(predictor.iter_predict_indexed([random_image(40, 40)], "semantic", on_error=lambda i, e: None))
