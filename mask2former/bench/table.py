"""The benchmark table: one row per format x precision x size, each measured in a fresh process
(so that one row's memory, caches and threads do not leak into the next), in one run.

Latency is the median wall time of the model call (``pixel_values`` in, logits out) over ``runs``
calls after one warm-up call; throughput is batch / latency; peak memory is the process's peak
resident memory while it loads the model and makes the first call, above its resident memory
before loading: weights, the runtime's own structures and the activations, whatever the runtime
allocates with (memory one step frees and the next reuses would hide from a count that starts
after loading). Parameters and FLOPs are the PyTorch model's (FLOPs counted
by torch's FlopCounterMode: matrix products and convolutions, at each size). With ``data``, every
format and precision is scored on the split and compared with PyTorch fp32.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.bench.stages import STAGES, stage_times
from mask2former.benchmark import count_flops
from mask2former.cpu import cpu_name, native_bf16
from mask2former.errors import ConfigError
from mask2former.exported_model import EXPORT_PRECISIONS
from mask2former.formats import EXPORT_FORMATS, PRECISIONS
from mask2former.modeling import Mask2Former

FORMATS = ("torch", *EXPORT_FORMATS)
FORMAT_PRECISIONS = {"torch": PRECISIONS, **EXPORT_PRECISIONS}
ACCURACY = (("panoptic.PQ", "PQ"), ("instance.AP", "mask AP"), ("semantic.mIoU", "mIoU"))


def default_precisions() -> tuple[list[str], str]:
    """fp32 and int8 everywhere, bf16 only where the CPU computes it natively (emulated bf16 is many
    times slower than fp32: a row of it measures the emulation); and a note saying so."""
    if native_bf16():
        return ["fp32", "bf16", "int8"], ""
    return ["fp32", "int8"], "bf16 left out: this CPU has no native bf16 (ask for it with --precision to measure it)"


def parse_size(text: str, step: int) -> tuple[int, int]:
    """``HxW`` (e.g. 800x1216), both multiples of the model's size divisibility."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--sizes: expected HxW such as 512x512, got {text!r}")
    h, w = int(match[1]), int(match[2])
    if h % step or w % step or min(h, w) < 2 * step:
        raise ConfigError(f"--sizes {text}: the model takes padded inputs, multiples of {step} and at least {2 * step}")
    return h, w


