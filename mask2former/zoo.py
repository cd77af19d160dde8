"""The official model zoo as data: which file belongs to which preset, and what it must score.

Official ``.pkl`` files store no config, and several zoo settings share an architecture (ADE20K
semantic and panoptic R50 differ only in test size and tasks), so their tensor shapes cannot tell
which setting a file was trained for. Its file name can: ``model_final_<md5 prefix>.pkl`` is
unique per file. ``ZOO`` lists the 47 image-segmentation files of the official MODEL_ZOO.md
(facebookresearch/Mask2Former @ 161be51; metrics checked against the spec, §2) with the preset
each belongs to, its published val metrics and its download address. No sha256 is published, so
``sha256`` is None everywhere; nothing here downloads.

``architecture`` is the part of a ``ModelConfig`` that tensor shapes show; presets with equal
architectures are the ones only a file name or ``--preset`` tells apart.

``BACKBONE_FILES`` lists the standard ImageNet files the backbones start from (torchvision's ResNets,
the Swin authors' releases, and timm's copies of both) with the names the local caches keep them
under; ``mask2former.backbone_weights`` reads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mask2former.config import BackboneConfig, ModelConfig
from mask2former.presets import PRESETS

DOWNLOAD_ROOT = "https://dl.fbaipublicfiles.com/maskformer/mask2former"
TTA = "tta:"  # column prefix: a multi-scale + flip number (``eval --tta``)


@dataclass(frozen=True)
class ZooWeights:
    """One model-zoo file. ``metrics`` are the published val numbers in percent, keyed as
    ``metrics.json`` keys them; ``metrics_tta`` those with multi-scale + flip (``eval --tta``)."""

    file: str
    preset: str
    config: str  # the official config's name (MODEL_ZOO.md's row)
    model_id: str
    metrics: Mapping[str, float]
    metrics_tta: Mapping[str, float] = field(default_factory=dict)
    url: str | None = None
    sha256: str | None = None  # not published; a later download must not trust a guessed one

    @property
    def md5_prefix(self) -> str:
        """The published integrity check: MODEL_ZOO.md puts an md5 prefix in every file name."""
        return self.file.removeprefix("model_final_").removesuffix(".pkl")


# setting -> (download folder, metric keys in MODEL_ZOO.md's column order, rows of
# (backbone, official config name, model id, md5 prefix, metric values)).
# Left out: COCO instance "Boundary AP" (not a metric ``eval`` computes) and the video models.
_PANOPTIC = ("panoptic.PQ", "instance.AP", "semantic.mIoU")
_SEMANTIC = ("semantic.mIoU", TTA + "semantic.mIoU")
_TABLES: dict[str, tuple[str, tuple[str, ...], list[tuple[str, str, str, str, tuple[float, ...]]]]] = {
    "coco_panoptic": ("coco/panoptic", _PANOPTIC, [
        ("r50", "maskformer2_R50_bs16_50ep", "47430278_4", "94dc52", (51.9, 41.7, 61.7)),
        ("r101", "maskformer2_R101_bs16_50ep", "47992113_1", "b807bd", (52.6, 42.6, 62.4)),
        ("swin_t", "maskformer2_swin_tiny_bs16_50ep", "48558700_1", "9fd0ae", (53.2, 43.3, 63.2)),
        ("swin_s", "maskformer2_swin_small_bs16_50ep", "48558700_3", "a407fd", (54.6, 44.7, 64.2)),
        ("swin_b", "maskformer2_swin_base_384_bs16_50ep", "48558700_5", "9d7f02", (55.1, 45.2, 65.1)),
        ("swin_b_in21k", "maskformer2_swin_base_IN21k_384_bs16_50ep", "48558700_7", "54b88a", (56.4, 46.3, 67.1)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_100ep", "47429163_0", "f07440", (57.8, 48.6, 67.4)),
    ]),
    "coco_instance": ("coco/instance", ("instance.AP",), [
        ("r50", "maskformer2_R50_bs16_50ep", "47430277_2", "3c8ec9", (43.7,)),
        ("r101", "maskformer2_R101_bs16_50ep", "47992113_0", "eba159", (44.2,)),
        ("swin_t", "maskformer2_swin_tiny_bs16_50ep", "48558700_0", "86143f", (45.0,)),
        ("swin_s", "maskformer2_swin_small_bs16_50ep", "48558700_2", "1e7f22", (46.3,)),
        ("swin_b", "maskformer2_swin_base_384_bs16_50ep", "48558700_4", "f6e0f6", (46.7,)),
        ("swin_b_in21k", "maskformer2_swin_base_IN21k_384_bs16_50ep", "48558700_6", "83d103", (48.1,)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_100ep", "48235555", "e5f453", (50.1,)),
    ]),
    "cityscapes_panoptic": ("cityscapes/panoptic", _PANOPTIC, [
        ("r50", "maskformer2_R50_bs16_90k", "48267400_0", "4ab90c", (62.1, 37.3, 77.5)),
        ("r101", "maskformer2_R101_bs16_90k", "48267400_11", "04d286", (62.4, 37.7, 78.6)),
        ("swin_t", "maskformer2_swin_tiny_bs16_90k", "48333144_2", "ceba0f", (63.9, 39.1, 80.5)),
        ("swin_s", "maskformer2_swin_small_bs16_90k", "48381916", "23efb7", (64.8, 40.7, 81.8)),
        ("swin_b_in21k", "maskformer2_swin_base_IN21k_384_bs16_90k", "48333157_2", "fa840f", (66.1, 42.8, 82.7)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_90k", "48318254_2", "064788", (66.6, 43.6, 82.9)),
    ]),
    "cityscapes_instance": ("cityscapes/instance", ("instance.AP", "instance.AP50"), [
        ("r50", "maskformer2_R50_bs16_90k", "48267400_8", "01a8ed", (37.4, 61.9)),
        ("r101", "maskformer2_R101_bs16_90k", "48267400_16", "c2b8c8", (38.5, 63.9)),
        ("swin_t", "maskformer2_swin_tiny_bs16_90k", "48333144_4", "6a63f8", (39.7, 66.9)),
        ("swin_s", "maskformer2_swin_small_bs16_90k", "48333149_4", "974824", (41.8, 70.4)),
        ("swin_b_in21k", "maskformer2_swin_base_IN21k_384_bs16_90k", "48333157_4", "7a3b6d", (42.0, 68.8)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_90k", "49111004_2", "dfa862", (43.7, 71.4)),
    ]),
    "cityscapes_semantic": ("cityscapes/semantic", _SEMANTIC, [
        ("r50", "maskformer2_R50_bs16_90k", "48267400_4", "cc1b1f", (79.4, 82.2)),
        ("r101", "maskformer2_R101_bs16_90k", "48267400_13", "257ce8", (80.1, 81.9)),
        ("swin_t", "maskformer2_swin_tiny_bs16_90k", "48333144_3", "2d58d4", (82.1, 83.0)),
        ("swin_s", "maskformer2_swin_small_bs16_90k", "48333149_3", "fa26ae", (82.6, 83.6)),
        ("swin_b_in21k", "maskformer2_swin_base_IN21k_384_bs16_90k", "48333157_3", "1c6b65", (83.3, 84.5)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_90k", "48318254_5", "17c1ee", (83.3, 84.3)),
    ]),
    "ade20k_panoptic": ("ade20k/panoptic", _PANOPTIC, [
        ("r50", "maskformer2_R50_bs16_160k", "48243028_0", "5c90d4", (39.7, 26.5, 46.1)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_160k", "48267279", "e0c58e", (48.1, 34.2, 54.5)),
    ]),
    "ade20k_instance": ("ade20k/instance", ("instance.AP",), [
        ("r50", "maskformer2_R50_bs16_160k", "47429167_7", "67e945", (26.4,)),
        # MODEL_ZOO.md labels this row's backbone "R50"; its config and 200 queries are Swin-L's (M2F issue #116)
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_160k", "49040271_0", "92dae9", (34.9,)),
    ]),
    "ade20k_semantic": ("ade20k/semantic", _SEMANTIC, [
        ("r50", "maskformer2_R50_bs16_160k", "47429167_5", "500878", (47.2, 49.2)),
        # the official name says 90k; MODEL_ZOO.md lists 160k iterations for it
        ("r101", "maskformer2_R101_bs16_90k", "48243040_0", "0d68be", (47.8, 50.1)),
        ("swin_t", "maskformer2_swin_tiny_bs16_160k", "48333144_5", "5274a6", (47.7, 49.6)),
        ("swin_s", "maskformer2_swin_small_bs16_160k", "48333149_5", "011c6d", (51.3, 52.4)),
        ("swin_b", "maskformer2_swin_base_384_bs16_160k_res640", "48333153_5", "503e96", (52.4, 53.7)),
        ("swin_b_in21k", "maskformer2_swin_base_IN21k_384_bs16_160k_res640", "48333157_5", "7e47bf", (53.9, 55.1)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_160k_res640", "48004474_0", "6b4a3a", (56.1, 57.3)),
    ]),
    "mapillary_panoptic": ("mapillary_vistas/panoptic", ("panoptic.PQ", "semantic.mIoU"), [
        ("r50", "maskformer_R50_bs16_300k", "49392417_0", "4e9874", (36.3, 50.7)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_300k", "48267065_4", "132c71", (45.5, 60.8)),
    ]),
    "mapillary_semantic": ("mapillary_vistas/semantic", _SEMANTIC, [
        ("r50", "maskformer_R50_bs16_300k", "49189528_1", "6c66d0", (57.4, 59.0)),
        ("swin_l_in21k", "maskformer2_swin_large_IN21k_384_bs16_300k", "49189528_0", "90ee2d", (63.2, 64.7)),
    ]),
}


def _entries() -> dict[str, ZooWeights]:
    """``ZOO`` from ``_TABLES``: one entry per file, keyed by file name."""
    out: dict[str, ZooWeights] = {}
    for setting, (folder, columns, rows) in _TABLES.items():
        for backbone, config, model_id, md5, values in rows:
            file = f"model_final_{md5}.pkl"
            metrics = {k: v for k, v in zip(columns, values, strict=True) if not k.startswith(TTA)}
            tta = {k.removeprefix(TTA): v for k, v in zip(columns, values, strict=True) if k.startswith(TTA)}
            out[file] = ZooWeights(file=file, preset=f"{backbone}_{setting}", config=config, model_id=model_id,
                                   metrics=metrics, metrics_tta=tta, url=f"{DOWNLOAD_ROOT}/{folder}/{config}/{file}")
    return out


ZOO: dict[str, ZooWeights] = _entries()


def weights_for(preset: str) -> ZooWeights | None:
    """The model-zoo file trained with ``preset`` (None for the CPU presets)."""
    return next((w for w in ZOO.values() if w.preset == preset), None)


# ----------------------------------------------------------------------------- architectures


def architecture(config: ModelConfig) -> dict[str, Any]:
    """The fields of ``config`` that an official state dict's names and shapes show (dotted keys):
    two configs with equal architectures load the same files. Head counts are not among them."""
    b, pd, d = config.backbone, config.pixel_decoder, config.decoder
    if b.name == "resnet":
        backbone = {"backbone.name": b.name, "backbone.depth": b.depth}
    else:
        backbone = {"backbone.name": b.name, "backbone.embed_dim": b.embed_dim, "backbone.depths": tuple(b.depths),
                    "backbone.num_heads": tuple(b.num_heads), "backbone.window_size": b.window_size,
                    "backbone.mlp_ratio": float(b.mlp_ratio)}
    return {**backbone, "num_classes": config.num_classes, "pixel_decoder.conv_dim": pd.conv_dim,
            "pixel_decoder.mask_dim": pd.mask_dim, "pixel_decoder.num_encoder_layers": pd.num_encoder_layers,
            "pixel_decoder.encoder_ffn_dim": pd.encoder_ffn_dim, "decoder.hidden_dim": d.hidden_dim,
            "decoder.num_queries": d.num_queries, "decoder.ffn_dim": d.ffn_dim, "decoder.num_layers": d.num_layers,
            "decoder.enforce_input_proj": d.enforce_input_proj}


def architecture_difference(checkpoint: ModelConfig, preset: ModelConfig) -> str:
    """``"num_classes: checkpoint 133, preset 150; ..."`` for every architecture field that differs."""
    a, b = architecture(checkpoint), architecture(preset)
    return "; ".join(f"{k}: checkpoint {a.get(k, '-')}, preset {b.get(k, '-')}" for k in {**a, **b}
                     if a.get(k) != b.get(k))


def presets_with_architecture(config: ModelConfig) -> dict[str, ModelConfig]:
    """Every preset (in ``PRESETS`` order) whose weights have the shapes of ``config``'s."""
    wanted = architecture(config)
    candidates = {name: make() for name, make in PRESETS.items()}
    return {name: c for name, c in candidates.items() if architecture(c) == wanted}


