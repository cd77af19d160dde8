"""Constructor rules (STYLE.md §3.3 rule 1, issue 12): every module in ``modeling/`` and ``losses/``
takes keyword-only, annotated arguments, says in a docstring what it is for, and restates no
default that belongs to a config dataclass (``build.py`` passes those, so they live only there)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mask2former"
FILES = sorted(p for layer in ("modeling", "losses") for p in (PACKAGE / layer).rglob("*.py"))

# The only constructor defaults allowed, each for a setting no config field holds.
ALLOWED_DEFAULTS = {
    ("PatchEmbed", "patch_size"),  # Swin's fixed 4x4 stem (the backbone's strides follow from it)
    ("ConvNorm", "relu"),  # the FPN output conv has one, the lateral conv not
    ("MSDeformAttnPixelDecoder", "transformer_in_features"),  # the reference's res3..res5, fixed
}


def _constructors() -> list[tuple[str, ast.ClassDef, ast.FunctionDef]]:
    found = []
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        found.append((str(path.relative_to(PACKAGE)), node, item))
    return found


CONSTRUCTORS = _constructors()


def test_the_walk_sees_the_modules():
    names = {cls.name for _, cls, _ in CONSTRUCTORS}
    assert {"SwinBlock", "MSDeformAttn", "MaskedAttentionDecoder", "SetCriterion", "HungarianMatcher"} <= names
    assert len(names) >= 20


@pytest.mark.parametrize("where, cls, init", CONSTRUCTORS, ids=[c.name for _, c, _ in CONSTRUCTORS])
def test_constructor_is_keyword_only_typed_and_documented(where, cls, init):
    args = init.args
    assert [a.arg for a in args.posonlyargs + args.args] == ["self"], f"{where}: {cls.name} takes positional args"
    assert args.vararg is None and args.kwarg is None, f"{where}: {cls.name} takes *args / **kwargs"
    untyped = [a.arg for a in args.kwonlyargs if a.annotation is None]
    assert not untyped, f"{where}: {cls.name} leaves {untyped} unannotated"
    assert isinstance(init.returns, ast.Constant) and init.returns.value is None, f"{where}: {cls.name} -> None"
    doc = ast.get_docstring(cls)
    assert doc and doc.splitlines()[0].strip(), f"{where}: {cls.name} has no docstring"


@pytest.mark.parametrize("where, cls, init", CONSTRUCTORS, ids=[c.name for _, c, _ in CONSTRUCTORS])
def test_no_default_restated_from_the_config(where, cls, init):
    args = init.args
    with_default = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    extra = [name for name in with_default if (cls.name, name) not in ALLOWED_DEFAULTS]
    assert not extra, f"{where}: {cls.name} has defaults for {extra}; build.py passes them from the config"
