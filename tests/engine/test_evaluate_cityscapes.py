"""Cityscapes data is scored by cityscapesscripts' rules: instance AP from the raw instanceIds
(caravan instances are not void there, groups and small instances are), mIoU counting classes that
are predicted but absent; ``mask2former eval`` says which rules it used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former import build_model, get_preset, save_model
from mask2former.data.data_yaml import build_split
from mask2former.data.datasets import read_label_map
from mask2former.engine.evaluate import evaluate_checkpoint
from mask2former.evaluation.tasks import TaskEvaluators
from mask2former.structures import ImageResult, InstanceResult, SemanticResult

H, W = 40, 60
ROAD, SKY, PERSON, CAR, MOTORCYCLE = 0, 10, 11, 13, 17  # trainIds


def _scene() -> tuple[np.ndarray, np.ndarray]:
    label = np.full((H, W), 7, np.uint8)
    label[:8] = 23  # sky
    inst = label.astype(np.uint16)
    label[10:22, 2:14], inst[10:22, 2:14] = 26, 26000  # a car of 144 px
    label[10:22, 16:28], inst[10:22, 16:28] = 26, 26001  # another
    label[24:28, 2:6], inst[24:28, 2:6] = 26, 26002  # a small car (16 px): not scored
    label[30:38, 2:30], inst[30:38, 2:30] = 26, 26  # a group of cars
    label[10:30, 40:46], inst[10:30, 40:46] = 24, 24000  # a person of 120 px
    label[30:40, 40:60], inst[30:40, 40:60] = 29, 29000  # a caravan: void in labelIds, not in instanceIds
    return label, inst


@pytest.fixture
def data(tmp_path):
    for split in ("train", "val"):
        for folder in ("leftImg8bit", "gtFine"):
            (tmp_path / folder / split / "aachen").mkdir(parents=True)
        base = "aachen_000000_000019"
        label, inst = _scene()
        rgb = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / "leftImg8bit" / split / "aachen" / f"{base}_leftImg8bit.png")
        Image.fromarray(label).save(tmp_path / "gtFine" / split / "aachen" / f"{base}_gtFine_labelIds.png")
        Image.fromarray(inst).save(tmp_path / "gtFine" / split / "aachen" / f"{base}_gtFine_instanceIds.png")
    (tmp_path / "DATA.yaml").write_text("format: cityscapes\n"
                                        "train: {images: leftImg8bit/train, masks: gtFine/train}\n"
                                        "val: {images: leftImg8bit/val, masks: gtFine/val}\n")
    return tmp_path / "DATA.yaml"


def _result(masks: list[np.ndarray], labels: list[int], scores: list[float], semantic: np.ndarray) -> ImageResult:
    m = torch.from_numpy(np.stack(masks))
    instance = InstanceResult(m, torch.tensor(scores), torch.tensor(labels), torch.zeros(len(masks), 4))
    return ImageResult(H, W, instance=instance,
                       semantic=SemanticResult(torch.zeros(19, H, W), torch.from_numpy(semantic).long()))


def test_instance_ap_and_miou_follow_cityscapes_rules(data):
    split = build_split(data, "val")
    _, target = split.load(0)
    label, inst = _scene()
    perfect = [inst == 26000, inst == 26001, inst == 24000]
    semantic = target.semantic_map(0).numpy()  # void pixels predicted as road
    instance_ids = read_label_map(split.records[0].extra["instance_path"])  # the raw file, as eval reads it
    evaluators = TaskEvaluators(split.categories, ("instance", "semantic"), "cityscapes")
    assert evaluators.needs_instance_ids
    evaluators.update(0, target, _result(perfect, [CAR, CAR, PERSON], [0.9, 0.8, 0.7], semantic),
                      instance_ids=instance_ids)
    assert evaluators.compute()["instance.AP"] == pytest.approx(100.0)

    # A confident car on the caravan: a false positive under cityscapesscripts' rules, whereas
    # the labelIds void would have hidden it. A car on the group or the small car: ignored.
    on_group, on_small = np.zeros((H, W), bool), np.zeros((H, W), bool)
    on_group[30:38, 2:10] = True
    on_small[24:28, 2:6] = True
    semantic[0, 0] = MOTORCYCLE  # predicted, never in the ground truth: IoU 0, averaged in
    evaluators = TaskEvaluators(split.categories, ("instance", "semantic"), "cityscapes")
    masks = [*perfect, inst == 29000, on_group, on_small]
    result = _result(masks, [CAR, CAR, PERSON, CAR, CAR, CAR], [0.9, 0.8, 0.7, 0.95, 0.99, 0.99], semantic)
    evaluators.update(0, target, result, instance_ids=instance_ids)
    metrics, per_class = evaluators.compute_with_per_class()
    assert per_class["instance.AP"]["person"] == pytest.approx(100.0)
    # scores (FP .95, TP .9, TP .8): precision 0, 1/2, 2/3 at recall 0, 1/2, 1; cityscapesscripts
    # integrates sum p_i (r_(i-1) - r_(i+1)) / 2 = 2/3 * 1/4 + 1/2 * 1/2 = 5/12
    assert per_class["instance.AP"]["car"] == pytest.approx(100 * 5 / 12)
    assert per_class["semantic.IoU"]["motorcycle"] == 0.0
    present = [v for k, v in per_class["semantic.IoU"].items() if k != "motorcycle"]
    assert metrics["semantic.mIoU"] == pytest.approx(sum(present) / (len(present) + 1))

    with pytest.raises(ValueError, match="instanceIds"):
        evaluators.update(0, target, _result(perfect, [CAR, CAR, PERSON], [0.9, 0.8, 0.7], semantic))


def test_eval_cli_on_cityscapes_reports_the_rules(data, tmp_path):
    split = build_split(data, "val")
    config = get_preset("tiny")
    config.categories, config.num_classes = list(split.categories), len(split.categories)
    config.inference.object_mask_threshold = 0.0
    checkpoint = save_model(build_model(config), tmp_path / "model.pt")
    metrics = evaluate_checkpoint(checkpoint, data, tmp_path / "out")
    assert {"instance.AP", "instance.AP50", "panoptic.PQ", "semantic.mIoU"} <= set(metrics)
    assert "instance.APs" not in metrics  # COCO's size breakdown does not exist under Cityscapes' rules
    assert "instance AP and mIoU: cityscapesscripts" in (tmp_path / "out" / "report.md").read_text()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == pytest.approx(metrics, nan_ok=True)


def _instance_config():
    """The r50_cityscapes_instance setting (8 classes, instance only, dataset name and metadata)
    on tiny's architecture."""
    preset = get_preset("r50_cityscapes_instance")
    config = get_preset("tiny")
    config.categories, config.num_classes, config.dataset = preset.categories, preset.num_classes, preset.dataset
    config.inference.semantic_on, config.inference.panoptic_on = False, False
    return config


