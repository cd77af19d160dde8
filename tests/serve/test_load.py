"""Load and faults against a live server on 127.0.0.1: concurrent clients get no 5xx and the
server's memory stays flat; bad requests and a 10,000-request burst get their 4xx / 503 and the
server keeps serving. Figures are printed (``-s``), not asserted: timing belongs to benchmarks."""

from __future__ import annotations

import json

from mask2former.serve.app import ServeSettings, create_app
from mask2former.serve.load import burst, post, rss_mb, run_load
from tests.serve.conftest import live_server, png, png_claiming

TOKEN = {"Authorization": "Bearer t0ken"}


def test_concurrent_clients_get_answers_and_memory_stays_flat(predictor, image):
    app = create_app(predictor, ServeSettings(max_batch=4, max_queue=32, window_ms=5), source="tiny.pt")
    body = png(image)
    with live_server(app) as url:
        warm = run_load(f"{url}/v1/predict?task=panoptic", body, clients=4, seconds=3)
        before = rss_mb()
        report = run_load(f"{url}/v1/predict?task=panoptic", body, clients=8, seconds=10)
        after = rss_mb()
    print(f"\nwarm-up: {warm.summary()}\nload: {report.summary()}; RSS {before:.0f} -> {after:.0f} MB")
    assert warm.statuses[200] > 0
    assert set(report.statuses) == {200}, report.statuses  # no 5xx, no refusals, no dropped connection
    assert report.requests >= 8
    assert after - before < 64, (before, after)  # flat: no per-request growth


def test_bad_requests_and_a_burst_leave_the_server_serving(predictor, image):
    app = create_app(predictor, ServeSettings(max_batch=4, max_queue=8, window_ms=5, max_image_pixels=10**6,
                                              token="t0ken"), source="tiny.pt")
    good = png(image)
    huge = png_claiming(20_000, 20_000)
    cases = [("task=panoptic", b"GIF89a not really", TOKEN, 400), ("task=panoptic", good[:200], TOKEN, 400),
             ("task=panoptic", huge, TOKEN, 413), ("task=depth", good, TOKEN, 400), ("task=panoptic", good, {}, 401),
             ("task=panoptic", good, {"Authorization": "Bearer nope"}, 401)]
    with live_server(app) as url:
        for query, body, headers, status in cases:
            code, answer = post(f"{url}/v1/predict?{query}", body, headers)
            assert code == status, (query, code, answer[:200])
            assert json.loads(answer)["error"]
        statuses = burst(f"{url}/v1/predict?task=panoptic", good, requests=10_000, concurrency=64, headers=TOKEN)
        code, answer = post(f"{url}/v1/predict?task=panoptic", good, TOKEN)
        semantic = post(f"{url}/v1/predict?task=semantic", good, TOKEN)[0]
    print(f"\nburst of 10,000: {dict(statuses)}")
    assert sum(statuses.values()) == 10_000
    assert set(statuses) <= {200, 503} and statuses[200] > 0 and statuses[503] > 0, statuses
    assert code == 200 and json.loads(answer)["segments_info"] is not None
    assert semantic == 200
