"""The project's own errors, one class per kind of bad input, and bounded rendering of user values.

Every error raised for something a user gave us (a file, an option, a config value) is a
``Mask2FormerError`` whose message names the file or option and the problem, so the CLI can print
it as one line and a library caller can catch one base class. Anything else escaping is a bug.
"""

from __future__ import annotations

import os
import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def brief(value: Any) -> str:
    """``repr(value)`` cut to a few dozen characters: error messages quote user values, and a
    hostile value (a YAML alias bomb, a 100 MB string) must never be rendered in full."""
    return _REPR.repr(value)


class Mask2FormerError(Exception):
    """Base of every error the project raises for bad input; the message says which file or
    option and what is wrong with it."""


class ConfigError(Mask2FormerError, ValueError):
    """A config value, key or command-line option is invalid; the message names it."""


class CheckpointError(Mask2FormerError, ValueError):
    """A checkpoint is missing, unreadable, refused or does not fit the model; the message says why."""


class ImageError(Mask2FormerError, ValueError):
    """An input image is missing, unreadable, too large or not usable as the model's input."""


class ImageTooLargeError(ImageError):
    """An image with more pixels than the limit in force: refused before its pixels are decoded."""


class DatasetError(Mask2FormerError, ValueError):
    """A dataset file is missing, malformed or inconsistent; ``path`` names the file."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across DataLoader workers
        return (type(self), (self.path, self.problem))


class TrainingError(Mask2FormerError, RuntimeError):
    """Training cannot go on (a non-finite loss, too many unreadable samples); the message names
    the iteration and what to do."""


class ExportError(Mask2FormerError, RuntimeError):
    """A model cannot be exported or an exported file cannot be run: the message names the file
    or the missing extra."""
