"""``predict``: checkpoint + image files or folders -> result files (what the CLI runs)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mask2former.checkpoint import load_model
from mask2former.data.image import list_images, read_image
from mask2former.inference.predictor import Predictor, parse_tasks
from mask2former.inference.writers import ResultWriter

logger = logging.getLogger("mask2former")


def _unique_stems(paths: list[Path]) -> list[str]:
    """File stems, made unique with the parent folder name where two inputs share one."""
    stems = [p.stem for p in paths]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return [f"{p.parent.name}_{p.stem}" if seen[p.stem] > 1 else p.stem for p in paths]


def predict(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
            task: str | Sequence[str] = "panoptic", *, preset: str | None = None, device: str = "cpu",
            batch_size: int = 1, overlays: bool = True, score_threshold: float = 0.5,
            progress: bool = False) -> Path:
    """Run a checkpoint over images and write results under ``output`` (see ``writers``)."""
    tasks = parse_tasks(task)
    paths = list_images(list(inputs))
    model = load_model(checkpoint, preset=preset, device=device)
    predictor = Predictor(model, device=device, batch_size=batch_size)
    writer = ResultWriter(output, predictor.config, tasks, overlays=overlays, score_threshold=score_threshold)
    stems = _unique_stems(paths)
    images: dict[int, np.ndarray] = {}

    def feed() -> Iterator[np.ndarray]:
        for i, path in enumerate(paths):
            images[i] = read_image(path)
            yield images[i]

    results = predictor.iter_predict(feed(), tasks)
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(paths), desc="predict", unit="img")
    for i, result in enumerate(results):
        result.file_name = paths[i].name
        writer.add(result, stems[i], images.pop(i) if overlays else None)
        images.pop(i, None)
    writer.close()
    logger.info("wrote results for %d images to %s", len(paths), output)
    return Path(output)
