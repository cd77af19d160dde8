"""Results in the community's formats: COCO panoptic PNG + JSON, COCO results JSON with RLE
masks, semantic label PNGs (contiguous train ids), and overlay PNGs for people.

Layout under the output folder::

    panoptic/<stem>.png  panoptic.json   instances.json   semantic/<stem>.png   overlays/<stem>_<task>.png

The index files (``panoptic.json``, ``instances.json``) always list exactly the images whose files
exist: an image is listed only once all its files are written, the index is replaced atomically,
one run at a time writes into a folder (a lock file inside it), and a later run merges its images
into the index it finds there.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from mask2former.atomic_files import remove_stale_temp_files, write_json_atomic
from mask2former.config import ModelConfig
from mask2former.errors import ConfigError, brief
from mask2former.folder_lock import FolderLock
from mask2former.formats import encode_rle, id_to_rgb
from mask2former.inference.records import (
    category_records,
    class_colors,
    dataset_ids,
    instance_records,
    panoptic_segments,
)
from mask2former.inference.visualize import overlay
from mask2former.structures import ImageResult, PanopticResult, SemanticResult

if TYPE_CHECKING:
    from mask2former.inference.tiling import TiledResult


def image_id_for(stem: str) -> int | str:
    """COCO-style numeric ids for numeric file names (``000000000139`` -> 139), else the stem."""
    return int(stem) if stem.isdigit() else stem


def check_score_threshold(value: float) -> float:
    """A score threshold in [0, 1]; NaN or a value outside would silently draw all or nothing."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"score threshold: expected a number in [0, 1], got {brief(value)}") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ConfigError(f"score threshold: expected a number in [0, 1], got {brief(value)}")
    return number


def semantic_png(labels: np.ndarray) -> Image.Image:
    """The label image of contiguous class ids: 8-bit, 16-bit when there are more than 255 classes."""
    return Image.fromarray(labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8))


def save_semantic_png(labels: np.ndarray, path: str | os.PathLike) -> None:
    semantic_png(labels).save(path, format="PNG")


