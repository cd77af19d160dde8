"""``mask2former serve`` as a user starts it: a saved checkpoint, a port on 127.0.0.1, answers
over real HTTP, a clean stop on Ctrl-C; ``--workers 2`` serves from two processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from mask2former import build_model, get_preset
from mask2former.serve.load import post
from mask2former.weights import save_model
from tests.conftest import random_image
from tests.serve.conftest import png

pytest.importorskip("fastapi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if json.load(response)["status"] == "ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.3)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_over_http_and_stops_on_ctrl_c(tmp_path, workers):
    checkpoint = save_model(build_model(get_preset("tiny")), tmp_path / "tiny.safetensors")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "mask2former", "serve", "--checkpoint", str(checkpoint),
                                "--port", str(port), "--workers", str(workers), "--precision", "fp32"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_healthy(url, process)
        with urllib.request.urlopen(f"{url}/v1/model", timeout=10) as response:
            info = json.load(response)
        assert info["source"] == "tiny.safetensors" and len(info["classes"]) == 4
        with urllib.request.urlopen(f"{url}/", timeout=10) as response:
            assert "<title>mask2former</title>" in response.read().decode()
        for _ in range(2 * workers):
            status, body = post(f"{url}/v1/predict?task=instance", png(random_image(64, 80)))
            assert status == 200 and "instances" in json.loads(body)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, process.stderr.read()[-2000:]


def test_serve_refuses_a_missing_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mask2former", "serve", "--checkpoint", str(tmp_path / "no.pt")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "no.pt" in result.stderr and "Traceback" not in result.stderr
