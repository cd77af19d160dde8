"""The HTTP API: answers equal what the Predictor and predict's records give for the same image,
every refusal is a JSON body with the right 4xx (or 503), and the service keeps serving after
bad requests and a failing model call."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from mask2former.formats import TASKS, rgb_to_id
from mask2former.inference.records import dataset_ids, instance_records, panoptic_segments
from tests.serve.conftest import make_client, png, png_claiming


def _decoded_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_health_and_model_description(predictor):
    with make_client(predictor) as client:
        assert client.get("/health").json()["status"] == "ok"
        info = client.get("/v1/model").json()
    assert info["source"] == "tiny.pt" and info["format"] == "pytorch" and info["precision"] == "fp32"
    assert info["tasks"] == list(TASKS)
    assert [(c["id"], c["name"], c["isthing"]) for c in info["classes"]] == [
        (1, "person", True), (3, "car", True), (7, "road", False), (9, "sky", False)]
    assert info["classes"][0]["color"] == [220, 20, 60]
    assert info["input"] == {"min_size": 64, "max_size": 128, "channels": 3, "size_divisibility": 32}


def test_panoptic_json_equals_the_predictor_and_predicts_records(predictor, image):
    expected = predictor(image, task="panoptic")
    with make_client(predictor) as client:
        response = client.post("/v1/predict?task=panoptic", content=png(image),
                               headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["task"], answer["height"], answer["width"]) == ("panoptic", 72, 100)
    ids = rgb_to_id(_decoded_png(base64.b64decode(answer["png"])))
    assert np.array_equal(ids, expected.panoptic.segments.numpy())
    records = panoptic_segments(expected, ids, dataset_ids(predictor.config))
    assert len(records) > 0
    names = {1: "person", 3: "car", 7: "road", 9: "sky"}
    for record in records:
        record["category_name"] = names[record["category_id"]]
    assert answer["segments_info"] == records
    assert set(answer["timings_ms"]) == {"decode", "queue_and_model", "encode", "total"}


def test_instance_json_is_coco_results_with_names(predictor, image):
    expected = predictor(image, task="instance")
    with make_client(predictor) as client:
        files = {"file": ("street.png", png(image), "image/png")}  # multipart, as a browser form sends it
        answer = client.post("/v1/predict?task=instance", files=files).json()
    records = instance_records(expected, dataset_ids(predictor.config), 0)
    assert len(answer["instances"]) == len(records) > 0
    for got, want in zip(answer["instances"], records):
        assert got["category_name"] == {1: "person", 3: "car", 7: "road", 9: "sky"}[want["category_id"]]
        assert {k: got[k] for k in ("category_id", "segmentation", "bbox", "score")} == {
            k: want[k] for k in ("category_id", "segmentation", "bbox", "score")}


def test_semantic_json_and_png_hold_the_label_map(predictor, image):
    labels = predictor(image, task="semantic").semantic.labels.numpy()
    with make_client(predictor) as client:
        answer = client.post("/v1/predict?task=semantic", content=png(image)).json()
        raw = client.post("/v1/predict?task=semantic&format=png", content=png(image))
    assert raw.headers["content-type"] == "image/png"
    assert np.array_equal(_decoded_png(raw.content), labels)
    assert np.array_equal(_decoded_png(base64.b64decode(answer["png"])), labels)
    present, areas = np.unique(labels, return_counts=True)
    assert [(c["index"], c["area"]) for c in answer["classes"]] == list(zip(present.tolist(), areas.tolist()))


def test_overlay_is_a_picture_of_the_image_size(predictor, image):
    with make_client(predictor) as client:
        for task in ("panoptic", "instance", "semantic"):
            response = client.post(f"/v1/predict?task={task}&format=overlay", content=png(image))
            assert response.status_code == 200
            assert Image.open(io.BytesIO(response.content)).size == (100, 72)


@pytest.mark.parametrize(("query", "body", "status", "words"), [
    ("task=panoptic", b"this is not an image", 400, "not an image"),
    ("task=panoptic", "truncated", 400, "cannot decode"),
    ("task=panoptic", png_claiming(100_000, 100_000), 413, "10,000,000,000 pixels"),
    ("task=panoptic", b"", 400, "empty request"),
    ("task=depth", "image", 400, "task must be one of"),
    ("task=panoptic&format=gif", "image", 400, "format must be one of"),
    ("task=instance&format=png", "image", 400, "no single PNG"),
])
def test_bad_requests_get_their_4xx_with_a_message(predictor, image, query, body, status, words):
    good = png(image)
    body = {"image": good, "truncated": good[: len(good) // 2]}.get(body, body) if isinstance(body, str) else body
    with make_client(predictor) as client:
        response = client.post(f"/v1/predict?{query}", content=body)
        assert response.status_code == status, response.text
        assert words in response.json()["error"]
        assert client.post("/v1/predict", content=good).status_code == 200  # still serving


def test_limits_on_body_and_pixels(predictor, image):
    with make_client(predictor, max_upload_mb=0.001, max_image_pixels=1000) as client:
        noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
        big = client.post("/v1/predict", content=png(noise))
        assert big.status_code == 413 and "over the limit of 1,048 bytes" in big.json()["error"]
        chunked = client.post("/v1/predict", content=iter([png(image)[:800], png(image)[800:]]))
        assert chunked.status_code == 413
        small = client.post("/v1/predict", content=png(np.zeros((40, 40, 3), np.uint8)))
        assert small.status_code == 413 and "1,600 pixels" in small.json()["error"]
        assert "serve --max-pixels" in small.json()["error"]


def test_multipart_without_a_file_field(predictor):
    with make_client(predictor) as client:
        response = client.post("/v1/predict", data={"image": "x"}, files={"other": ("a.png", b"x", "image/png")})
    assert response.status_code == 400 and "field named 'file'" in response.json()["error"]


def test_bearer_token(predictor, image):
    with make_client(predictor, token="s3cret") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/").status_code == 200  # the page asks for the token itself
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = client.post("/v1/predict", content=png(image), headers=headers)
            assert response.status_code == 401 and "bearer token" in response.json()["error"]
            assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics").status_code == 401
        ok = client.post("/v1/predict", content=png(image), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def _blocking(predictor):
    """Make the model wait for an event; returns (event, list of batch sizes it ran)."""
    release, sizes = threading.Event(), []
    original = predictor.predict_batch

    def predict_batch(items, tasks):
        release.wait(10)
        sizes.append(len(items))
        return original(items, tasks)

    predictor.predict_batch = predict_batch
    return release, sizes


def _post_in_thread(client, body, results):
    thread = threading.Thread(target=lambda: results.append(client.post("/v1/predict", content=body)))
    thread.start()
    return thread


def _wait(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_full_queue_answers_503_with_retry_after_then_recovers(predictor, image):
    release, _ = _blocking(predictor)
    body, results = png(image), []
    with make_client(predictor, max_batch=1, max_queue=1, window_ms=1) as client:
        service = client.app.state.service
        threads = [_post_in_thread(client, body, results)]
        _wait(lambda: service.batcher.depth == 1 and service.batcher._queue.qsize() == 0)  # running
        threads.append(_post_in_thread(client, body, results))
        _wait(lambda: service.batcher.depth == 2)  # waiting
        refused = client.post("/v1/predict", content=body)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["error"]
        release.set()
        for thread in threads:
            thread.join(10)
        assert [r.status_code for r in results] == [200, 200]
        assert client.post("/v1/predict", content=body).status_code == 200


def test_concurrent_requests_share_a_batch_and_get_their_own_answers(predictor):
    release, sizes = _blocking(predictor)
    images = [np.full((72, 100, 3), 40 * i, np.uint8) for i in range(4)]
    expected = [predictor(im, task="panoptic") for im in images]
    release.set()  # the first call above ran already; now block the service's calls
    release.clear()
    sizes.clear()
    results: dict[int, object] = {}
    with make_client(predictor, max_batch=4, window_ms=500) as client:
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, client.post("/v1/predict", content=png(images[i])))) for i in range(4)]
        for t in threads:
            t.start()
        _wait(lambda: client.app.state.service.batcher.depth == 4)
        release.set()
        for t in threads:
            t.join(10)
        metrics = client.get("/metrics").text
    assert sizes == [4]
    for i in range(4):
        ids = rgb_to_id(_decoded_png(base64.b64decode(results[i].json()["png"])))
        assert np.array_equal(ids, expected[i].panoptic.segments.numpy())
    assert 'mask2former_requests_total{status="200"} 4.0' in metrics
    assert "mask2former_batch_size_bucket" in metrics and "mask2former_queue_depth 0.0" in metrics


def test_a_failing_model_call_is_a_500_and_the_service_goes_on(predictor, image):
    original = predictor.predict_batch
    calls = []

    def once_broken(items, tasks):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return original(items, tasks)

    predictor.predict_batch = once_broken
    with make_client(predictor) as client:
        broken = client.post("/v1/predict", content=png(image))
        assert broken.status_code == 500 and "out of memory" in broken.json()["error"]
        assert client.post("/v1/predict", content=png(image)).status_code == 200
        assert 'mask2former_requests_total{status="500"} 1.0' in client.get("/metrics").text