@dataclass
class Row:
    format: str
    precision: str  # asked for
    running: str  # what ran (OpenVINO falls back to fp32 where bf16 is not native)
    size: tuple[int, int]
    batch: int
    latency_ms: float
    throughput: float  # images per second
    peak_memory_mb: float | None  # loading + first call; None where the kernel does not let us reset the peak
    params_m: float
    gflops: float
    export_s: float | None = None
    stages: dict[str, float] | None = None  # PyTorch rows: seconds per stage
    accuracy: dict[str, float] = field(default_factory=dict)


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no {key} in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_row(path: str, format: str, precision: str, size: tuple[int, int], batch: int, runs: int,
                threads: int, stages: bool) -> dict[str, Any]:
    """One row, in the calling process (``in_fresh_process`` runs it in a new one)."""
    from mask2former.bench.stages import median_seconds
    from mask2former.precision import precision_of
    from mask2former.weights import load_model

    torch.set_num_threads(threads)
    counting = _reset_peak_rss()
    before = _status_mb("VmRSS") if counting else 0.0
    model = load_model(path, precision=precision)
    x = torch.randn(batch, model.config.pixels.channels, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        model(x)
        peak = _status_mb("VmHWM") - before - x.numel() * 4 / 2**20 if counting else None  # the input excluded
        latency = median_seconds(lambda: model(x), runs)
    result = {"running": precision_of(model), "latency_ms": 1000 * latency, "peak_memory_mb": peak}
    if stages and format == "torch":
        result["stages"] = stage_times(model, x, runs)  # type: ignore[arg-type]
    return result


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


@dataclass
class Benchmark:
    """What ``run_benchmark`` measured, and how."""

    cpu: str
    threads: int
    runs: int
    torch_version: str
    rows: list[Row]
    notes: list[str]
    side_by_side: dict[str, Any] = field(default_factory=dict)  # size text -> vs_hf.SideBySide

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["side_by_side"] = {k: asdict(v) for k, v in self.side_by_side.items()}
        return data


def plan(formats: Sequence[str], precisions: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The (format, precision) pairs to measure, and a note for each pair a format cannot hold."""
    pairs, notes = [], []
    for format in formats:
        if format not in FORMATS:
            raise ConfigError(f"--formats: unknown format {format!r} (choose from {', '.join(FORMATS)})")
        for precision in precisions:
            if precision not in PRECISIONS:
                raise ConfigError(f"--precision: unknown precision {precision!r} ({', '.join(PRECISIONS)})")
            if precision in FORMAT_PRECISIONS[format]:
                pairs.append((format, precision))
            else:
                notes.append(f"{format} {precision}: not a precision a {format} file holds")
    return pairs, notes


def run_benchmark(model: Mask2Former, workdir: Path, *, formats: Sequence[str], precisions: Sequence[str],
                  sizes: Sequence[tuple[int, int]], batch: int = 1, runs: int = 5, threads: int | None = None,
                  data: str | os.PathLike | None = None, split: str = "val", calibration_split: str = "train",
                  calibration_images: int = 16, stages: bool = True, vs_hf: bool = False,
                  say: Callable[[str], None] = print) -> Benchmark:
    """Export ``model`` to every format and precision asked for (under ``workdir``), then measure each
    row in a fresh process; ``data``: also score each on ``split``; ``vs_hf``: also time the HF port
    beside ours per stage at each size."""
    from mask2former.export import export_model
    from mask2former.weights import save_model

    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    pairs, notes = plan(formats, precisions)
    workdir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    checkpoint = save_model(model, workdir / "model.safetensors")
    files: dict[tuple[str, str], tuple[Path, float | None]] = {}
    calibration: list[np.ndarray] = []
    for format, precision in pairs:
        if format == "torch":
            files[format, precision] = (checkpoint, None)
            continue
        if precision == "int8" and not calibration:
            calibration = _calibration(model, data, calibration_split, calibration_images, notes)
        say(f"exporting {format} {precision} ...")
        start = time.perf_counter()
        path = export_model(model, workdir / f"{format}_{precision}", format=format, precision=precision,
                            calibration=calibration if precision == "int8" else ())
        files[format, precision] = (path, time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    rows = []
    for size in sizes:
        with torch.inference_mode():
            gflops = count_flops(partial(model, torch.randn(batch, model.config.pixels.channels, *size)))
        for format, precision in pairs:
            path, export_s = files[format, precision]
            say(f"measuring {format} {precision} {size[0]}x{size[1]} batch {batch} ...")
            got = in_fresh_process(measure_row, str(path), format, precision, size, batch, runs, threads, stages)
            rows.append(Row(format=format, precision=precision, running=got["running"], size=size, batch=batch,
                            latency_ms=got["latency_ms"], throughput=1000 * batch / got["latency_ms"],
                            peak_memory_mb=got["peak_memory_mb"], params_m=params, gflops=gflops,
                            export_s=export_s, stages=got.get("stages")))
    if data is not None:
        scores = {pair: _scores(files[pair][0], data, split, pair[1], say) for pair in pairs}
        for row in rows:
            row.accuracy = scores[row.format, row.precision]
    result = Benchmark(cpu=cpu_name(), threads=threads, runs=runs, torch_version=torch.__version__, rows=rows,
                       notes=notes)
    if vs_hf:
        from mask2former.bench.vs_hf import side_by_side

        for index, size in enumerate(sizes):  # a training step at the first size
            say(f"timing the HF port beside ours at {size[0]}x{size[1]} ...")
            result.side_by_side[f"{size[0]}x{size[1]}"] = side_by_side(model.config, size, runs, train=index == 0)
    return result


def _calibration(model: Mask2Former, data: str | os.PathLike | None, split: str, count: int,
                 notes: list[str]) -> list[np.ndarray]:
    from mask2former.export import calibration_inputs

    if data is not None:
        notes.append(f"int8 calibrated on {count} images of the {split!r} split of {data}")
        return calibration_inputs(model, data, split=split, count=count)
    notes.append("int8 calibrated on random images (no --data): its latency is real, its accuracy is not")
    generator = torch.Generator().manual_seed(0)
    side = model.config.inference.min_size // 32 * 32 or 64
    return [torch.randn(1, model.config.pixels.channels, side, side, generator=generator).numpy()
            for _ in range(min(count, 4))]


def _scores(path: Path, data: str | os.PathLike, split: str, precision: str, say: Callable[[str], None]
            ) -> dict[str, float]:
    from mask2former.engine.evaluate import evaluate_checkpoint

    say(f"scoring {path.name} at {precision} on {split} ...")
    metrics = evaluate_checkpoint(path, data, split=split, precision=precision)
    return {key: metrics[key] for key, _ in ACCURACY if key in metrics}


def format_benchmark(result: Benchmark) -> str:
    """The tables as Markdown: rows, PyTorch stages, and the HF side by side."""
    lines = [f"CPU: {result.cpu}; torch {result.torch_version}, {result.threads} threads; median of {result.runs} "
             "calls after 1 warm-up; peak memory: the process's peak RSS while loading the model and making the "
             "first call, above its RSS before loading (weights + runtime + activations), each row in a fresh "
             "process", ""]
    reference = {(r.size, r.batch): r for r in result.rows if r.format == "torch" and r.precision == "fp32"}
    scored = any(r.accuracy for r in result.rows)
    header = ["format", "precision", "size", "batch", "latency (ms)", "images/s", "peak memory (MB)", "params (M)",
              "GFLOPs", "export (s)"] + ([name for _, name in ACCURACY] if scored else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result.rows:
        ran = row.precision if row.running == row.precision else f"{row.precision} (ran {row.running})"
        cells = [row.format, ran, f"{row.size[0]}x{row.size[1]}", str(row.batch), f"{row.latency_ms:,.0f}",
                 f"{row.throughput:.2f}", "n/a" if row.peak_memory_mb is None else f"{row.peak_memory_mb:,.0f}",
                 f"{row.params_m:.1f}", f"{row.gflops:.1f}", "" if row.export_s is None else f"{row.export_s:.0f}"]
        if scored:
            base = reference.get((row.size, row.batch))
            for key, _ in ACCURACY:
                value = row.accuracy.get(key)
                if value is None:
                    cells.append("")
                elif base is None or base is row:
                    cells.append(f"{value:.2f}")
                else:
                    cells.append(f"{value:.2f} ({value - base.accuracy.get(key, value):+.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    staged = [r for r in result.rows if r.stages]
    if staged:
        lines += ["", "PyTorch, seconds per stage (each stage timed alone):", "",
                  "| precision | size | batch | " + " | ".join(STAGES) + " |", "|" + "---|" * (3 + len(STAGES))]
        for row in staged:
            assert row.stages is not None
            lines.append(f"| {row.precision} | {row.size[0]}x{row.size[1]} | {row.batch} | "
                         + " | ".join(f"{row.stages[s]:.3f}" for s in STAGES) + " |")
    if result.side_by_side:
        from mask2former.bench.vs_hf import format_side_by_side

        lines += ["", "Beside the HF port (same weights, fp32, HF time / ours > 1: we are faster):", ""]
        for size, side in result.side_by_side.items():
            lines += format_side_by_side(size, side) + [""]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"
