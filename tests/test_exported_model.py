""".pt2 files are checked before torch.export.load sees them: that loader evaluates the stored
size expressions with sympy (Python's eval) and unpickles some payloads, so a crafted file would
run code. The crafted files here are shown to run code through torch.export.load alone."""

from __future__ import annotations

import contextlib
import fractions
import io
import json
import zipfile

import pytest
import torch

from mask2former.errors import CheckpointError
from mask2former.exported_model import load_exported, safe_expression

EXPRESSION = "FloorDiv(Symbol('s27', positive=True, integer=True), Integer(2))"


class Halves(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0] * 2, -1) * (x.shape[1] // 2)


def small_pt2(path):
    dynamic = torch.export.Dim.DYNAMIC
    program = torch.export.export(Halves(), (torch.randn(4, 6),), dynamic_shapes={"x": {0: dynamic, 1: dynamic}})
    torch.export.save(program, path)
    return path


def rewritten(source, target, change):
    """A copy of the archive ``source`` with ``change(name, bytes) -> bytes`` applied to each member."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for name in archive.namelist():
            out.writestr(name, change(name, archive.read(name)))
    return target


def test_size_expressions_pass_only_when_made_of_sympy_constructors():
    assert safe_expression(EXPRESSION)
    assert safe_expression("Max(Integer(1), Float('0.5', precision=53))")
    for bad in ["__import__('os').system('x')", "Symbol('s1').func", "eval('1')", "Symbol('os; x')",
                "Integer(open('/etc/passwd'))", "lambdify(Symbol('s1'), 'x')"]:
        assert not safe_expression(bad), bad


def test_a_pt2_whose_size_expression_runs_code_is_refused_before_loading(tmp_path):
    marker = tmp_path / "ran"
    payload = f"Integer(__import__('os').system('touch {marker}') + 2)"

    def inject(name, data):
        return data.replace(b"Integer(2))", payload.encode() + b")", 1) if name.endswith("models/model.json") else data

    source = small_pt2(tmp_path / "small.pt2")
    assert EXPRESSION.encode() in zipfile.ZipFile(source).read("small/models/model.json")
    crafted = rewritten(source, tmp_path / "crafted.pt2", inject)
    with pytest.raises(CheckpointError, match="crafted.pt2.*refused.*size expression"):
        load_exported(crafted)
    assert not marker.exists()
    with contextlib.suppress(Exception):  # the same file through torch.export.load alone runs the stored command
        torch.export.load(crafted)
    assert marker.exists()


def test_a_pt2_with_pickled_weights_is_refused(tmp_path):
    def pickled(name, data):
        if name.endswith("_config.json") and "/data/" in name:
            config = json.loads(data)
            for entry in config["config"].values():
                entry["use_pickle"] = True
            config["config"]["extra"] = {"path_name": "weight_9", "use_pickle": True}
            return json.dumps(config).encode()
        return data

    crafted = rewritten(small_pt2(tmp_path / "small.pt2"), tmp_path / "pickled.pt2", pickled)
    with pytest.raises(CheckpointError, match="pickled.pt2.*refused.*not a plain tensor"):
        load_exported(crafted)


def test_a_pt2_whose_sample_inputs_need_pickle_is_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save((fractions.Fraction(1, 3),), buffer)  # any class outside torch's weights-only list

    def sample(name, data):
        return buffer.getvalue() if "/data/sample_inputs/" in name else data

    crafted = rewritten(small_pt2(tmp_path / "small.pt2"), tmp_path / "sample.pt2", sample)
    with pytest.raises(CheckpointError, match="sample.pt2.*refused.*sample inputs"):
        load_exported(crafted)


def test_a_pt2_without_our_config_is_refused_naming_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="small.pt2: no mask2former config.*mask2former export"):
        load_exported(small_pt2(tmp_path / "small.pt2"))