def settings_difference(configs: Mapping[str, ModelConfig]) -> list[str]:
    """Dotted keys whose values differ among ``configs`` (a class list counts as one key)."""
    flat = [_flatten(dataclasses.asdict(c)) for c in configs.values()]
    keys = dict.fromkeys(k for f in flat for k in f)
    return [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# ----------------------------------------------------------------------------- ImageNet backbone files


@dataclass(frozen=True)
class BackboneFile:
    """One standard ImageNet file a backbone starts from, and where the local caches keep it.

    ``torch_cache`` names the file in torchvision's cache (``$TORCH_HOME/hub/checkpoints``: torch.hub
    and timm save downloads by URL there); ``hub_repos`` are timm's HuggingFace repos of the same weights
    (``$HF_HOME/hub/models--timm--<name>``). ``official`` is the file a Mask2Former config names
    (detectron2's conversion of the same weights); ``url`` where the file is published. Nothing here
    downloads: ``--backbone-weights imagenet`` only looks in the caches.
    """

    name: str
    family: str  # "resnet" | "swin"
    layout: str  # the layout of the ``torch_cache`` file (the hub files are timm's)
    torch_cache: tuple[str, ...]
    hub_repos: tuple[str, ...]
    url: str
    pretrain: str = "in1k"  # "in1k" (ImageNet-1k) | "in22k" (ImageNet-22k)
    depth: int = 0  # ResNet
    embed_dim: int = 0  # Swin
    depths: tuple[int, ...] = ()
    num_heads: tuple[int, ...] = ()
    window_size: int = 0
    pretrain_img_size: int = 0
    official: str = ""

    def fits(self, backbone: BackboneConfig) -> bool:
        """True when the file has ``backbone``'s architecture (shapes and window)."""
        if backbone.name != self.family:
            return False
        if self.family == "resnet":
            return backbone.depth == self.depth
        return (backbone.embed_dim, tuple(backbone.depths), tuple(backbone.num_heads), backbone.window_size) == \
            (self.embed_dim, self.depths, self.num_heads, self.window_size)


_TORCHVISION = "https://download.pytorch.org/models"
_SWIN = "https://github.com/SwinTransformer/storage/releases/download/v1.0.0"


def _resnet_file(depth: int, files: tuple[str, ...], official: str = "") -> BackboneFile:
    """torchvision's IMAGENET1K_V1 ResNet (timm calls it ``tv_in1k``)."""
    return BackboneFile(name=f"resnet{depth}", family="resnet", layout="torchvision ResNet", torch_cache=files,
                        hub_repos=(f"timm/resnet{depth}.tv_in1k",), url=f"{_TORCHVISION}/{files[0]}", depth=depth,
                        official=official)


def _swin_file(name: str, timm_name: str, embed_dim: int, depths: tuple[int, ...], heads: tuple[int, ...],
               pretrain: str) -> BackboneFile:
    """The Swin authors' release (timm keeps the same weights as ``timm_name``)."""
    window, size = (12, 384) if "window12_384" in name else (7, 224)
    return BackboneFile(name=name, family="swin", layout="official Swin", torch_cache=(f"{name}.pth",),
                        hub_repos=(f"timm/{timm_name}",), url=f"{_SWIN}/{name}.pth", pretrain=pretrain,
                        embed_dim=embed_dim, depths=depths, num_heads=heads, window_size=window,
                        pretrain_img_size=size, official=f"{name}.pkl")


# resnet50-19c8e357.pth is the older name of the same IMAGENET1K_V1 weights (the name Mask2Former's
# tools/convert-torchvision-to-d2.py and torchvision < 0.13 use); R-50.pkl / R-101.pkl are detectron2's
# conversions of these files, with the stride in the 3x3 conv (STRIDE_IN_1X1 False).
BACKBONE_FILES: tuple[BackboneFile, ...] = (
    _resnet_file(18, ("resnet18-f37072fd.pth",)),
    _resnet_file(34, ("resnet34-b627a593.pth",)),
    _resnet_file(50, ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth"), "R-50.pkl"),
    _resnet_file(101, ("resnet101-63fe2227.pth",), "R-101.pkl"),
    _resnet_file(152, ("resnet152-394f9c45.pth",)),
    _swin_file("swin_tiny_patch4_window7_224", "swin_tiny_patch4_window7_224.ms_in1k", 96, (2, 2, 6, 2),
               (3, 6, 12, 24), "in1k"),
    _swin_file("swin_small_patch4_window7_224", "swin_small_patch4_window7_224.ms_in1k", 96, (2, 2, 18, 2),
               (3, 6, 12, 24), "in1k"),
    _swin_file("swin_base_patch4_window12_384", "swin_base_patch4_window12_384.ms_in1k", 128, (2, 2, 18, 2),
               (4, 8, 16, 32), "in1k"),
    _swin_file("swin_base_patch4_window12_384_22k", "swin_base_patch4_window12_384.ms_in22k", 128, (2, 2, 18, 2),
               (4, 8, 16, 32), "in22k"),
    _swin_file("swin_large_patch4_window12_384_22k", "swin_large_patch4_window12_384.ms_in22k", 192,
               (2, 2, 18, 2), (6, 12, 24, 48), "in22k"),
)


def backbone_files_for(backbone: BackboneConfig) -> list[BackboneFile]:
    """The standard files with ``backbone``'s architecture, ImageNet-1k first."""
    return sorted((f for f in BACKBONE_FILES if f.fits(backbone)), key=lambda f: f.pretrain != "in1k")
