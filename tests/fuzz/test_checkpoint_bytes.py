"""Mutated checkpoint files (ours as .pt and .safetensors, a training checkpoint, a zoo .pkl)
through ``load_model`` and the resume reader: the project's error, or exactly the saved model.

A mutant that loads must give the very weights and config that were saved: the checksum makes a
silently different model impossible, and this is where that is shown on thousands of files.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from mask2former import build_model, get_preset, load_model, save_model
from mask2former.config import TrainConfig
from mask2former.engine.optim import build_optimizer, build_scheduler
from mask2former.engine.train_state import load_training_state, save_training_state
from mask2former.testing.official_layout import to_official
from tests.fuzz.conftest import examples, within_contract
from tests.fuzz.mutate import mutations


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Valid files of every kind, with the state each must load as."""
    root = tmp_path_factory.mktemp("checkpoints")
    model = build_model(get_preset("tiny")).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    files = {suffix: (save_model(model, root / f"model{suffix}"), state) for suffix in (".pt", ".safetensors")}
    official = {k: v.numpy() for k, v in to_official(model).items()}
    with open(root / "zoo.pkl", "wb") as f:
        pickle.dump({"model": official, "__author__": "zoo"}, f, protocol=2)
    files[".pkl"] = (root / "zoo.pkl", state)
    config = TrainConfig(model=model.config)
    optimizer = build_optimizer(model, config.solver)
    save_training_state(root / "last.pt", model=model, config=config, optimizer=optimizer,
                        scheduler=build_scheduler(optimizer, config.solver, 10), scaler=None, iteration=3)
    files["training"] = (root / "last.pt", state)
    return files


def _check_loaded(model, state: dict, what: str) -> None:
    loaded = model.state_dict()
    assert set(loaded) == set(state), what
    for key, value in state.items():
        assert torch.equal(loaded[key], value), f"{what}: {key} loaded different values"


@pytest.mark.parametrize("kind", [".pt", ".safetensors", ".pkl"])
def test_mutated_checkpoints_fail_cleanly_or_load_exactly(tmp_path, saved, kind):
    original_path, state = saved[kind]
    original = original_path.read_bytes()
    target = tmp_path / f"mutant{original_path.suffix}"
    preset = get_preset("tiny") if kind == ".pkl" else None
    for i, data in enumerate(mutations(original, seed=11, count=examples(10, 600))):
        target.write_bytes(data)
        model = within_contract(lambda: load_model(target, preset=preset), f"{kind} mutant {i}")
        if model is None:
            continue
        if kind != ".pkl":  # ours carry a checksum: a mutant that loads is the saved model itself
            _check_loaded(model, state, f"{kind} mutant {i}")


def test_mutated_training_checkpoints_fail_cleanly_or_resume_exactly(tmp_path, saved):
    original_path, state = saved["training"]
    reference = load_training_state(original_path)
    target = tmp_path / "last.pt"
    for i, data in enumerate(mutations(original_path.read_bytes(), seed=12, count=examples(10, 400))):
        target.write_bytes(data)
        loaded = within_contract(lambda: load_training_state(target), f"training mutant {i}")
        if loaded is None:
            continue
        assert loaded["iteration"] == reference["iteration"], i
        assert loaded["train_config"] == reference["train_config"], i
        for key, value in state.items():
            assert torch.equal(loaded["model"][key], value), (i, key)
