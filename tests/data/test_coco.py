"""COCO instances (polygons, RLE, uncompressed RLE, crowd) give exact targets; broken input fails
naming the file."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from mask2former.data.coco import read_coco_instances
from mask2former.data.datasets import DatasetError

H, W = 20, 30
CATEGORIES = [{"id": 10, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "bird"}]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.T.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": [H, W], "counts": np.diff(np.concatenate([[0], change])).tolist()}


def blob(y0, y1, x0, x1) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def annotations_for_image(image_id: int) -> tuple[list[dict], list[np.ndarray]]:
    """A polygon, a two-polygon object, a compressed RLE and a crowd uncompressed RLE."""
    rle = mask_util.encode(np.asfortranarray(blob(12, 18, 3, 9).astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    anns = [
        {"id": 1, "category_id": 3, "segmentation": [[2, 2, 8, 2, 8, 6, 2, 6]], "iscrowd": 0},
        {"id": 2, "category_id": 7, "segmentation": [[20, 2, 24, 2, 24, 4, 20, 4], [20, 6, 22, 6, 22, 9, 20, 9]],
         "iscrowd": 0},
        {"id": 3, "category_id": 10, "segmentation": rle, "iscrowd": 0},
        {"id": 4, "category_id": 10, "segmentation": uncompressed_rle(blob(10, 20, 15, 30)), "iscrowd": 1},
    ]
    two = blob(2, 4, 20, 24) | blob(6, 9, 20, 22)
    for a in anns:
        a["image_id"] = image_id
    return anns, [blob(2, 6, 2, 8), two, blob(12, 18, 3, 9), blob(10, 20, 15, 30)]


def write_dataset(root, n_images: int = 2, annotations: list[dict] | None = None, images: list[dict] | None = None):
    (root / "images").mkdir(exist_ok=True)
    for i in range(n_images):
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
    if images is None:
        images = [{"id": 100 + i, "file_name": f"{i}.png", "height": H, "width": W} for i in range(n_images)]
    if annotations is None:
        annotations = annotations_for_image(100)[0]
    data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (root / "instances.json").write_text(json.dumps(data))
    return root / "instances.json", root / "images"


def test_polygons_rle_and_crowd_decode_exactly(tmp_path):
    split = read_coco_instances(*write_dataset(tmp_path))
    assert [(c.id, c.name) for c in split.categories] == [(3, "cat"), (7, "bird"), (10, "dog")]
    assert all(c.isthing for c in split.categories)
    image, target = split.load(0)
    _, expected = annotations_for_image(100)
    assert target.masks.shape == (4, H, W)
    for got, want in zip(target.masks.numpy(), expected):
        assert np.array_equal(got, want)
    assert target.labels.tolist() == [0, 1, 2, 2]
    assert target.iscrowd.tolist() == [False, False, False, True]
    assert target.is_thing.all() and not target.ignore.any()
    assert split.segment_counts() == ([1, 1, 2], [1, 1, 1])


def test_empty_image_and_degenerate_polygons(tmp_path):
    anns = [{"id": 9, "image_id": 100, "category_id": 3, "segmentation": [[1, 1, 5, 5]]}]  # a line: no area
    split = read_coco_instances(*write_dataset(tmp_path, annotations=anns))
    for i in range(2):
        target = split.load(i)[1]
        assert len(target) == 0 and target.masks.shape == (0, H, W) and target.ignore.shape == (H, W)


def test_unknown_category_drops_the_image_with_skip_bad(tmp_path):
    anns = annotations_for_image(100)[0] + [{"id": 5, "image_id": 101, "category_id": 4, "segmentation": [[]]}]
    json_path, images = write_dataset(tmp_path, annotations=anns)
    with pytest.raises(DatasetError, match=r"instances\.json: annotations\[4\] \(id 5\) of image 1\.png: "
                                           r"unknown category_id 4"):
        read_coco_instances(json_path, images)
    split = read_coco_instances(json_path, images, skip_bad=True)
    assert [r.image_id for r in split.records] == [100] and len(split.skipped) == 1


def test_missing_image_and_unknown_image_id(tmp_path):
    anns = annotations_for_image(100)[0] + [{"id": 6, "image_id": 555, "category_id": 3, "segmentation": []}]
    json_path, images = write_dataset(tmp_path, annotations=anns)
    (images / "1.png").unlink()
    with pytest.raises(DatasetError, match=r"image file not found: .*1\.png"):
        read_coco_instances(json_path, images)
    split = read_coco_instances(json_path, images, skip_bad=True)
    assert len(split) == 1
    assert [reason.split(":")[0] for _, reason in split.skipped] == ["images[1] (id 101)", "annotations[4] (id 6)"]


def test_size_checks(tmp_path):
    anns = annotations_for_image(100)[0]
    anns[2]["segmentation"]["size"] = [10, 10]
    json_path, images = write_dataset(tmp_path, annotations=anns)
    with pytest.raises(DatasetError, match=r"RLE size \[10, 10\] differs from the image size \[20, 30\]"):
        read_coco_instances(json_path, images)
    imgs = [{"id": 100, "file_name": "0.png", "height": 30, "width": 20}]
    split = read_coco_instances(*write_dataset(tmp_path, 1, annotations=[], images=imgs))
    with pytest.raises(DatasetError, match=r"0\.png: image is 20x30 \(HxW\) but its annotation says 30x20"):
        split.load(0)


def test_malformed_json_and_structure(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [}')
    with pytest.raises(DatasetError, match=r"bad\.json: malformed JSON at line 1 column 13"):
        read_coco_instances(path, tmp_path)
    path.write_text('{"images": []}')
    with pytest.raises(DatasetError, match=r"bad\.json: missing top-level key 'categories'"):
        read_coco_instances(path, tmp_path)
    anns = annotations_for_image(100)[0]
    anns[0]["segmentation"] = [[1, 2, 3]]
    with pytest.raises(DatasetError, match="even count"):
        read_coco_instances(*write_dataset(tmp_path, annotations=anns))


# --------------------------------------------------------------------------- hostile annotation files


def one_annotation(tmp_path, segmentation=None, *, image: dict | None = None, **fields):
    """An instances JSON with one image (``image`` overrides its entry) and one annotation."""
    ann = {"id": 7, "image_id": 100, "category_id": 3, "iscrowd": 0,
           "segmentation": [[2, 2, 8, 2, 8, 6, 2, 6]] if segmentation is None else segmentation, **fields}
    entry = {"id": 100, "file_name": "0.png", "height": H, "width": W}
    entry.update(image or {})
    return write_dataset(tmp_path, 1, annotations=[ann], images=[entry])


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("segmentation, problem", [
    ([[2, 2, NAN, 2, 8, 6]], "NaN, infinite or huge coordinate"),       # pycocotools: segfault
    ([[2, 2, INF, 2, 8, 6]], "NaN, infinite or huge coordinate"),       # pycocotools: segfault
    ([[2, 2, 1e15, 2, 8, 6]], r"far outside the 20x30 \(HxW\) image"),  # pycocotools: segfault
    ([[2, 2, 10**400, 2, 8, 6]], "NaN, infinite or huge coordinate"),
    ([[2, 2, "8", 2, 8, 6]], "coordinates must be numbers, got '8'"),   # pycocotools: ValueError
    ([[2, 2, [8], 2, 8, 6]], "coordinates must be numbers, got \\[8\\]"),  # pycocotools: ValueError
    ([[2, 2, True, 2, 8, 6]], "coordinates must be numbers, got True"),  # pycocotools: read as 1
    ([[2, 2, 8, 2, 8, 6], "x"], "polygon 1: polygons must be lists"),
    ([[0, 0, 29, 0] * 400 + [0, 19]], r"polygon outline is .* px long"),  # a zigzag: gigabytes in pycocotools
    ({"size": [H, W], "counts": [100, 50]}, "uncompressed RLE counts cover 150 pixels, the RLE size 600"),  # garbage
    ({"size": [H, W], "counts": [-5, 605]}, r"negative run \(-5\)"),       # pycocotools: OverflowError
    ({"size": [H, W], "counts": [300.5, 299.5]}, "counts must be integers, got 300.5"),  # pycocotools: truncates
    ({"size": [H, W], "counts": [2**40, 0]}, "cover 1,099,511,627,776 pixels"),           # pycocotools: OverflowError
    ({"size": [H, W], "counts": "zzzz"}, "malformed compressed RLE counts"),
    ({"size": [H, W], "counts": "0;"}, "compressed RLE counts cover 11 pixels, the RLE size 600"),  # garbage mask
    ({"size": [H, W], "counts": ""}, "cover 0 pixels"),                  # pycocotools: uninitialised memory
    ({"size": [H, W], "counts": "\u00e9"}, "malformed compressed RLE counts"),
    ({"size": [H, W], "counts": "PPPPPPPPPPPPPPPP0"}, "malformed compressed RLE counts"),  # a 16-character count
    ({"size": [H, W], "counts": "1P"}, "malformed"),                     # ends inside a count
    ({"size": [-H, W], "counts": [600]}, r"RLE size \[-20, 30\] is not a usable"),  # pycocotools: OverflowError
    ({"size": [20.0, 30], "counts": [600]}, r"RLE 'size' must be \[height, width\], got \[20.0, 30\]"),
    ({"size": [H, W, 3], "counts": [600]}, "RLE 'size' must be"),
    ({"size": [True, W], "counts": [600]}, "RLE 'size' must be"),
    ({"size": [10**6, 10**6], "counts": [10**12]}, "is not a usable"),  # pycocotools would allocate 1 TB
    ({"size": [W, H], "counts": [600]}, r"RLE size \[30, 20\] differs from the image size \[20, 30\]"),
    ({"size": [H, W], "counts": {"a": 1}}, "'counts' must be a list"),
    ({"size": [H, W]}, "missing or unreadable 'segmentation'"),
    ("polygon", "missing or unreadable 'segmentation'"),
])
def test_segmentations_pycocotools_mishandles_are_refused_at_build(tmp_path, segmentation, problem):
    json_path, images = one_annotation(tmp_path, segmentation)
    with pytest.raises(DatasetError, match=rf"instances\.json: annotations\[0\] \(id 7\) of image 0\.png: .*{problem}"):
        read_coco_instances(json_path, images)
    assert len(read_coco_instances(json_path, images, skip_bad=True).skipped) == 1


def test_without_image_sizes_the_check_runs_at_load_naming_the_json(tmp_path):
    unsized = {"height": None, "width": None}
    json_path, images = one_annotation(tmp_path, [[2, 2, 1e15, 2, 8, 6]], image=unsized)
    split = read_coco_instances(json_path, images)  # nothing to compare with yet
    with pytest.raises(DatasetError, match=r"instances\.json: annotation \(id 7\) of image 0\.png: .*far outside"):
        split.load(0)
    json_path, images = one_annotation(tmp_path, {"size": [10, 60], "counts": [600]}, image=unsized)
    with pytest.raises(DatasetError, match=r"instances\.json: .*RLE size \[10, 60\] differs from the image size"):
        read_coco_instances(json_path, images).load(0)


def test_uncompressed_rle_with_extra_keys_decodes(tmp_path):
    """pycocotools takes any 4-key dict passed to frPyObjects for a box (a TypeError)."""
    rle = dict(uncompressed_rle(blob(10, 20, 15, 30)), note="crowd", source="tool")
    split = read_coco_instances(*one_annotation(tmp_path, rle))
    assert np.array_equal(split.load(0)[1].masks[0].numpy(), blob(10, 20, 15, 30))


def test_degenerate_first_polygon_is_not_read_as_a_box(tmp_path):
    """pycocotools reads a polygon list whose first polygon has 4 numbers as boxes."""
    anns = [{"id": 1, "image_id": 100, "category_id": 3, "segmentation": [[1, 1, 5, 5]]},
            {"id": 2, "image_id": 100, "category_id": 3, "segmentation": [[1, 1, 5, 5], [2, 2, 8, 2, 8, 6, 2, 6]]}]
    split = read_coco_instances(*write_dataset(tmp_path, 1, annotations=anns))
    target = split.load(0)[1]
    assert len(target) == 1 and np.array_equal(target.masks[0].numpy(), blob(2, 6, 2, 8))


@pytest.mark.parametrize("image, problem", [
    ({"id": [1]}, r"'id' must be an integer or a string, got \[1\]"),
    ({"id": {"a": 1}}, "'id' must be an integer or a string"),
    ({"id": 100.0}, "'id' must be an integer or a string, got 100.0"),
    ({"id": True}, "'id' must be an integer or a string, got True"),
    ({"file_name": 5}, r"'file_name' must be a non-empty string, got 5"),
    ({"file_name": None}, "missing 'file_name'"),
    ({"file_name": "../images/0.png"}, None),  # a path leaving the folder is allowed when the file exists
    ({"file_name": "."}, "is a directory"),
    ({"file_name": "x" * 300}, "image file not found"),
    ({"height": -20}, "'height' must be a positive integer, got -20"),
    ({"width": 0}, "'width' must be a positive integer, got 0"),
    ({"height": 1e12}, "'height' must be a positive integer, got 1000000000000.0"),
    ({"height": 10**12, "width": 10**12}, "claims a 1000000000000x1000000000000 .*more than the limit"),
    ({"height": "20"}, "'height' must be a positive integer"),
])
def test_wrong_typed_image_entries(tmp_path, image, problem):
    json_path, images = one_annotation(tmp_path, image=image)
    if problem is None:
        assert len(read_coco_instances(json_path, images).load(0)[1]) == 1
        return
    with pytest.raises(DatasetError, match=rf"instances\.json: images\[0\].*{problem}"):
        read_coco_instances(json_path, images)
    split = read_coco_instances(json_path, images, skip_bad=True)
    assert len(split) == 0 and len(split.skipped) == 2  # the image, then its orphaned annotation


@pytest.mark.parametrize("fields, problem", [
    ({"image_id": [100]}, r"image_id \[100\] is not in 'images'"),        # was: TypeError (unhashable)
    ({"image_id": {"a": 1}}, "image_id {'a': 1} is not in 'images'"),
    ({"image_id": 100.0}, "image_id 100.0 is not in 'images'"),
    ({"image_id": True}, "image_id True is not in 'images'"),
    ({"category_id": [3]}, r"unknown category_id \[3\]"),               # was: TypeError (unhashable)
    ({"category_id": 3.0}, "unknown category_id 3.0"),
    ({"category_id": "3"}, "unknown category_id '3'"),
    ({"iscrowd": "0"}, "'iscrowd' must be 0, 1, true or false, got '0'"),  # was: read as crowd
    ({"iscrowd": 2}, "'iscrowd' must be 0, 1, true or false"),
    ({"area": "big"}, "'area' must be a finite number >= 0, got 'big'"),
    ({"area": NAN}, "'area' must be a finite number"),
    ({"bbox": [1, 2, 3]}, r"'bbox' must be \[x, y, width, height\]"),
    ({"bbox": [1, 2, "3", 4]}, "'bbox' must be"),
    ({"bbox": [1, 2, -3, 4]}, "'bbox' must be"),
    ({"id": ["x" * 1000]}, r"\(id \['x{20,30}\.\.\.x{20,30}'\]\).*'id' must be an integer or a string"),
])
def test_wrong_typed_annotation_fields(tmp_path, fields, problem):
    json_path, images = one_annotation(tmp_path, **fields)
    with pytest.raises(DatasetError, match=rf"instances\.json: annotations\[0\].*{problem}"):
        read_coco_instances(json_path, images)
    assert len(read_coco_instances(json_path, images, skip_bad=True).skipped) == 1


@pytest.mark.parametrize("category, problem", [
    ({"id": True, "name": "a"}, "'id' must be an integer"),
    ({"id": 2**40, "name": "a"}, "'id' must be an integer in"),
    ({"id": 1, "name": ["a"]}, "'name' must be a string"),
    ({"id": 1, "name": "a", "isthing": "false"}, "'isthing' must be 0, 1, true or false, got 'false'"),
    ({"id": 1, "name": "a", "color": [1, 2]}, r"'color' must be \[r, g, b\] of integers 0-255, got \[1, 2\]"),
    ({"id": 1, "name": "a", "color": ["r", "g", "b"]}, "'color' must be"),  # was: ValueError from int()
    ({"id": 1, "name": "a", "color": [1, 2, 300]}, "'color' must be"),
    ({"id": 1, "name": "a", "color": [NAN, 2, 3]}, "'color' must be"),
])
def test_wrong_typed_categories(tmp_path, category, problem):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": [category]}))
    with pytest.raises(DatasetError, match=rf"instances\.json: categories\[0\]: {problem}"):
        read_coco_instances(path, tmp_path)


def test_many_categories_with_a_duplicate_are_checked_in_linear_time(tmp_path):
    categories = [{"id": i, "name": f"c{i}"} for i in range(100_000)] + [{"id": 5, "name": "again"}]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": categories}))
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"duplicate category ids \[5\]"):
        read_coco_instances(path, tmp_path)
    assert time.perf_counter() - start < 5  # list.count per id took minutes


@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000 + "]" * 100_000, "malformed JSON: nested too deeply"),   # was: RecursionError
    ('{"images": ' + "1" * 5000 + "}", "malformed JSON: Exceeds the limit"),  # was: ValueError (int digits)
    (b"\xff\xfe{}", r"not UTF-8 text"),
])
def test_json_files_that_break_the_parser(tmp_path, text, problem):
    path = tmp_path / "instances.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DatasetError, match=rf"instances\.json: {problem}"):
        read_coco_instances(path, tmp_path)
    path.unlink()
    path.mkdir()
    with pytest.raises(DatasetError, match=r"instances\.json: is a directory, expected a JSON file"):
        read_coco_instances(path, tmp_path)
