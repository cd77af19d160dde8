"""DATA.yaml (text and structures) and classes files, through ``load_data_config``,
``data_config_from_dict``, ``build_split`` and ``DatasetSplit.load`` on real images."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from mask2former.data.data_yaml import build_split, data_config_from_dict, load_data_config
from tests.fuzz.conftest import fuzz_settings, within_contract
from tests.fuzz.mutate import mutate
from tests.fuzz.strategies import NASTY, corrupted
from tests.fuzz.world import check_split

TEMPLATES = [
    "format: semantic\nnum_classes: 3\ntrain:\n  images: {images}\n  masks: {masks}\n",
    "format: semantic\nclasses: [a, b, c]\nignore_label: 255\nreduce_zero_label: false\n"
    "train: {{images: {images}, masks: {masks}}}\nval: {{images: {images}, masks: {masks}}}\n",
    "format: folder\nclasses: [a, {{name: b, isthing: true}}, {{name: c, color: [1, 2, 3]}}]\n"
    "mask_values: {{0: 0, 1: 1, 2: 2}}\ntrain: {{images: {images}, masks: {masks}}}\n",
    "format: folder\nclasses: [a, {{name: b, isthing: true}}, c]\ntrain: &p {{images: {images}, masks: {masks}}}\n"
    "val: *p\n",
    "format: semantic\nnum_classes: 3\ntrain:\n  images: {images}\n  masks: {masks}\n"
    "x: &a [q, q, q, q]\ny: &b [*a, *a, *a, *a]\nz: &c [*b, *b, *b, *b]\n",
]
FRAGMENTS = [": ", "- ", "&a ", "*a", "*b", "[", "]", "{", "}", '"\\x"', "!!int ", "!!float ", "!!binary ",
             "!!python/object:os.system ", "!!timestamp ", "2001-13-45", "\t", "\x00", "\x07", "\udcff", "<<: *a\n",
             "? ", "|\n", ">\n", "%YAML 1.1\n", "---\n", "...\n", "~", "1e9", "1000000000", "-1", ".nan", "yes", "\n  ",
             "'", '"', "#", "@", "`", "\\", "é", "\ufeff"]


@st.composite
def yaml_bytes(draw: st.DrawFn, world, base: Path) -> bytes:
    """A DATA.yaml template with fragments spliced in, byte mutations, or arbitrary text. Its paths
    are relative to ``base``, where the file is written, as users write them: a mutation that cuts
    an absolute path short would point the readers at ``/tmp`` or ``/`` (the whole disk), whose
    scan is bounded by an entry count, not by the fuzz suite's time bound."""
    kind = draw(st.sampled_from(["template", "spliced", "spliced", "mutated", "text"]))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    text = draw(st.sampled_from(TEMPLATES)).format(images=os.path.relpath(world.images, base),
                                                   masks=os.path.relpath(world.masks, base))
    if kind == "spliced":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at:]
    data = text.encode("utf-8", "surrogatepass")
    if kind == "mutated":
        data = mutate(data, random.Random(draw(st.integers(0, 2**32))))
    return data


def _build_every_split(config) -> None:
    for name in config.splits:
        check_split(build_split(config, name, skip_bad=True))


@fuzz_settings(quick=100, long=5000)
@given(data=st.data())
def test_data_yaml_text(world, tmp_path, data):
    path = tmp_path / "DATA.yaml"
    path.write_bytes(data.draw(yaml_bytes(world, tmp_path)))
    within_contract(lambda: _build_every_split(load_data_config(path)), f"DATA.yaml {path.read_bytes()[:300]!r}")


@st.composite
def data_dict(draw: st.DrawFn, world) -> dict:
    fmt = draw(st.sampled_from(["semantic", "folder"]))
    value: dict = {"format": fmt, "train": {"images": str(world.images), "masks": str(world.masks)}}
    if fmt == "folder" or draw(st.booleans()):
        value["classes"] = draw(st.sampled_from([["a", "b", "c"], ["a", {"name": "b", "isthing": True}, "c"],
                                                 [{"name": "a", "color": [1, 2, 3]}, "b", "c"]]))
    if fmt == "semantic" and (draw(st.booleans()) or "classes" not in value):
        value["num_classes"] = 3
    for key, options in (("ignore_label", [255, 0, 7]), ("reduce_zero_label", [False, True]),
                         ("mask_values", [{0: 0, 1: 1, 2: 2}, {0: 0, 255: 1}])):
        applies = (fmt == "folder") == (key == "mask_values") or key == "ignore_label"
        if applies and draw(st.booleans()):
            value[key] = draw(st.sampled_from(options))
    return value


@fuzz_settings(quick=100, long=5000)
@given(data=st.data())
def test_data_yaml_structures(world, data):
    value = data.draw(corrupted(data_dict(world)))
    within_contract(lambda: _build_every_split(data_config_from_dict(value, base_dir=world.root)),
                    f"DATA.yaml structure {repr(value)[:300]}")


CLASS_LISTS = st.sampled_from([["a", "b", "c"], ["a", {"name": "b", "isthing": True}, "c"]])


@fuzz_settings(quick=40, long=3000)
@given(suffix=st.sampled_from([".txt", ".json", ".yaml", ".yml", ".csv"]),
       content=st.one_of(st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
                         st.binary(max_size=40),
                         corrupted(CLASS_LISTS).map(lambda v: json.dumps(v).encode()),
                         corrupted(CLASS_LISTS).map(lambda v: json.dumps({"classes": v}).encode()),
                         corrupted(CLASS_LISTS).map(lambda v: yaml.safe_dump(v).encode()),
                         NASTY.map(lambda v: json.dumps(v).encode())))
def test_classes_files(world, tmp_path, suffix, content):
    (tmp_path / f"classes{suffix}").write_bytes(content)
    value = {"format": "folder", "classes": f"classes{suffix}",
             "train": {"images": str(world.images), "masks": str(world.masks)}}
    within_contract(lambda: _build_every_split(data_config_from_dict(value, base_dir=tmp_path)),
                    f"classes{suffix} {content[:200]!r}")


@st.composite
def alias_graph(draw: st.DrawFn) -> str:
    """Anchored sequences and mappings, each level repeating aliases of earlier levels (bombs of
    every shape: wide, deep, through mapping values and merge keys), sometimes self-referencing."""
    lines = ["l0: &l0 [" + ", ".join(["x"] * draw(st.integers(1, 12))) + "]"]
    for i in range(1, draw(st.integers(1, 12))):
        refs = [f"*l{draw(st.integers(0, i - 1 if draw(st.integers(0, 20)) else i))}"
                for _ in range(draw(st.integers(1, 12)))]
        if draw(st.booleans()):
            lines.append(f"l{i}: &l{i} [{', '.join(refs)}]")
        else:
            lines.append(f"l{i}: &l{i} {{{', '.join(f'k{j}: {r}' for j, r in enumerate(refs))}}}")
    return "\n".join(lines) + "\n"


@fuzz_settings(quick=40, long=3000)
@given(text=alias_graph())
def test_yaml_alias_graphs(tmp_path, text):
    path = tmp_path / "DATA.yaml"
    path.write_text(text)
    result = within_contract(lambda: load_data_config(path), f"alias graph {text[:300]!r}")
    assert result is None  # no format key: always an error, but ours, fast and small
