"""A service around the tiny model, with thresholds low enough that a random model finds segments."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import struct
import threading
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from mask2former.config import CategoryInfo
from mask2former.inference.predictor import Predictor
from tests.conftest import random_image

pytest.importorskip("fastapi")


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width x height``."""
    data = bytearray(png(np.zeros((1, 1, 3), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.fixture
def predictor(tiny_model) -> Predictor:
    config = tiny_model.config
    config.categories = [CategoryInfo(id=1, name="person", isthing=True, color=(220, 20, 60)),
                         CategoryInfo(id=3, name="car", isthing=True, color=(0, 0, 142)),
                         CategoryInfo(id=7, name="road", isthing=False, color=(128, 64, 128)),
                         CategoryInfo(id=9, name="sky", isthing=False, color=(70, 130, 180))]
    inference = dataclasses.replace(config.inference, object_mask_threshold=0.0, overlap_threshold=0.0)
    return Predictor(tiny_model, inference=inference, batch_size=4)


@pytest.fixture
def image() -> np.ndarray:
    return random_image(72, 100, seed=3)


def make_client(predictor: Predictor, **settings):
    from fastapi.testclient import TestClient

    from mask2former.serve.app import ServeSettings, create_app

    return TestClient(create_app(predictor, ServeSettings(**settings), source="tiny.pt"),
                      raise_server_exceptions=False)


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and server.servers):
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