def _read_index(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: hostile nesting
        raise ConfigError(f"{path}: the existing index is not valid JSON ({brief(str(e))}); it was left as it "
                          "is: move it away or choose another --output folder") from None


def _records(path: Path, value: Any, *keys: str) -> list[dict]:
    """``value`` as a list of dicts whose ``keys`` hold ids (int or str), else an error naming the file."""
    if not isinstance(value, list) or not all(
            isinstance(v, dict) and all(isinstance(v.get(k), int | str) for k in keys) for v in value):
        raise ConfigError(f"{path}: the existing index is not one this program writes (expected a list of "
                          f"entries with {', '.join(map(repr, keys))}); it was left as it is: move it away or choose "
                          "another --output folder")
    return value


def _category_key(categories: Iterable[dict]) -> list[tuple[Any, Any, bool]]:
    return [(c.get("id"), c.get("name"), bool(c.get("isthing"))) for c in categories]


def _drawing_view(result: TiledResult) -> ImageResult:
    """What ``overlay`` reads of a tiled result (labels, segment ids, masks), for drawing only:
    its semantic part has no scores."""
    from mask2former.inference.tiling import instances_to_result

    view = ImageResult(height=result.height, width=result.width, file_name=result.file_name)
    if result.semantic is not None and result.semantic.labels is not None:
        labels = torch.from_numpy(result.semantic.labels)
        view.semantic = SemanticResult(scores=torch.empty(0), labels=labels)
    if result.instances is not None:
        view.instance = instances_to_result(result.instances, result.height, result.width)
    if result.panoptic is not None and result.panoptic.segments is not None:
        view.panoptic = PanopticResult(segments=torch.from_numpy(result.panoptic.segments.astype(np.int32)),
                                       segments_info=result.panoptic.segments_info)
    return view


class ResultWriter:
    """Writes per-image files as results come and the index files on ``close``.

    The writer that owns the index (the default) locks the output folder for its lifetime and
    merges with the index it finds there: entries for images written again are replaced, the
    others kept. Call ``close`` in a ``finally`` (or use ``with``), so a run that stops early still
    leaves an index listing exactly the images whose files exist. ``owns_index=False`` is for
    helper processes whose entries another writer gathers and writes (multi-process ``eval``).
    """

    def __init__(self, output_dir: str | os.PathLike, config: ModelConfig, tasks: tuple[str, ...],
                 *, overlays: bool = True, score_threshold: float = 0.5, owns_index: bool = True) -> None:
        self.out = Path(output_dir)
        self.config = config
        self.tasks = tasks
        self.overlays = overlays
        self.score_threshold = check_score_threshold(score_threshold)
        self.names = config.class_names
        self.dataset_ids = dataset_ids(config)
        self.colors = class_colors(config)
        self.panoptic_annotations: list[dict] = []
        self.instances: list[dict] = []
        self.images: list[dict] = []
        self.owns_index = owns_index
        self._existing: dict[str, Any] = {}
        self._discarded: set[int | str] = set()  # earlier entries whose files a failed add removed
        self._closed = False
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = FolderLock(self.out, "prediction run") if owns_index else None
        try:
            if owns_index:
                remove_stale_temp_files(self.out)  # left by a run killed while writing the index
                self._read_existing()
            for task in ("panoptic", "semantic"):
                if task in tasks:
                    (self.out / task).mkdir(exist_ok=True)
            if overlays:
                (self.out / "overlays").mkdir(exist_ok=True)
        except BaseException:
            self._release()
            raise

    # ------------------------------------------------------------------ the folder's earlier index
    def _read_existing(self) -> None:
        """Load the index an earlier run left, refusing one that is corrupt or from a model with
        other categories: merging either would leave an index that describes nothing."""
        pan_path, inst_path = self.out / "panoptic.json", self.out / "instances.json"
        if "panoptic" in self.tasks and pan_path.exists():
            data = _read_index(pan_path)
            if not isinstance(data, dict):
                data = {}
            images = _records(pan_path, data.get("images"), "id")
            annotations = _records(pan_path, data.get("annotations"), "image_id")
            theirs = _category_key(_records(pan_path, data.get("categories"), "id"))
            if theirs != _category_key(self.categories()):
                raise ConfigError(
                    f"{pan_path}: written by a model with other categories ({brief([c[1] for c in theirs])}) "
                    f"than this one ({brief(list(self.names))}); choose another --output folder")
            self._existing["images"], self._existing["annotations"] = images, annotations
        if "instance" in self.tasks and inst_path.exists():
            instances = _records(inst_path, _read_index(inst_path), "image_id", "category_id")
            unknown = {r.get("category_id") for r in instances} - set(self.dataset_ids)
            if unknown:
                raise ConfigError(f"{inst_path}: holds category ids {brief(sorted(map(str, unknown)))} this model "
                                  "does not predict (written by a model with other categories); choose another "
                                  "--output folder")
            self._existing["instances"] = instances

    def _kept(self, key: str, id_key: str) -> list[dict]:
        """Earlier entries of images this run did not write again."""
        replaced = {image["id"] for image in self.images} | self._discarded
        return [e for e in self._existing.get(key, []) if e[id_key] not in replaced]

    # ------------------------------------------------------------------ per image
    def add(self, result: ImageResult, stem: str, image: np.ndarray | None = None, image_id: int | str | None = None
            ) -> None:
        """Write one image's files, then list it: an interrupted add removes what it wrote, so the
        index never names a missing or partial file."""
        image_id = self._listed(result, stem, image_id,
                                lambda i, written: self._write_files(result, stem, image, i, written))
        if result.instance is not None:
            self.instances.extend(self._instance_entries(result, image_id))

    def add_tiled(self, result: TiledResult, stem: str, image: np.ndarray | None = None,
                  image_id: int | str | None = None) -> None:
        """``add`` for a tiled prediction, from its compact maps and mask crops (no ``[N, H, W]``
        masks, no semantic scores); ``image`` is drawn over only when given."""
        image_id = self._listed(result, stem, image_id,
                                lambda i, written: self._write_tiled_files(result, stem, image, i, written))
        for inst in result.instances or []:
            mask = np.zeros((result.height, result.width), dtype=bool)  # one full-size mask at a time
            mask[inst.mask.window.slices] = inst.mask.mask
            x0, y0, x1, y1 = inst.mask.box_xyxy
            self.instances.append({"image_id": image_id, "category_id": self.dataset_ids[inst.label],
                                   "segmentation": encode_rle(mask), "bbox": [x0, y0, x1 - x0, y1 - y0],
                                   "score": round(float(inst.score), 6)})

    def _listed(self, result: ImageResult | TiledResult, stem: str, image_id: int | str | None,
                write: Callable[[int | str, list[Path]], dict | None]) -> int | str:
        """Run ``write`` (which appends each file to the list it is given before writing it), then
        list the image and its panoptic annotation; on any failure remove what was written."""
        image_id = image_id if image_id is not None else image_id_for(stem)
        written: list[Path] = []
        try:
            annotation = write(image_id, written)
        except BaseException:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            self._discarded.add(image_id)
            raise
        self.images.append({"id": image_id, "file_name": result.file_name or stem,
                            "height": result.height, "width": result.width})
        if annotation is not None:
            self.panoptic_annotations.append(annotation)
        return image_id

    def _write_tiled_files(self, result: TiledResult, stem: str, image: np.ndarray | None, image_id: int | str,
                           written: list[Path]) -> dict | None:
        from scipy import ndimage

        annotation = None
        if result.panoptic is not None and result.panoptic.segments is not None:
            ids = result.panoptic.segments
            written.append(self.out / "panoptic" / f"{stem}.png")
            Image.fromarray(id_to_rgb(ids)).save(written[-1])
            boxes = ndimage.find_objects(ids.astype(np.int32, copy=False))
            segments = []
            for s in result.panoptic.segments_info:
                box = boxes[s.id - 1] if s.id - 1 < len(boxes) else None
                bbox = [0.0] * 4 if box is None else [float(box[1].start), float(box[0].start),
                                                      float(box[1].stop - box[1].start),
                                                      float(box[0].stop - box[0].start)]
                segments.append({"id": s.id, "category_id": self.dataset_ids[s.label], "iscrowd": 0, "area": s.area,
                                 "bbox": bbox, "isthing": s.isthing, "score": round(s.score, 6)})
            annotation = {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments}
        if result.semantic is not None and result.semantic.labels is not None:
            written.append(self.out / "semantic" / f"{stem}.png")
            save_semantic_png(result.semantic.labels, written[-1])
        if self.overlays and image is not None:
            view = _drawing_view(result)
            for task in self.tasks:
                drawn = overlay(image, view, task, self.names, self.colors, score_threshold=self.score_threshold,
                                pixels=self.config.pixels)
                written.append(self.out / "overlays" / f"{stem}_{task}.png")
                drawn.save(written[-1])
        return annotation

    def _write_files(self, result: ImageResult, stem: str, image: np.ndarray | None, image_id: int | str,
                     written: list[Path]) -> dict | None:
        """Every file of one image (each path noted in ``written`` before it is opened); returns
        its panoptic annotation."""
        annotation = None
        if result.panoptic is not None:
            ids = result.panoptic.segments.cpu().numpy()
            written.append(self.out / "panoptic" / f"{stem}.png")
            Image.fromarray(id_to_rgb(ids)).save(written[-1])
            annotation = self._panoptic_entry(result, ids, stem, image_id)
        if result.semantic is not None:
            written.append(self.out / "semantic" / f"{stem}.png")
            save_semantic_png(result.semantic.labels.cpu().numpy(), written[-1])
        if self.overlays and image is not None:
            for task in self.tasks:
                drawn = overlay(image, result, task, self.names, self.colors, score_threshold=self.score_threshold,
                                pixels=self.config.pixels)
                written.append(self.out / "overlays" / f"{stem}_{task}.png")
                drawn.save(written[-1])
        return annotation

    def _panoptic_entry(self, result: ImageResult, ids: np.ndarray, stem: str, image_id: int | str) -> dict:
        return {"image_id": image_id, "file_name": f"{stem}.png",
                "segments_info": panoptic_segments(result, ids, self.dataset_ids)}

    def _instance_entries(self, result: ImageResult, image_id: int | str) -> list[dict]:
        return instance_records(result, self.dataset_ids, image_id)

    def categories(self) -> list[dict]:
        return category_records(self.config)

    def merge(self, other: ResultWriter) -> None:
        """Add the index entries another process's writer made (multi-process ``eval``: helper
        processes write their files, the main process writes the one index)."""
        self.images += other.images
        self.panoptic_annotations += other.panoptic_annotations
        self.instances += other.instances

    # ------------------------------------------------------------------ the end
    def close(self) -> None:
        """Write the index files (merged with the folder's earlier ones) and release the folder.
        Safe to call twice; a writer that does not own the index writes none."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.owns_index:
                self._write_index()
        finally:
            self._release()

    def _write_index(self) -> None:
        if "panoptic" in self.tasks:
            data = {"images": self._kept("images", "id") + self.images,
                    "annotations": self._kept("annotations", "image_id") + self.panoptic_annotations,
                    "categories": self.categories()}
            write_json_atomic(self.out / "panoptic.json", data)
        if "instance" in self.tasks:
            write_json_atomic(self.out / "instances.json", self._kept("instances", "image_id") + self.instances)

    def _release(self) -> None:
        lock, self._lock = getattr(self, "_lock", None), None  # also from __del__ of a half-built writer
        if lock is not None:
            lock.release()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a writer dropped without close (an exception upstream) frees the folder
        self._release()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (multi-process eval gathers writers): the lock stays with its process."""
        return {**self.__dict__, "_lock": None}