def test_an_8_class_instance_model_is_scored_against_the_8_class_ground_truth(data, tmp_path):
    """The official Cityscapes instance models predict the 8 thing classes; ``eval`` serves them
    the 8-class set without being told, under cityscapesscripts' rules."""
    checkpoint = save_model(build_model(_instance_config()), tmp_path / "model.pt")
    metrics = evaluate_checkpoint(checkpoint, data, tmp_path / "out")
    assert set(metrics) == {"instance.AP", "instance.AP50"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| classes | Cityscapes instance set |" in report and "| tasks | instance |" in report
    assert "instance AP and mIoU: cityscapesscripts" in report


def test_an_8_class_model_gets_the_ap_of_a_19_class_model_for_the_same_detections(data, tmp_path):
    """cityscapesscripts' void is every labelId outside the 19 evaluated classes, whichever classes
    a model predicts: a car detected on the road is a false positive for both."""
    from mask2former.data.data_yaml import load_data_config

    label, inst = _scene()
    on_road = np.zeros((H, W), bool)
    on_road[24:28, 48:58] = True  # road, labelId 7
    masks = [inst == 26000, inst == 26001, on_road, inst == 24000]
    scores = [0.8, 0.7, 0.9, 0.6]
    sets = {}
    text = data.read_text()
    for classes, car, person in (("panoptic", CAR, PERSON), ("instance", 2, 0)):
        data.write_text(text.replace("format: cityscapes\n", f"format: cityscapes\nclasses: {classes}\n"))
        split = build_split(load_data_config(data), "val")
        _, target = split.load(0)
        evaluators = TaskEvaluators(split.categories, ("instance",), "cityscapes")
        labels = [car, car, car, person]
        result = ImageResult(H, W, instance=InstanceResult(torch.from_numpy(np.stack(masks)), torch.tensor(scores),
                                                           torch.tensor(labels), torch.zeros(4, 4)))
        evaluators.update(0, target, result, instance_ids=inst)
        sets[classes] = evaluators.compute_with_per_class()
    assert len(split.categories) == 8
    assert sets["instance"] == sets["panoptic"]
    # car: FP (.9), TP (.8), TP (.7): precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> 5/12 (see above)
    assert sets["instance"][1]["instance.AP"]["car"] == pytest.approx(100 * 5 / 12)
