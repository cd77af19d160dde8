"""Weights by name, against a local server on 127.0.0.1 standing in for the published addresses
(``$MASK2FORMER_WEIGHTS_MIRROR``): download once into the cache, a cache hit asks nothing, a
checksum mismatch keeps nothing, no connection names the address and the cache path."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from mask2former.download import Checksum, cache_dir, fetch, weights_table, zoo_file
from mask2former.errors import CheckpointError
from mask2former.zoo import weights_for


class _Server:
    """Files under ``root`` served at their paths; ``requests`` lists the paths asked for."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 - the stdlib's name
                outer.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def online(monkeypatch, tmp_path):
    """A cache in tmp_path and downloads allowed (the suite forbids them elsewhere)."""
    monkeypatch.setenv("MASK2FORMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("MASK2FORMER_OFFLINE", raising=False)
    return tmp_path


def _publish(root: Path, url: str, data: bytes) -> None:
    path = root / url.split("/", 3)[3]  # the address's path, as the mirror serves it
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_download_once_then_the_cache_answers(online, monkeypatch):
    data = b"weights " * 1000
    url = "https://example.invalid/models/some/file.bin"
    _publish(online / "site", url, data)
    with _Server(online / "site") as server:
        monkeypatch.setenv("MASK2FORMER_WEIGHTS_MIRROR", server.url)
        checksum = Checksum("md5", hashlib.md5(data).hexdigest()[:6])
        target = cache_dir() / "file.bin"
        assert fetch(url, target, checksum=checksum) == target
        assert target.read_bytes() == data and server.requests == ["/models/some/file.bin"]
        assert fetch(url, target, checksum=checksum).read_bytes() == data
        assert server.requests == ["/models/some/file.bin"]  # the second call asked nothing
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]  # no partial file left


def test_a_zoo_name_resolves_to_its_file_and_a_wrong_file_is_refused(online, monkeypatch):
    entry = weights_for("r50_coco_panoptic")
    assert entry is not None and entry.url.endswith("/model_final_94dc52.pkl")
    _publish(online / "site", entry.url, b"not the published file")
    with _Server(online / "site") as server:
        monkeypatch.setenv("MASK2FORMER_WEIGHTS_MIRROR", server.url)
        with pytest.raises(CheckpointError) as error:
            zoo_file("r50_coco_panoptic", progress=False)
        assert server.requests == [
            "/maskformer/mask2former/coco/panoptic/maskformer2_R50_bs16_50ep/model_final_94dc52.pkl"]
    message = str(error.value)
    assert "md5" in message and "not the published 94dc52" in message and server.url in message
    assert not any((online / "cache").iterdir())  # nothing kept

    from mask2former.weights import load_model  # the CLI's --checkpoint NAME goes through load_model
    with _Server(online / "site") as server:
        monkeypatch.setenv("MASK2FORMER_WEIGHTS_MIRROR", server.url)
        with pytest.raises(CheckpointError, match="not the published 94dc52"):
            load_model("r50_coco_panoptic")


def test_no_connection_names_the_address_and_the_cache_path(online, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MASK2FORMER_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(CheckpointError) as error:
        zoo_file("swin_t_ade20k_semantic", progress=False)
    message = str(error.value)
    entry = weights_for("swin_t_ade20k_semantic")
    assert f"http://127.0.0.1:{port}/" in message and str(cache_dir() / entry.file) in message
    monkeypatch.setenv("MASK2FORMER_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="MASK2FORMER_OFFLINE=1 forbids downloading"):
        zoo_file("swin_t_ade20k_semantic", progress=False)


def test_imagenet_backbone_weights_download_into_torchvisions_cache(online, monkeypatch, tiny_resnet_model):
    from mask2former.backbone_weights import locate_backbone_weights, torch_cache_dir
    from mask2former.zoo import backbone_files_for

    backbone = tiny_resnet_model.config.backbone
    backbone.weights = "imagenet"
    entry = backbone_files_for(backbone)[0]
    _publish(online / "site", entry.url, b"a file whose sha256 is not the published one")
    with _Server(online / "site") as server:
        monkeypatch.setenv("MASK2FORMER_WEIGHTS_MIRROR", server.url)
        with pytest.raises(CheckpointError, match=f"not the published {entry.torch_cache[0][-12:-4]}"):
            locate_backbone_weights(backbone)
        assert len(server.requests) == 1
    assert not (torch_cache_dir() / entry.torch_cache[0]).exists()
    (torch_cache_dir()).mkdir(parents=True, exist_ok=True)
    (torch_cache_dir() / entry.torch_cache[0]).write_bytes(b"cached")  # a cache hit asks no one
    assert locate_backbone_weights(backbone) == torch_cache_dir() / entry.torch_cache[0]


def test_the_weights_table_lists_names_addresses_and_the_cache(online):
    rows = {r["name"]: r for r in weights_table()}
    assert rows["r50_coco_panoptic"]["url"].startswith("https://dl.fbaipublicfiles.com/")
    assert rows["r50_coco_panoptic"]["cached"] == "no" and "PQ 51.9" in rows["r50_coco_panoptic"]["metric"]
    (cache_dir()).mkdir(parents=True)
    (cache_dir() / "model_final_94dc52.pkl").write_bytes(b"x")
    assert {r["name"]: r for r in weights_table()}["r50_coco_panoptic"]["cached"] == "yes"
    assert rows["resnet50"]["kind"] == "backbone (in1k)"
