"""Weights by name: a model-zoo preset (``--checkpoint r50_coco_panoptic``) or the standard ImageNet
backbone file (``--backbone-weights imagenet``) is fetched once from the address the weights table
(``zoo``) gives and kept in a cache; later runs read the cached file.

- Cache: ``$MASK2FORMER_CACHE``, else ``~/.cache/mask2former`` (zoo files); backbone files go to
  torchvision's cache (``$TORCH_HOME/hub/checkpoints``), where torchvision, timm and
  ``--backbone-weights imagenet`` look for them.
- ``$MASK2FORMER_WEIGHTS_MIRROR`` (``http://host:port/prefix``) replaces the scheme and host of every
  address: a mirror inside a network without internet access (and the tests' local server).
- Integrity: a zoo file's name carries the first 6 hex digits of its md5 (MODEL_ZOO.md's rule), a
  torchvision file's the first 8 of its sha256; a download that does not match is deleted and refused.
  Files with no published checksum (the Swin releases) are kept as downloaded, and the log says so.
- ``$MASK2FORMER_OFFLINE=1``: never download (the tests set it).
- A download is written to a temporary file and renamed when complete: an interrupted one leaves
  nothing that a later run could mistake for the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from mask2former.errors import CheckpointError

logger = logging.getLogger(__name__)

CACHE_ENV = "MASK2FORMER_CACHE"
MIRROR_ENV = "MASK2FORMER_WEIGHTS_MIRROR"
OFFLINE_ENV = "MASK2FORMER_OFFLINE"  # 1: never download, use what the caches hold
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where zoo files are kept: ``$MASK2FORMER_CACHE``, else ``~/.cache/mask2former``."""
    return Path(os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"),
                                                          "mask2former")).expanduser()


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def source_url(url: str) -> str:
    """``url``, or the same path on ``$MASK2FORMER_WEIGHTS_MIRROR``."""
    mirror = os.environ.get(MIRROR_ENV, "").rstrip("/")
    if not mirror:
        return url
    return mirror + urlsplit(url).path


@dataclass(frozen=True)
class Checksum:
    """A published prefix of a file's digest."""

    algorithm: str  # "md5" | "sha256"
    prefix: str

    @staticmethod
    def of_zoo_file(name: str) -> Checksum | None:
        found = re.fullmatch(r"model_final_([0-9a-f]{6})\.pkl", name)
        return Checksum("md5", found.group(1)) if found else None

    @staticmethod
    def of_torchvision_file(name: str) -> Checksum | None:
        found = re.fullmatch(r".+-([0-9a-f]{8})\.pth", name)
        return Checksum("sha256", found.group(1)) if found else None


def fetch(url: str, destination: Path, *, checksum: Checksum | None, progress: bool = True) -> Path:
    """``destination`` if it exists, else downloaded from ``url`` (or its mirror) and checked."""
    if destination.is_file():
        logger.info("using the cached %s", destination)
        return destination
    address = source_url(url)
    if offline():
        raise CheckpointError(f"{destination} is not in the cache, and {OFFLINE_ENV}=1 forbids downloading it from "
                              f"{address}; put the file there yourself (or pass its path)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", address, destination)
    digest = hashlib.new(checksum.algorithm) if checksum else None
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            _copy(address, out, digest, progress, destination)
        if checksum and digest is not None and not digest.hexdigest().startswith(checksum.prefix):
            raise CheckpointError(
                f"{address}: the download's {checksum.algorithm} is {digest.hexdigest()[:12]}..., not the published "
                f"{checksum.prefix}...: a damaged or different file; it was deleted (nothing kept in "
                f"{destination.parent})")
        if checksum is None:
            logger.warning("%s: no checksum is published for this file; kept as downloaded", destination.name)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination


def _copy(address: str, out: BinaryIO, digest: Any, progress: bool, destination: Path) -> None:
    from mask2former.progress import Progress

    try:
        with urllib.request.urlopen(address, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = Progress(total=total, desc=destination.name, unit="B") if progress else None
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise CheckpointError(f"cannot download {address} ({reason}); without a connection, put that file at "
                              f"{destination} yourself (or pass its path)") from None


def zoo_file(preset: str, *, progress: bool = True) -> Path:
    """The model-zoo file of ``preset`` (``zoo.weights_for``), from the cache or downloaded into it."""
    from mask2former.zoo import weights_for

    entry = weights_for(preset)
    if entry is None or entry.url is None:
        raise CheckpointError(f"{preset}: no model-zoo file is published for this preset")
    return fetch(entry.url, cache_dir() / entry.file, checksum=Checksum.of_zoo_file(entry.file), progress=progress)


def weights_table() -> list[dict[str, str]]:
    """Every file a name resolves to: the zoo's (by preset) and the standard backbone files, with
    their address and whether the cache holds them (``mask2former weights``)."""
    from mask2former.backbone_weights import torch_cache_dir
    from mask2former.zoo import BACKBONE_FILES, ZOO

    rows = []
    for entry in ZOO.values():
        metric = ", ".join(f"{k.split('.')[-1]} {v}" for k, v in entry.metrics.items())
        rows.append({"name": entry.preset, "kind": "model", "metric": metric, "url": entry.url or "",
                     "cached": "yes" if (cache_dir() / entry.file).is_file() else "no"})
    for file in BACKBONE_FILES:
        cached = any((torch_cache_dir() / n).is_file() for n in file.torch_cache)
        rows.append({"name": file.name, "kind": f"backbone ({file.pretrain})", "metric": "", "url": file.url,
                     "cached": "yes" if cached else "no"})
    return rows
