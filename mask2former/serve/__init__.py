"""``mask2former serve``: a trained model behind an HTTP endpoint and a web page (``app``).

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, prometheus-client); nothing
outside this package imports it, and the CLI imports it only when the command runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING

from mask2former.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mask2former.serve.app import ServeSettings

SETTINGS_ENV = "MASK2FORMER_SERVE"  # how worker processes (--workers > 1) learn what to load


def _require_extra() -> None:
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "multipart", "prometheus_client")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"serve needs the serve extra ({', '.join(missing)} missing): "
                          "pip install 'mask2former[serve]'")


def build_app(checkpoint: str | os.PathLike, settings: ServeSettings | None = None, *, device: str = "cpu",
              precision: str = "fp32", preset: str | None = None) -> FastAPI:
    """The service's app for any file ``load_model`` reads (checkpoints and exported models)."""
    _require_extra()
    from mask2former.inference.predictor import Predictor
    from mask2former.serve.app import create_app
    from mask2former.weights import load_model

    model = load_model(checkpoint, preset=preset, device=device, precision=precision)
    predictor = Predictor(model, device=device, batch_size=settings.max_batch if settings else 4)
    return create_app(predictor, settings, source=os.path.basename(os.path.normpath(checkpoint)))


def app_from_environment() -> FastAPI:
    """The app a uvicorn worker process builds from ``$MASK2FORMER_SERVE`` (set by ``serve``)."""
    from mask2former.serve.app import ServeSettings

    spec = json.loads(os.environ[SETTINGS_ENV])
    return build_app(spec["checkpoint"], ServeSettings(**spec["settings"]), device=spec["device"],
                     precision=spec["precision"], preset=spec["preset"])


def serve(checkpoint: str | os.PathLike, settings: ServeSettings | None = None, *, host: str = "127.0.0.1",
          port: int = 8000, workers: int = 1, device: str = "cpu", precision: str = "fp32",
          preset: str | None = None) -> None:
    """Run the service until interrupted; ``workers`` processes each load the model (memory x N)."""
    _require_extra()
    import uvicorn

    from mask2former.serve.app import ServeSettings

    settings = settings or ServeSettings()
    if workers < 1:
        raise ConfigError(f"--workers: expected a whole number >= 1, got {workers}")
    if workers == 1:
        app = build_app(checkpoint, settings, device=device, precision=precision, preset=preset)
        uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)
        return
    build_app(checkpoint, settings, device=device, precision=precision, preset=preset)  # fail here, not in N workers
    os.environ[SETTINGS_ENV] = json.dumps({"checkpoint": os.fspath(checkpoint), "device": device,
                                           "settings": dataclasses.asdict(settings), "precision": precision,
                                           "preset": preset})
    uvicorn.run("mask2former.serve:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="info", timeout_graceful_shutdown=10)
