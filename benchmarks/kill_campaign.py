"""kill -9 campaign: training is killed again and again (some kills aimed inside a checkpoint
write), resumed each time, and must end with exactly the weights of an uninterrupted run.

After every kill each file in ``checkpoints/`` must load with ``load_model`` (a usable model),
and the next start must remove the temporary files the kill left. Prints the figures:

    .venv/bin/python benchmarks/kill_campaign.py [--kills 24] [--iters 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from mask2former import CheckpointError, load_model
from mask2former.cpu import cpu_name
from mask2former.data.synthetic import write_synthetic


def _command(data: Path, out: Path, iters: int, resume: bool) -> list[str]:
    return [sys.executable, "-m", "mask2former", "-q", "train", "--data", str(data), "--preset", "tiny",
            "--iters", str(iters), "--output", str(out), "--set", "num_workers=0", "checkpoint_period=2",
            "keep_checkpoints=3", "log_period=1", *(["--resume"] if resume else [])]


def _wait_for_write(ckpt: Path, process: subprocess.Popen, timeout: float) -> None:
    """Poll until a checkpoint's temporary file exists (a write is under way) or time runs out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and process.poll() is None:
        if ckpt.is_dir() and any(name.endswith(".tmp") for name in os.listdir(ckpt)):
            return
        time.sleep(0.0005)


def _check_checkpoints(ckpt: Path) -> tuple[int, int, list[str]]:
    """(files that load, temporary files present, files that failed with their reason)."""
    loaded, failed = 0, []
    for path in sorted(ckpt.glob("*.pt")):
        try:
            load_model(path)
            loaded += 1
        except CheckpointError as e:
            failed.append(f"{path.name}: {e}")
    temps = len(list(ckpt.glob(".*.tmp"))) if ckpt.is_dir() else 0
    return loaded, temps, failed


def run(kills: int, iters: int, seed: int) -> int:
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="kill_campaign_"))
    data = write_synthetic(root / "data", num_train=8, num_val=2, seed=0)
    config = yaml.safe_load(data.read_text())
    config.pop("val")
    data.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    t0 = time.perf_counter()
    subprocess.run(_command(data, root / "reference", iters, False), env=env, check=True, capture_output=True)
    reference_seconds = time.perf_counter() - t0
    reference = load_model(root / "reference" / "model_final.pt").state_dict()

    out, ckpt = root / "killed", root / "killed" / "checkpoints"
    stats = {"kills": 0, "inside a write": 0, "checkpoint files checked": 0, "corrupt": 0,
             "temporary files left by kills": 0, "temporary files left after the next start": 0, "restarts": 0}
    failures: list[str] = []
    while stats["kills"] < kills:
        process = subprocess.Popen(_command(data, out, iters, stats["restarts"] > 0), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stats["restarts"] += 1
        aim_at_write = stats["kills"] % 3 != 2  # two kills in three aimed at a checkpoint write
        if aim_at_write:
            _wait_for_write(ckpt, process, timeout=60)
        else:
            time.sleep(rng.uniform(2.0, 8.0))
        if process.poll() is not None:  # finished (or failed) before the kill
            if process.returncode != 0:
                failures.append(f"run failed: {process.stderr.read().decode()[-500:]}")
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        stats["kills"] += 1
        loaded, temps, failed = _check_checkpoints(ckpt)
        stats["inside a write"] += int(temps > 0)  # the kill left a half-written temporary file
        stats["checkpoint files checked"] += loaded + len(failed)
        stats["corrupt"] += len(failed)
        stats["temporary files left by kills"] += temps
        failures += failed
    # resume to the end, then check what the last start left
    finish = subprocess.run(_command(data, out, iters, True), env=env, capture_output=True, text=True)
    if finish.returncode != 0:
        failures.append(f"final resume failed: {finish.stderr[-500:]}")
    stats["temporary files left after the next start"] = len(list(ckpt.glob(".*.tmp")))
    final = load_model(out / "model_final.pt").state_dict()
    worst = max((final[k].double() - reference[k].double()).abs().max().item() for k in reference)
    equal = all(torch.equal(final[k], reference[k]) for k in reference)

    print(f"kill -9 campaign: tiny preset, {iters} iterations x batch 2, a checkpoint every 2 iterations "
          f"(uninterrupted run {reference_seconds:.0f} s), seed {seed}, CPU: {cpu_name()}")
    for key, value in stats.items():
        print(f"  {key:45s} {value}")
    print(f"  {'final weights bit-identical to the uninterrupted run':45s} {equal} (largest difference {worst:.3g})")
    for failure in failures:
        print(f"  FAILURE: {failure}")
    return 0 if equal and not failures and stats["corrupt"] == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    return run(args.kills, args.iters, args.seed)


if __name__ == "__main__":
    sys.exit(main())
