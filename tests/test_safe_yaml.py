"""The one YAML reader: alias bombs and recursive aliases refused in linear time and bounded
memory, documents without aliases never refused for size, every problem the caller's error."""

from __future__ import annotations

import os
import time
import tracemalloc

import pytest

from mask2former.data.data_yaml import load_data_config
from mask2former.errors import ConfigError, DatasetError
from mask2former.safe_yaml import MAX_ALIAS_NODES, config_error, load_yaml, load_yaml_file


def billion_laughs(levels: int = 9) -> str:
    """The classic: 9 items, each level 9 aliases of the previous one (9^10 nodes expanded)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def measured(run) -> tuple[BaseException, float, int]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        run()
    except Exception as e:  # returned for the caller to check its type and message
        error = e
    else:
        error = None
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert error is not None, "expected an error"
    return error, elapsed, peak


def test_alias_bomb_as_data_yaml_fails_fast_in_little_memory(tmp_path):
    path = tmp_path / "DATA.yaml"
    path.write_text(billion_laughs())
    assert len(path.read_text().splitlines()) == 10
    error, elapsed, peak = measured(lambda: load_data_config(path))
    assert isinstance(error, DatasetError) and error.path == str(path)
    assert "aliases expand the document by" in str(error) and "alias bomb" in str(error)
    assert elapsed < 1.0 and peak < 4 * 2**20, (elapsed, peak)


def test_alias_bomb_as_classes_file_names_that_file(tmp_path):
    (tmp_path / "classes.yaml").write_text(billion_laughs())
    (tmp_path / "DATA.yaml").write_text("format: folder\nclasses: classes.yaml\ntrain: {images: a, masks: b}\n")
    error, elapsed, peak = measured(lambda: load_data_config(tmp_path / "DATA.yaml"))
    assert isinstance(error, DatasetError) and error.path == str(tmp_path / "classes.yaml")
    assert elapsed < 1.0 and peak < 4 * 2**20


@pytest.mark.parametrize("text", ["&a [*a]", "a: &a {b: [1, *a]}", "- &a [x, [y, *a]]"])
def test_recursive_aliases_are_refused(text):
    with pytest.raises(DatasetError, match="DATA.yaml: recursive alias"):
        load_yaml(text, origin="DATA.yaml")


def test_documents_without_aliases_are_never_refused_for_size():
    items = 3 * MAX_ALIAS_NODES
    assert load_yaml("[" + ", ".join(["x"] * items) + "]") == ["x"] * items
    shared = "base: &b {images: i, masks: m}\n" + "".join(f"s{i}: *b\n" for i in range(100))
    data = load_yaml(shared)
    assert data["s99"] == {"images": "i", "masks": "m"}  # modest alias use is fine


def test_alias_bound_counts_what_aliases_add():
    nine = "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 99) + "]\n"
    assert len(load_yaml(nine)["b"]) == 99  # adds 99 * 1001 = 99,099 nodes: under the bound
    with pytest.raises(DatasetError, match="aliases expand the document by 101,101 nodes"):
        load_yaml(nine.replace("* 99", "* 101").replace(", ".join(["*a"] * 99), ", ".join(["*a"] * 101)))


@pytest.mark.parametrize("data, message", [
    (b"format: semantic\nnum_classes: \xff\xfe\n", r"not UTF-8 text \(invalid start byte at byte 30\)"),
    (b'format: "\\x"\n', "malformed YAML at line 1 column 12: .*hexdecimal"),
    (b"format: semantic\n  bad: [\n", "malformed YAML at line 2"),
    (b"a: 1\n\x00", r"malformed YAML at line 2 column 1: character '\\x00' is not allowed"),
    (b"a: 2001-13-45\n", r"malformed YAML: cannot build a value \(ValueError: month must be in 1..12\)"),
    (b"a: !!int abc\n", "malformed YAML: cannot build a value"),
    (b"a: !!python/object:os.system x\n", "malformed YAML at line 1 column 4: could not determine a constructor"),
    (b"a: 1\n---\nb: 2\n", "malformed YAML at line 2 column 1: expected a single document"),
    (b"train: {images: a}\ntrain: {images: b}\n", "malformed YAML at line 2 column 1: duplicate key 'train'"),
    (b"[" * 5000 + b"]" * 5000, "malformed YAML"),
])
def test_every_problem_is_the_callers_error_naming_the_file(tmp_path, data, message):
    path = tmp_path / "DATA.yaml"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=f"DATA.yaml: {message}") as caught:
        load_yaml_file(path)
    assert caught.value.path == str(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DatasetError, match="nope.yaml: file not found"):
        load_yaml_file(tmp_path / "nope.yaml")
    (tmp_path / "DATA.yaml").mkdir()
    with pytest.raises(DatasetError, match="DATA.yaml: is a directory, expected a YAML file"):
        load_yaml_file(tmp_path / "DATA.yaml")
    with pytest.raises(DatasetError, match="cannot read the file"):
        load_yaml_file(tmp_path / ("x" * 300))


def test_command_line_values_get_a_config_error():
    assert load_yaml("[1, 2]", origin="--set a", error=config_error) == [1, 2]
    with pytest.raises(ConfigError, match=r"--set model.x: malformed YAML at line 2 column 1: .*expected ',' or ']'"):
        load_yaml("[1", origin="--set model.x", error=config_error)
    with pytest.raises(ConfigError, match="--set a: aliases expand"):
        load_yaml(billion_laughs(), origin="--set a", error=config_error)


def test_plain_values_read_as_pyyaml_reads_them():
    assert load_yaml("a: 1\nb: [x, 2.5, true, null]\n") == {"a": 1, "b": ["x", 2.5, True, None]}
    assert load_yaml(b"\xef\xbb\xbfa: 1\n") == {"a": 1}  # a UTF-8 byte-order mark is fine
    assert load_yaml("") is None and load_yaml("# nothing\n") is None


def test_pipes_and_unencodable_text(tmp_path):
    os.mkfifo(tmp_path / "DATA.yaml")  # reading it would block forever
    with pytest.raises(DatasetError, match="DATA.yaml: is not a regular file"):
        load_yaml_file(tmp_path / "DATA.yaml")
    with pytest.raises(ConfigError, match=r"--set a: not valid text \(surrogates not allowed at character 3\)"):
        load_yaml("a: \udcff", origin="--set a", error=config_error)
