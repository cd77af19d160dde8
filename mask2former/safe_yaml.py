"""The one way the package reads YAML (and JSON, which YAML reads too) that a user wrote.

``yaml.safe_load`` refuses code but not size: a ten-line alias bomb (``b: [*a, *a, ...]`` nine
levels deep) loads as a few shared lists that expand to billions of items as soon as anything walks
or prints them. So the document is composed into its node graph first, its expanded size is counted
with memoisation (linear in the graph, however large the expansion) and a document whose aliases
add more than ``max_alias_nodes`` nodes, or that holds a recursive alias, is refused before any
Python object is built. Documents without aliases are never refused for size. A key given twice in
one mapping is refused too (PyYAML would keep the last one without a word).

Every problem (a missing file, a directory, bytes that are not UTF-8, a syntax error, a value the
safe constructor cannot build) becomes the caller's own error through ``error(origin, problem)``:
``DatasetError`` (the default) for data files, ``config_error`` for command-line values.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mask2former.errors import ConfigError, DatasetError, Mask2FormerError, brief

MAX_ALIAS_NODES = 100_000  # nodes aliases may add to a document; real files add a few dozen
ErrorFactory = Callable[[str, str], Mask2FormerError]  # (origin, problem) -> the error to raise

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml also caps nesting at 1000 levels


def config_error(origin: str, problem: str) -> ConfigError:
    """Error factory for values given on the command line (``origin`` names the option)."""
    return ConfigError(f"{origin}: {problem}")


def load_yaml_file(path: str | os.PathLike, *, error: ErrorFactory = DatasetError,
                   max_alias_nodes: int = MAX_ALIAS_NODES) -> Any:
    """The document in the YAML (or JSON) file ``path``; every problem is ``error(path, ...)``."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise error(str(path), "is a directory, expected a YAML file")
        if not stat.S_ISREG(mode):  # a FIFO would block, /dev/zero would never end
            raise error(str(path), "is not a regular file (a device, pipe or socket), expected a YAML file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(str(path), "file not found") from None
    except PermissionError:
        raise error(str(path), "cannot read the file (permission denied)") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise error(str(path), f"cannot read the file ({getattr(e, 'strerror', None) or e})") from None
    return load_yaml(data, origin=str(path), error=error, max_alias_nodes=max_alias_nodes)


def load_yaml(text: str | bytes, *, origin: str = "<string>", error: ErrorFactory = DatasetError,
              max_alias_nodes: int = MAX_ALIAS_NODES) -> Any:
    """The single document in ``text`` (bytes must be UTF-8), read with PyYAML's safe loader after
    the alias-expansion check; every problem is ``error(origin, ...)``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise error(origin, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates, e.g. from a command line in a broken locale
        raise error(origin, f"not valid text ({e.reason} at character {e.start})") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problem = document_problem(node, max_alias_nodes)
        if problem is not None:
            raise error(origin, problem)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise error(origin, yaml_problem(e, text)) from None
    except RecursionError:
        raise error(origin, "malformed YAML: nested too deeply") from None
    except Mask2FormerError:
        raise
    except Exception as e:  # the safe constructor's own failures, e.g. a date 2001-13-45 or "!!int abc"
        raise error(origin, f"malformed YAML: cannot build a value ({type(e).__name__}: {e})") from None
    finally:
        loader.dispose()


def yaml_problem(e: yaml.YAMLError, text: str) -> str:
    """One line for a PyYAML error: what is wrong and where (line and column)."""
    if isinstance(e, yaml.reader.ReaderError):  # a control character or an invalid code point
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        char = chr(e.character) if isinstance(e.character, int) else e.character
        return f"malformed YAML at line {line} column {column}: character {char!r} is not allowed"
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    parts = [getattr(e, "context", None), getattr(e, "problem", None)]
    what = ", ".join(p for p in parts if p) or str(e).splitlines()[0]
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"malformed YAML{where}: {what}"


def document_problem(root: yaml.Node, max_alias_nodes: int) -> str | None:
    """Why the graph under ``root`` must not be built, or None: a recursive alias, aliases that
    expand the document by more than ``max_alias_nodes`` nodes, or a key given twice in a mapping
    (PyYAML keeps the last silently, so a second ``train:`` block would replace the first)."""
    sizes = _expanded_sizes(root)
    if sizes is None:
        return "recursive alias (an anchor used inside its own value)"
    added = sizes[id(root)] - len(sizes)
    if added > max_alias_nodes:
        return (f"aliases expand the document by {added:,} nodes, more than the {max_alias_nodes:,} allowed "
                "(a YAML alias bomb?); write the values out instead of repeating anchors")
    return _duplicate_key(root)


def _expanded_sizes(root: yaml.Node) -> dict[int, int] | None:
    """Expanded node count of every distinct node under ``root`` by ``id``, or None for a cycle.

    Iterative post-order walk (deep documents must not overflow the stack): each distinct node is
    counted once, so a bomb costs what its few nodes cost, and a node met again while it is still
    on the walk's path is a recursive alias."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            on_path.discard(key)
        elif key not in size:
            on_path.add(key)
            stack.append((node, True))
            for child in _children(node):
                if id(child) in on_path:
                    return None
                if id(child) not in size:
                    stack.append((child, False))
    return size


def _duplicate_key(root: yaml.Node) -> str | None:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in keys:
                        mark = key.start_mark
                        return (f"malformed YAML at line {mark.line + 1} column {mark.column + 1}: duplicate key "
                                f"{brief(key.value)} (the value given last would silently win)")
                    keys.add((key.tag, key.value))
        stack.extend(_children(node))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []
