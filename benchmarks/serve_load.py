"""Load on a running ``mask2former serve`` (started here on 127.0.0.1 with the given checkpoint):
N clients posting one image back to back for T seconds, then bad requests and a burst.

    python benchmarks/serve_load.py --checkpoint demo_output/train/model_final.pt --image IMG
                                    [--clients 8] [--seconds 30] [--burst 10000] [--max-batch 4]

Prints the CPU, requests by status, p50 / p95 latency of the answers, answers per second, the
server's resident memory after a warm-up and after each third of the load, and what the bad requests and the burst got.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mask2former.cpu import cpu_name
from mask2former.serve.load import burst, post, rss_mb, run_load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image", required=True, help="the image every client posts")
    parser.add_argument("--task", default="panoptic")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--max-queue", type=int, default=32)
    args = parser.parse_args()

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "mask2former", "-q", "serve", "--checkpoint", args.checkpoint,
                               "--port", str(port), "--max-batch", str(args.max_batch), "--max-queue",
                               str(args.max_queue), "--precision", "fp32"])
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.5)
        body = Path(args.image).read_bytes()
        target = f"{url}/v1/predict?task={args.task}"
        print(f"CPU: {cpu_name()}; server: --max-batch {args.max_batch} --max-queue {args.max_queue}, fp32")
        warm = run_load(target, body, clients=args.clients, seconds=10)
        print(f"warm-up: {warm.summary()}; server RSS {rss_mb(server.pid):.0f} MB")
        for phase in range(1, 4):  # flat memory: the same RSS after each third of the load
            report = run_load(target, body, clients=args.clients, seconds=args.seconds / 3)
            print(f"load {phase}/3: {report.summary()}; server RSS {rss_mb(server.pid):.0f} MB")
        bad = {"not an image": (target, b"GIF89a nope"), "truncated": (target, body[: len(body) // 3]),
               "wrong task": (f"{url}/v1/predict?task=depth", body)}
        for name, (where, payload) in bad.items():
            status, answer = post(where, payload)
            print(f"{name}: {status} {json.loads(answer)['error'][:100]}")
        if args.burst:
            start = time.perf_counter()
            statuses = burst(target, body, requests=args.burst, concurrency=64)
            print(f"burst of {args.burst:,} from 64 connections in {time.perf_counter() - start:.0f} s: "
                  f"{dict(sorted(statuses.items()))}")
        status, _ = post(target, body)
        print(f"after all that: {status}; server RSS {rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
