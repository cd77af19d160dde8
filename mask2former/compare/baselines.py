"""Traditional baselines from torchvision, trained and run the same way as Mask2Former:
Mask R-CNN (ResNet-50 FPN) for instances, DeepLabV3 (ResNet-50) for semantic segmentation, and
the two combined by the standard heuristic merge for panoptic segmentation.

Nothing is downloaded: both are built with random weights (``weights=None, weights_backbone=None``)
and, when Mask2Former's backbone starts from a ResNet file (``--backbone-weights``), their ResNet
starts from the same tensors (``backbone_state``), so both sides get the same start. Their
predictions are converted to our result structures, so one evaluator scores all models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mask2former.data.collate import pad_and_normalize, pad_targets
from mask2former.data.transforms import inference_size, resize_image
from mask2former.formats import IGNORE_LABEL
from mask2former.inference.postprocess import masks_to_boxes
from mask2former.structures import InstanceResult, PanopticResult, Segment, SemanticResult, Target
from mask2former.weights import load_state_strict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_resnet_body(body: nn.Module, state: Mapping[str, torch.Tensor] | None, source: str) -> None:
    """ResNet tensors in torchvision's names into a baseline's ResNet trunk (an
    ``IntermediateLayerGetter`` up to ``layer4``: no ``fc``), strictly; BN keeps training from them."""
    if state is not None:
        load_state_strict(body, state, source)


def build_mask_rcnn(num_things: int, *, min_size: int, max_size: int, backbone: str = "resnet50",
                    rois_per_image: int = 512, width: int = 256,
                    backbone_state: Mapping[str, torch.Tensor] | None = None, source: str = "") -> nn.Module:
    """torchvision Mask R-CNN with an FPN backbone, random weights (the ResNet from ``backbone_state``,
    read from ``source``, when given), all layers trainable.
    ``rois_per_image`` is the box head's sampled proposals per image (torchvision: 512, tuned for
    COCO's many objects; fewer suit small images with few objects and train faster). ``width`` is
    the FPN, RPN and mask-head channel count (torchvision: 256) and the box head's MLP is 4x it
    (torchvision: 1024), so a narrow Mask2Former can be compared with an equally narrow baseline."""
    import torchvision
    from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    kwargs = {"min_size": min_size, "max_size": max_size, "box_batch_size_per_image": rois_per_image}
    if backbone == "resnet50" and width == 256:
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_things + 1, **kwargs)
    else:
        resnet = getattr(torchvision.models, backbone)(weights=None, norm_layer=nn.BatchNorm2d)
        stage_channels = [resnet.layer1[-1].conv1.in_channels * 2 ** i for i in range(4)]  # res2..res5 outputs
        fpn = BackboneWithFPN(resnet, {f"layer{k}": str(k - 1) for k in range(1, 5)}, stage_channels, width,
                              extra_blocks=LastLevelMaxPool())
        representation = 4 * width
        model = MaskRCNN(fpn, num_classes=None, **kwargs,
                         box_head=TwoMLPHead(width * 7 * 7, representation),
                         box_predictor=FastRCNNPredictor(representation, num_things + 1),
                         mask_head=MaskRCNNHeads(width, [width] * 4, 1),
                         mask_predictor=MaskRCNNPredictor(width, width, num_things + 1))
    load_resnet_body(model.backbone.body, backbone_state, source)
    return model


def build_deeplab(num_classes: int, *, backbone: str = "resnet50", width: int = 256,
                  backbone_state: Mapping[str, torch.Tensor] | None = None, source: str = "") -> nn.Module:
    """torchvision DeepLabV3, random weights (the ResNet from ``backbone_state`` when given):
    ResNet-50/101 at output stride 8 (torchvision's builders; dilation changes no weight's shape);
    ResNet-18/34 at output stride 32 (their basic blocks cannot be dilated). ``width`` is the ASPP
    and head channel count (torchvision: 256)."""
    import torchvision
    from torchvision.models import segmentation
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3

    builders = {"resnet50": segmentation.deeplabv3_resnet50, "resnet101": segmentation.deeplabv3_resnet101}
    if backbone in builders:
        model = builders[backbone](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    else:
        resnet = getattr(torchvision.models, backbone)(weights=None)
        model = DeepLabV3(IntermediateLayerGetter(resnet, {"layer4": "out"}), nn.Identity())
    if width != 256 or backbone not in builders:
        in_channels = model.backbone.layer4[-1].conv1.in_channels if backbone in builders else resnet.fc.in_features
        model.classifier = nn.Sequential(ASPP(in_channels, (12, 24, 36), out_channels=width),
                                         nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                         nn.ReLU(), nn.Conv2d(width, num_classes, 1))
    load_resnet_body(model.backbone, backbone_state, source)
    return model


_MEAN_255 = tuple(255 * m for m in IMAGENET_MEAN)  # torchvision's ImageNet statistics, on our 0-255 scale
_STD_255 = tuple(255 * s for s in IMAGENET_STD)


class MaskRCNNAdapter:
    """Our targets and images in, torchvision's dict targets out; predictions as InstanceResult."""

    def __init__(self, model: nn.Module, thing_classes: Sequence[int]) -> None:
        self.model = model
        self.thing_classes = list(thing_classes)  # detector label l (1-based) -> contiguous class id
        self.to_detector = {c: i + 1 for i, c in enumerate(self.thing_classes)}

    def losses(self, images: list[torch.Tensor], targets: list[Target]) -> dict[str, torch.Tensor]:
        """images: ``[3, H, W]`` uint8 RGB; the detector normalises internally."""
        batch, det_targets = [], []
        for image, target in zip(images, targets):
            keep = target.is_thing & ~target.iscrowd
            masks = target.masks[keep]
            boxes = masks_to_boxes(masks)
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            labels = torch.tensor([self.to_detector[int(c)] for c in target.labels[keep]], dtype=torch.long)
            det_targets.append({"boxes": boxes[valid], "labels": labels[valid], "masks": masks[valid].to(torch.uint8)})
            batch.append(image.float() / 255.0)
        return self.model(batch, det_targets)

    @torch.inference_mode()
    def predict(self, image: np.ndarray, topk: int = 100) -> InstanceResult:
        self.model.eval()
        tensor = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1).float() / 255.0
        out = self.model([tensor])[0]
        order = out["scores"].argsort(descending=True)[:topk]
        masks = out["masks"][order, 0] > 0.5
        labels = torch.tensor([self.thing_classes[int(label) - 1] for label in out["labels"][order]], dtype=torch.long)
        return InstanceResult(masks=masks, scores=out["scores"][order], labels=labels, boxes=masks_to_boxes(masks))


