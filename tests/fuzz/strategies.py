"""Hypothesis strategies: valid skeletons of the annotation formats, and ``corrupted`` which
replaces, deletes or adds fields anywhere in them with values of the wrong type or range."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st
from pycocotools import mask as mask_util

from tests.fuzz.world import SEGMENT_IDS, SIZES

NASTY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([-1, 0, 2**31, 2**32, 2**63, 10**12, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1.0, 1e12, -1e12, 1e300, float("nan"), float("inf")]),
    st.text(max_size=12),
    st.sampled_from(["", "0", "1", "../0.png", "/etc/passwd", "a\x00b", "x" * 300, "é", "0;", "OO", "[]", "0.png",
                     "images", "."]),
    st.lists(st.integers(-5, 100), max_size=6),
    st.lists(st.floats(), max_size=6),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.sampled_from(["id", "counts", "size", "name", "a"]), st.integers(-2, 100), max_size=3),
    st.just([[1, 2, 3]]),
    st.just([[0, 0, 5, 0, 5, 5, 0, 5]]),
    st.just({"counts": "0;", "size": [8, 10]}),
    st.just({"counts": [80], "size": [8, 10]}),
)


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """The path (keys / indices) of every node of a JSON-like value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def _parent(value: Any, path: tuple) -> Any:
    for key in path[:-1]:
        value = value[key]
    return value


@st.composite
def corrupted(draw: st.DrawFn, skeleton: st.SearchStrategy, max_edits: int = 3) -> Any:
    """A skeleton drawn from ``skeleton`` with up to ``max_edits`` edits: a node replaced by a
    NASTY value, a dict key or list item deleted, or an odd key added to a dict."""
    value = copy.deepcopy(draw(skeleton))
    for _ in range(draw(st.integers(0, max_edits))):
        path = draw(st.sampled_from(list(paths(value))))
        operation = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        nasty = copy.deepcopy(draw(NASTY))  # a fresh copy: later edits must not change NASTY's constants
        if not path:
            if operation == "replace":
                value = nasty
            continue
        parent, key = _parent(value, path), path[-1]
        if operation == "replace":
            parent[key] = nasty
        elif operation == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "id", "segmentation", "iscrowd", "height"]))] = nasty
        else:
            parent.append(nasty)
    return value


# --------------------------------------------------------------------------- segmentations


def _mask(draw: st.DrawFn, h: int, w: int) -> np.ndarray:
    bits = draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    return np.asarray(bits, dtype=np.uint8).reshape(h, w)


@st.composite
def segmentation(draw: st.DrawFn, h: int, w: int) -> Any:
    """A polygon list, a compressed or an uncompressed RLE, valid or near-valid for ``h x w``."""
    kind = draw(st.sampled_from(["polygon"] * 4 + ["compressed"] * 2 + ["uncompressed"] * 2 + ["garbage_rle"]))
    if kind == "polygon":
        coord = st.one_of(st.floats(-1, max(h, w) + 1, allow_nan=False), st.integers(-1, max(h, w) + 1))
        points = st.one_of(st.integers(3, 8), st.integers(3, 8), st.integers(0, 2))
        count = draw(st.integers(0, 3))
        return [draw(st.lists(coord, min_size=2 * n, max_size=2 * n)) for n in
                draw(st.lists(points, min_size=count, max_size=count))]
    size = draw(st.sampled_from([[h, w]] * 6 + [[w, h], [h + 1, w]]))
    if kind == "garbage_rle":
        counts = draw(st.one_of(st.text(alphabet=[chr(c) for c in range(40, 115)], max_size=12),
                                st.lists(st.integers(-2, h * w + 2), max_size=6)))
        return {"size": size, "counts": counts}
    mask = _mask(draw, *size)
    rle = mask_util.encode(np.asfortranarray(mask))
    if kind == "compressed":
        return {"size": size, "counts": rle["counts"].decode()}
    flat = mask.T.ravel()
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": size, "counts": np.diff(np.concatenate([[0], change])).tolist()}


# --------------------------------------------------------------------------- skeletons


def _categories(draw: st.DrawFn, panoptic: bool = False) -> list[dict]:
    ids = draw(st.lists(st.integers(1, 20), min_size=1, max_size=3, unique=True))
    out = []
    for i in ids:
        c: dict[str, Any] = {"id": i, "name": f"c{i}"}
        if draw(st.booleans()):
            c["isthing"] = draw(st.sampled_from([0, 1, True, False]))
        if draw(st.booleans()):
            c["color"] = draw(st.lists(st.integers(0, 255), min_size=3, max_size=3))
        out.append(c)
    return out


def _images(draw: st.DrawFn, lvis: bool = False) -> list[dict]:
    names = draw(st.lists(st.sampled_from(sorted(SIZES)), min_size=1, max_size=3, unique=True))
    images = []
    for k, name in enumerate(names):
        h, w = SIZES[name]
        entry: dict[str, Any] = {"id": draw(st.sampled_from([k, k + 100, f"img{k}"]))}
        if lvis and draw(st.booleans()):
            entry["coco_url"] = f"http://images.cocodataset.org/train2017/{name}"
        else:
            entry["file_name"] = name
        if draw(st.booleans()):
            entry.update(height=h, width=w)
        if lvis:
            entry["neg_category_ids"] = draw(st.lists(st.integers(0, 20), max_size=2))
            entry["not_exhaustive_category_ids"] = draw(st.lists(st.integers(0, 20), max_size=2))
        images.append(entry)
    return images


@st.composite
def coco_instances(draw: st.DrawFn, lvis: bool = False) -> dict:
    """A COCO instances (or LVIS) JSON skeleton over the world's images."""
    images, categories = _images(draw, lvis), _categories(draw)
    annotations = []
    for j in range(draw(st.integers(0, 4))):
        image = draw(st.sampled_from(images))
        h, w = SIZES[Path(image.get("file_name") or image["coco_url"]).name]
        category = draw(st.sampled_from(categories))["id"]
        ann: dict[str, Any] = {"id": j + 1, "image_id": image["id"], "category_id": category,
                               "segmentation": draw(segmentation(h, w))}
        if draw(st.booleans()):
            ann["iscrowd"] = draw(st.sampled_from([0, 1]))
        if draw(st.booleans()):
            ann.update(area=draw(st.floats(0, 100)), bbox=draw(st.lists(st.floats(0, 10), min_size=4, max_size=4)))
        annotations.append(ann)
    return {"images": images, "annotations": annotations, "categories": categories}


@st.composite
def coco_panoptic(draw: st.DrawFn) -> dict:
    """A COCO panoptic JSON skeleton over the world's images and panoptic PNGs."""
    images, categories = _images(draw), _categories(draw, panoptic=True)
    annotations = []
    for image in draw(st.lists(st.sampled_from(images), min_size=1, max_size=len(images),
                               unique_by=lambda e: str(e["id"]))):
        ids = draw(st.sampled_from([list(SEGMENT_IDS), list(SEGMENT_IDS), list(SEGMENT_IDS[:2]), [1, 2, 3]]))
        segments = [{"id": i, "category_id": draw(st.sampled_from(categories))["id"],
                     "iscrowd": draw(st.sampled_from([0, 1]))} for i in ids]
        ann: dict[str, Any] = {"image_id": image["id"], "segments_info": segments}
        if draw(st.booleans()):
            ann["file_name"] = Path(image["file_name"]).with_suffix(".png").name
        annotations.append(ann)
    return {"images": images, "annotations": annotations, "categories": categories}
