"""``predict`` on footage: a video file or a camera, frame by frame, into an annotated video and
per-frame results, with instance identities kept across frames (``tracking``).

Frames are decoded and the annotated video encoded by PyAV (FFmpeg; the ``video`` extra). The
results file ``<stem>.json`` holds COCO results entries (RLE mask, box, score, category) with
``frame_index`` and ``track_id`` for instances, ``segments_info`` per frame for panoptic, class
areas per frame for semantic, and names the tracking rule used. A camera runs until Ctrl-C (or
``max_frames``); both files are complete either way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.atomic_files import write_json_atomic
from mask2former.errors import ConfigError, ImageError
from mask2former.formats import TASKS
from mask2former.inference.predictor import Predictor
from mask2former.inference.records import (
    category_records,
    class_colors,
    dataset_ids,
    instance_records,
    panoptic_segments,
)
from mask2former.inference.tracking import MaskTracker, QueryTracker
from mask2former.inference.visualize import overlay
from mask2former.structures import ImageResult

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts")
CAMERA_PREFIX = "camera:"


def is_video_input(source: str | os.PathLike) -> bool:
    """A video file (by suffix) or a camera (``camera:N``, or a bare number that is not a file)."""
    text = os.fspath(source)
    return (Path(text).suffix.lower() in VIDEO_SUFFIXES or text.startswith(CAMERA_PREFIX)
            or (text.isdigit() and not Path(text).exists()))


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise ConfigError("video input needs PyAV: pip install 'mask2former[video]'") from None
    return av


@dataclass
class VideoSource:
    """An open video: ``frames()`` yields ``[H, W, 3]`` uint8 RGB arrays."""

    name: str
    container: Any
    stream: Any
    fps: Fraction
    total: int | None  # frames, when the file says

    def frames(self) -> Iterator[np.ndarray]:
        av = _av()
        try:
            for frame in self.container.decode(self.stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise ImageError(f"{self.name}: cannot decode a frame ({e})") from None

    def close(self) -> None:
        self.container.close()


def open_video(source: str | os.PathLike) -> VideoSource:
    """A video file, or ``camera:N`` / ``N`` for ``/dev/videoN`` (Linux, V4L2)."""
    av = _av()
    text = os.fspath(source)
    camera = text[len(CAMERA_PREFIX):] if text.startswith(CAMERA_PREFIX) else (text if text.isdigit() else None)
    try:
        if camera is not None:
            if not camera.isdigit():
                raise ConfigError(f"{text}: a camera is camera:N with N its index (camera:0 is /dev/video0)")
            name = f"camera {camera}"
            container = av.open(f"/dev/video{camera}", format="v4l2")
        else:
            name = text
            if not Path(text).is_file():
                raise ImageError(f"{text}: file not found")
            container = av.open(text)
    except av.error.FFmpegError as e:
        raise ImageError(f"{text}: not a video FFmpeg can read ({e.strerror or e})") from None
    if not container.streams.video:
        container.close()
        raise ImageError(f"{text}: holds no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    return VideoSource(name, container, stream, Fraction(rate), stream.frames or None)


class VideoWriter:
    """H.264 (MPEG-4 part 2 where FFmpeg lacks x264) at the source's frame rate; odd sizes are
    padded by one pixel, as the encoders need even ones."""

    def __init__(self, path: Path, fps: Fraction) -> None:
        av = _av()
        self.path, self.fps = path, fps
        self.container = av.open(str(path), mode="w")
        self.codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream: Any = None

    def write(self, rgb: np.ndarray) -> None:
        av = _av()
        h, w = rgb.shape[:2]
        if self.stream is None:
            self.stream = self.container.add_stream(self.codec, rate=self.fps)
            self.stream.width, self.stream.height = w + w % 2, h + h % 2
            self.stream.pix_fmt = "yuv420p"
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()


class _QueryEmbeddings:
    """The decoder's final query embeddings of the last call (the output of its last layer norm,
    which every prediction head reads), taken by a forward hook: the model stays as it is."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.last: torch.Tensor | None = None
        inner = getattr(model, "model", model)  # a reduced-precision wrapper holds the model
        decoder = getattr(inner, "transformer_decoder", None)
        norm = getattr(decoder, "decoder_norm", None)
        self.handle = norm.register_forward_hook(self._keep) if isinstance(norm, torch.nn.Module) else None

    def _keep(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
        self.last = output

    @property
    def available(self) -> bool:
        return self.handle is not None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()


@dataclass
class VideoReport:
    source: str
    frames: int
    video: Path
    results: Path
    tracking: str
    seconds: float


def predict_video(predictor: Predictor, source: str | os.PathLike, output_dir: str | os.PathLike, task: str, *,
                  score_threshold: float = 0.5, max_frames: int | None = None, progress: bool = False
                  ) -> VideoReport:
    """Segment every frame of ``source``; write ``<stem>_<task>.mp4`` and ``<stem>.json`` under ``output_dir``."""
    if task not in TASKS:
        raise ConfigError(f"video task must be one of {', '.join(TASKS)}, got {task!r}")
    video = open_video(source)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(video.name).stem if not video.name.startswith("camera") else video.name.replace(" ", "")
    config = predictor.config
    names, colors, ids = config.class_names, class_colors(config), dataset_ids(config)
    hook = _QueryEmbeddings(predictor.model)
    tracker: QueryTracker | MaskTracker = QueryTracker() if hook.available else MaskTracker()
    writer = VideoWriter(out / f"{stem}_{task}.mp4", video.fps)
    entries: list[dict] = []
    frames: list[dict] = []
    count, start = 0, time.perf_counter()
    bar = _progress(progress, video.total if max_frames is None else min(max_frames, video.total or max_frames))
    try:
        for rgb in video.frames():
            if max_frames is not None and count >= max_frames:
                break
            item = predictor.prepare(rgb, count)
            result = predictor.predict_batch([item], (task,))[0]
            tracks = _tracks(tracker, hook, result) if task == "instance" else None
            frames.append(_frame_record(result, task, count, tracks, ids, names, entries))
            writer.write(np.asarray(overlay(rgb, result, task, names, colors, score_threshold=score_threshold,
                                            pixels=config.pixels, tracks=None if tracks is None else tracks.tolist())))
            count += 1
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:  # a camera (or a long file) stopped by the user: keep what was done
        logger.warning("stopped after %d frames", count)
    finally:
        hook.close()
        writer.close()
        video.close()
        if bar is not None:
            bar.close()
    rule = tracker.rule if task == "instance" else "none (tracking applies to the instance task)"
    results = out / f"{stem}.json"
    write_json_atomic(results, {"video": video.name, "task": task, "frames": count, "fps": float(video.fps),
                                "tracking": rule, "categories": category_records(config), "per_frame": frames,
                                "annotations": entries})
    seconds = time.perf_counter() - start
    logger.info("%s: %d frames in %.1f s (%.2f frames/s); tracking: %s; wrote %s and %s", video.name, count,
                seconds, count / max(seconds, 1e-9), rule, writer.path, results)
    return VideoReport(video.name, count, writer.path, results, rule, seconds)


def _progress(enabled: bool, total: int | None) -> Any:
    if not enabled:
        return None
    from mask2former.progress import Progress

    return Progress(total=total, desc="video", unit="frame")


def _tracks(tracker: QueryTracker | MaskTracker, hook: _QueryEmbeddings, result: ImageResult) -> np.ndarray:
    inst = result.instance
    assert inst is not None
    if isinstance(tracker, QueryTracker) and hook.last is not None and inst.queries is not None:
        per_query = tracker.update(hook.last[0])
        return per_query[inst.queries.cpu().numpy()]
    assert isinstance(tracker, MaskTracker)
    return tracker.update(inst.masks.cpu().numpy(), inst.labels.cpu().numpy())


def _frame_record(result: ImageResult, task: str, index: int, tracks: np.ndarray | None, ids: list[int],
                  names: list[str], entries: list[dict]) -> dict:
    """The frame's summary; instance entries (COCO results + frame index + track) go to ``entries``."""
    record: dict = {"frame_index": index, "height": result.height, "width": result.width}
    if task == "instance":
        assert result.instance is not None and tracks is not None
        found = instance_records(result, ids, index)
        for entry, track, label in zip(found, tracks.tolist(), result.instance.labels.tolist()):
            del entry["image_id"]
            entries.append({"frame_index": index, "track_id": int(track), "category_name": names[label], **entry})
        record["instances"] = len(found)
    elif task == "panoptic":
        assert result.panoptic is not None
        segments = panoptic_segments(result, result.panoptic.segments.cpu().numpy(), ids)
        for entry, segment in zip(segments, result.panoptic.segments_info):
            entry["category_name"] = names[segment.label]
        record["segments_info"] = segments
    else:
        assert result.semantic is not None
        classes, areas = np.unique(result.semantic.labels.cpu().numpy(), return_counts=True)
        record["classes"] = [{"category_id": ids[int(c)], "category_name": names[int(c)], "area": int(a)}
                             for c, a in zip(classes, areas)]
    return record

