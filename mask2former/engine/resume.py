"""``train --resume``: continue a run only with the settings it was started with, unless told.

A resumed run that silently took new settings (another learning rate, batch size or dataset)
would produce a model that matches neither the old config nor the new one. So the stored config
is compared with the new one, every difference is named, and the resume is refused unless the
user passes ``--allow-config-change``; weights of another architecture are refused always.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mask2former.config import TrainConfig, from_dict, to_dict
from mask2former.errors import CheckpointError, ConfigError, brief


class ResumeConfigError(ConfigError):
    """The settings of a resumed run differ from the checkpoint's; ``changes`` lists them."""

    def __init__(self, message: str, changes: list[str]) -> None:
        super().__init__(message)
        self.changes = changes


# settings that change no number a run computes (the sampler makes loading order independent of them)
NEUTRAL = frozenset({"num_workers"})


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def config_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"key: old -> new"`` for every setting that differs (class lists summarised)."""
    old, new = _flatten(stored), _flatten(current)
    changes = []
    for key in sorted(set(old) | set(new)):
        if key in NEUTRAL or old.get(key) == new.get(key):
            continue
        if key == "model.categories":
            changes.append(f"{key}: the dataset's classes differ ({len(old.get(key) or [])} -> "
                           f"{len(new.get(key) or [])} classes)")
        else:
            changes.append(f"{key}: {brief(old.get(key, '<absent>'))} -> {brief(new.get(key, '<absent>'))}")
    return changes


def check_resume(stored: dict[str, Any], current: dict[str, Any], checkpoint: Path, *, allow_change: bool) -> list[str]:
    """Refuse a resume whose config differs from the checkpoint's unless ``allow_change``;
    returns the changes (logged by the caller when allowed)."""
    changes = config_changes(_today(stored), current)
    if changes and not allow_change:
        shown = "; ".join(changes[:8]) + (f"; ... ({len(changes)} in all)" if len(changes) > 8 else "")
        raise ResumeConfigError(f"{checkpoint}: --resume with settings that differ from the run's: {shown}. Resume "
                                "with the same settings, or pass --allow-config-change to continue with the new ones",
                                changes)
    return changes


def _today(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config in today's layout (older checkpoints kept some settings elsewhere), so a
    layout change alone is never reported as a change of settings."""
    try:
        return to_dict(from_dict(TrainConfig, stored))
    except ConfigError:
        return stored


def architecture_error(checkpoint: Path, changes: list[str], detail: str) -> CheckpointError:
    """The error for weights that do not fit the model the new config builds."""
    model_changes = [c for c in changes if c.startswith("model.")]
    what = "; ".join(model_changes[:6]) if model_changes else detail
    return CheckpointError(f"{checkpoint}: cannot resume: the checkpoint holds another architecture ({what}). "
                           "Train into a new --output folder, or start from these weights with --init")
