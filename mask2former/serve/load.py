"""Load and burst clients for a running service (the load test and ``benchmarks/serve_load.py``):
plain ``http.client`` connections in threads, so they need nothing the service does not."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadReport:
    clients: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, of 200 answers

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(q) - 1]

    def summary(self) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (f"{self.clients} clients for {self.seconds:.0f} s: {self.requests} requests ({codes}); "
                f"p50 {1000 * self.percentile(50):.0f} ms, p95 {1000 * self.percentile(95):.0f} ms, "
                f"{self.statuses[200] / self.seconds:.2f} answers/s")


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the load clients only talk to this machine, not {parts.hostname}")
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=120), parts.path or "/"


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One POST on a fresh connection: (status, body)."""
    connection, path = _connection(url)
    try:
        connection.request("POST", path + (f"?{urlsplit(url).query}" if urlsplit(url).query else ""), body=body,
                           headers={"Content-Type": "application/octet-stream", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _client(url: str, body: bytes, headers: dict[str, str], stop: Callable[[], bool], report: LoadReport,
            lock: threading.Lock) -> None:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection, _ = _connection(url)
    try:
        while not stop():
            start = time.perf_counter()
            try:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection, _ = _connection(url)
                status = 0  # no answer at all
            elapsed = time.perf_counter() - start
            with lock:
                report.statuses[status] += 1
                if status == 200:
                    report.latencies.append(elapsed)
    finally:
        connection.close()


def run_load(url: str, body: bytes, *, clients: int, seconds: float, headers: dict[str, str] | None = None
             ) -> LoadReport:
    """``clients`` connections each posting ``body`` back to back for ``seconds``."""
    report, lock = LoadReport(clients=clients, seconds=seconds), threading.Lock()
    deadline = time.monotonic() + seconds
    all_headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    threads = [threading.Thread(target=_client, args=(url, body, all_headers, lambda: time.monotonic() > deadline,
                                                      report, lock)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report


def burst(url: str, body: bytes, *, requests: int, concurrency: int, headers: dict[str, str] | None = None
          ) -> Counter:
    """``requests`` posts from ``concurrency`` connections at once, as fast as answers come: the
    statuses they got (0: no answer)."""
    left, lock = [requests], threading.Lock()

    def take() -> bool:
        with lock:
            left[0] -= 1
            return left[0] < 0

    report = LoadReport(clients=concurrency, seconds=0.0)
    all_headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    threads = [threading.Thread(target=_client, args=(url, body, all_headers, take, report, lock))
               for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report.statuses


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for process {pid}")