class DeepLabAdapter:
    """DeepLabV3 trained with per-pixel cross-entropy (255 = ignore), predicting label maps."""

    def __init__(self, model: nn.Module, num_classes: int, *, min_size: int, max_size: int) -> None:
        self.model, self.num_classes, self.min_size, self.max_size = model, num_classes, min_size, max_size

    def losses(self, images: list[torch.Tensor], targets: list[Target]) -> dict[str, torch.Tensor]:
        """images: ``[3, H, W]`` uint8 RGB, batched by the model-input contract (no size divisibility:
        DeepLab takes any size); the padding is void for the loss."""
        batch, _ = pad_and_normalize(images, _MEAN_255, _STD_255, 1)
        padded = pad_targets(targets, (batch.shape[-2], batch.shape[-1]))
        labels = torch.stack([t.semantic_map(IGNORE_LABEL) for t in padded])
        logits = self.model(batch)["out"]
        return {"loss_ce": F.cross_entropy(logits, labels, ignore_index=IGNORE_LABEL)}

    @torch.inference_mode()
    def predict(self, image: np.ndarray) -> SemanticResult:
        self.model.eval()
        h, w = image.shape[:2]
        resized = resize_image(image, inference_size(h, w, self.min_size, self.max_size))
        tensor = torch.from_numpy(np.require(resized, requirements=["C", "W"])).permute(2, 0, 1)
        logits = self.model(pad_and_normalize([tensor], _MEAN_255, _STD_255, 1)[0])["out"]
        scores = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)[0].softmax(0)
        return SemanticResult(scores=scores, labels=scores.argmax(0))


def heuristic_panoptic(instances: InstanceResult, semantic_labels: torch.Tensor, thing_flags: Sequence[bool], *,
                       overlap_threshold: float = 0.5, stuff_area_threshold: int = 4096,
                       score_threshold: float = 0.5) -> PanopticResult:
    """The standard combination (Panoptic FPN): paste confident instances in score order, skipping
    those mostly hidden by earlier ones, then fill the rest with semantic stuff regions that are
    large enough. Thing classes in the semantic map are not used for stuff."""
    h, w = semantic_labels.shape
    segments = torch.zeros((h, w), dtype=torch.int32)
    infos: list[Segment] = []
    next_id = 0
    for k in instances.scores.argsort(descending=True).tolist():
        score = float(instances.scores[k])
        if score < score_threshold:
            break
        mask = instances.masks[k]
        area = int(mask.sum())
        if area == 0:
            continue
        taken = int((mask & (segments > 0)).sum())
        if taken / area > overlap_threshold:
            continue
        mask = mask & (segments == 0)
        next_id += 1
        segments[mask] = next_id
        infos.append(Segment(id=next_id, label=int(instances.labels[k]), isthing=True, score=score,
                             area=int(mask.sum())))
    for label in torch.unique(semantic_labels).tolist():
        if label >= len(thing_flags) or thing_flags[label]:
            continue
        mask = (semantic_labels == label) & (segments == 0)
        area = int(mask.sum())
        if area < stuff_area_threshold:
            continue
        next_id += 1
        segments[mask] = next_id
        infos.append(Segment(id=next_id, label=int(label), isthing=False, score=1.0, area=area))
    return PanopticResult(segments=segments, segments_info=infos)
