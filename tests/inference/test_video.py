"""Video in, annotated video and per-frame results out: every frame decoded and written, results
per frame with their index, instance ids kept across frames by the query rule (by the mask rule
for a model whose graph hides them, as exported files do), camera and file errors named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mask2former.errors import ConfigError, ImageError
from mask2former.inference.predict_files import predict_files
from mask2former.inference.predictor import Predictor
from mask2former.inference.tracking import MASK_RULE, QUERY_RULE
from mask2former.inference.video import predict_video
from mask2former.weights import save_model
from tests.conftest import random_image

av = pytest.importorskip("av")


def write_clip(path, frames: list[np.ndarray], fps: int = 5) -> None:
    """Frames through FFmpeg's lossless H.264 (yuv444p, qp 0): decoding gives them back almost exactly."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"qp": "0"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_clip(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture
def checkpoint(tiny_model, tmp_path):
    return save_model(tiny_model, tmp_path / "tiny.safetensors")


def test_a_clip_gives_an_annotated_video_and_tracked_instances(checkpoint, tmp_path):
    a, b = random_image(72, 96, seed=1), random_image(72, 96, seed=2)
    write_clip(tmp_path / "clip.mp4", [a, b, a, b, a])
    report = predict_files(checkpoint, [tmp_path / "clip.mp4"], tmp_path / "out", "instance", progress=True)
    assert report.ok and report.written == [tmp_path / "out" / "clip_instance.mp4"]
    frames = read_clip(tmp_path / "out" / "clip_instance.mp4")
    assert len(frames) == 5 and frames[0].shape == (72, 96, 3)
    results = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert results["frames"] == 5 and results["tracking"] == QUERY_RULE and results["fps"] == 5.0
    assert [f["frame_index"] for f in results["per_frame"]] == [0, 1, 2, 3, 4]
    by_frame = {i: [e for e in results["annotations"] if e["frame_index"] == i] for i in range(5)}
    assert all(len(by_frame[i]) == results["per_frame"][i]["instances"] > 0 for i in range(5))
    entry = by_frame[0][0]
    assert set(entry) == {"frame_index", "track_id", "category_id", "category_name", "segmentation", "bbox", "score"}
    # the same picture again: each (track, class) scores as it did (its query came back through frame b)

    def instances(i):
        found = sorted((e["track_id"], e["category_id"], e["score"]) for e in by_frame[i])
        return [(t, c) for t, c, _ in found], np.array([s for _, _, s in found])

    ids0, scores0 = instances(0)
    for i in (2, 4):
        ids, scores = instances(i)
        assert ids == ids0 and np.allclose(scores, scores0, atol=2e-3)
    assert not np.allclose(instances(1)[1], scores0, atol=2e-3)  # another picture: other scores per track


def test_panoptic_and_semantic_videos(checkpoint, tmp_path):
    write_clip(tmp_path / "walk.mp4", [random_image(64, 64, seed=s) for s in range(3)])
    for task in ("panoptic", "semantic"):
        report = predict_files(checkpoint, [tmp_path / "walk.mp4"], tmp_path / task, task, max_frames=2)
        assert report.ok
        results = json.loads((tmp_path / task / "walk.json").read_text())
        assert results["frames"] == 2 and results["tracking"].startswith("none")
        assert len(read_clip(tmp_path / task / f"walk_{task}.mp4")) == 2
        if task == "panoptic":  # a random model finds nothing above the 0.8 threshold, but says so per frame
            assert all(isinstance(frame["segments_info"], list) for frame in results["per_frame"])
        else:
            assert all(sum(c["area"] for c in frame["classes"]) == 64 * 64 for frame in results["per_frame"])


class Opaque(torch.nn.Module):
    """A model whose insides are hidden, as an exported graph's are: no decoder to read queries from."""

    def __init__(self, model):
        super().__init__()
        self.graph, self.config = model, model.config

    def forward(self, pixel_values):
        return self.graph(pixel_values)


def test_a_model_without_query_embeddings_tracks_by_masks(tiny_model, tmp_path):
    write_clip(tmp_path / "clip.mp4", [random_image(64, 64, seed=1)] * 3)
    report = predict_video(Predictor(Opaque(tiny_model)), tmp_path / "clip.mp4", tmp_path / "out", "instance")
    assert report.tracking == MASK_RULE.format(min_iou=0.5)
    results = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert results["tracking"] == report.tracking
    tracks = [sorted(e["track_id"] for e in results["annotations"] if e["frame_index"] == i) for i in range(3)]
    assert tracks[0] and tracks[0] == tracks[1] == tracks[2]  # a still scene keeps its ids


def test_bad_video_inputs_are_named(checkpoint, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    report = predict_files(checkpoint, [tmp_path / "broken.mp4"], tmp_path / "out", "instance")
    assert not report.ok and "broken.mp4" in str(report.failed[0][0]) and "not a video" in report.failed[0][1]
    with pytest.raises(ImageError, match="missing.mp4: file not found"):
        predict_files(checkpoint, [tmp_path / "missing.mp4"], tmp_path / "out", "instance", strict=True)
    with pytest.raises(ConfigError, match="one task"):
        predict_files(checkpoint, [tmp_path / "broken.mp4"], tmp_path / "out", "all")
    with pytest.raises(ConfigError, match="cannot be mixed"):
        predict_files(checkpoint, [tmp_path / "broken.mp4", tmp_path / "a.png"], tmp_path / "out", "instance")
    with pytest.raises(ImageError, match="camera 7|/dev/video7|camera:7"):
        predict_files(checkpoint, ["camera:7"], tmp_path / "out", "instance", strict=True)
