"""COCO instances, LVIS and COCO panoptic JSON with wrong-typed, missing and extra fields (and
byte-mutated text) through ``build_split`` and ``DatasetSplit.load`` on real images."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from mask2former.data.data_yaml import build_split, data_config_from_dict
from tests.fuzz.conftest import fuzz_settings, within_contract
from tests.fuzz.mutate import mutate
from tests.fuzz.strategies import coco_instances, coco_panoptic, corrupted
from tests.fuzz.world import check_split


def _json_text(value, mutation_seed: int | None) -> bytes:
    data = json.dumps(value).encode()  # NaN / Infinity stay in: Python's JSON reader accepts them
    return data if mutation_seed is None else mutate(data, random.Random(mutation_seed))


def _run(world, tmp_path, fmt: str, value, mutation_seed: int | None, skip_bad: bool) -> None:
    annotations = tmp_path / "annotations.json"
    annotations.write_bytes(_json_text(value, mutation_seed))
    split_paths = {"images": str(world.images), "annotations": str(annotations)}
    if fmt == "coco_panoptic":
        split_paths["masks"] = str(world.panoptic)
    config = data_config_from_dict({"format": fmt, "train": split_paths})

    def build_and_load() -> None:
        check_split(build_split(config, "train", skip_bad=skip_bad))

    within_contract(build_and_load, f"{fmt} JSON {json.dumps(value)[:300]}")


MUTATION = st.one_of(st.none(), st.none(), st.none(), st.integers(0, 2**32))


@fuzz_settings(quick=100, long=4000)
@given(value=corrupted(coco_instances()), mutation_seed=MUTATION, skip_bad=st.booleans())
def test_coco_instances_json(world, tmp_path, value, mutation_seed, skip_bad):
    _run(world, tmp_path, "coco_instances", value, mutation_seed, skip_bad)


@fuzz_settings(quick=40, long=2000)
@given(value=corrupted(coco_instances(lvis=True)), mutation_seed=MUTATION, skip_bad=st.booleans())
def test_lvis_json(world, tmp_path, value, mutation_seed, skip_bad):
    _run(world, tmp_path, "lvis", value, mutation_seed, skip_bad)


@fuzz_settings(quick=60, long=3000)
@given(value=corrupted(coco_panoptic()), mutation_seed=MUTATION, skip_bad=st.booleans())
def test_coco_panoptic_json(world, tmp_path, value, mutation_seed, skip_bad):
    _run(world, tmp_path, "coco_panoptic", value, mutation_seed, skip_bad)
