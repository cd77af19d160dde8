"""Imports flow one way (DESIGN.md): modeling, losses, data and evaluation do not import each
other or anything above them, and nothing but the entry point imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mask2former"
ABOVE = {"engine", "inference", "compare", "cli", "demo", "weights", "build", "benchmark", "bench", "precision",
         "presets", "zoo", "export", "exported_model", "serve"}
FORBIDDEN = {
    "modeling": {"losses", "data", "evaluation"} | ABOVE,
    "losses": {"modeling", "data", "evaluation"} | ABOVE,
    "data": {"modeling", "losses", "evaluation"} | ABOVE,
    "evaluation": {"modeling", "losses", "data"} | ABOVE,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mask2former."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("mask2former.")}
    return names


def test_lower_layers_do_not_import_upwards():
    problems = []
    for layer, forbidden in FORBIDDEN.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                problems.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert not problems, problems


def test_nothing_imports_the_cli():
    users = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py")
             if "cli" in _imports(p) and p.parent.name != "cli" and p.name != "__main__.py"]
    assert not users, users


SHARED_FORMATS = {"rgb_to_id", "id_to_rgb", "encode_rle", "bbox_xywh", "did_you_mean"}


def test_shared_formats_are_defined_once():
    """Panoptic ids, RLE, boxes and "did you mean" live in ``formats.py``; a second definition
    (or a second ``difflib`` matcher) elsewhere would drift from it."""
    problems = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "formats.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in SHARED_FORMATS:
                problems.append(f"{path.relative_to(PACKAGE)} defines {node.name}")
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if "difflib" in names:
                    problems.append(f"{path.relative_to(PACKAGE)} imports difflib")
    assert not problems, problems


def test_only_the_distributed_module_talks_to_torch_distributed():
    users = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "distributed.py":
            continue
        text = path.read_text()
        if "torch.distributed" in text or "from torch import distributed" in text:
            users.append(str(path.relative_to(PACKAGE)))
    assert not users, users


def test_the_package_does_not_import_its_testing_helpers():
    users = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py")
             if "testing" in _imports(p) and p.parent.name != "testing"]
    assert not users, users
