"""The web page in a real headless Chromium (Debian's, driven by Playwright, which never downloads
a browser here): it loads with nothing from outside, an uploaded image comes back drawn over with
a legend of the segments present, hovering names a segment, unticking one hides it, and the JSON
and the picture download."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2former.serve.app import STATIC, create_app
from tests.serve.conftest import live_server, png

CHROMIUM = os.environ.get("MASK2FORMER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_page_loads_nothing_from_outside():
    for name in ("index.html", "page.js", "page.css", "rle.js"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium); CI installs it")
def test_upload_draws_the_overlay_and_the_legend(predictor, image, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    upload = tmp_path / "street.png"
    upload.write_bytes(png(image))
    app = create_app(predictor, source="tiny.pt")
    outside: list[str] = []
    with live_server(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda r: None if r.url.startswith(url) or r.url.startswith("data:")
                    or r.url.startswith("blob:") else outside.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('model-info').textContent.includes('tiny.pt')")
            assert "4 classes" in page.text_content("#model-info")

            page.set_input_files("#file", str(upload))
            page.wait_for_selector("#legend li[data-id]", timeout=60_000)
            answer = page.evaluate("state.answer")
            assert answer["task"] == "panoptic" and answer["segments_info"]
            legend = page.eval_on_selector_all("#legend li .name", "items => items.map(i => i.textContent)")
            assert [name.split(" ")[0] for name in legend] == [s["category_name"] for s in answer["segments_info"]]
            assert "segment(s)" in page.text_content("#status")

            # the overlay: canvas at the image's size, pixels differ from the image where segments are
            drawn = np.array(page.evaluate("""() => {
                const c = document.getElementById('canvas');
                return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
            }""")[2], dtype=np.uint8).reshape(72, 100, 4)[..., :3]
            assert page.evaluate("[canvas.width, canvas.height]") == [100, 72]
            changed = np.abs(drawn.astype(int) - image.astype(int)).sum(-1) > 10
            assert changed.mean() > 0.5

            # hover: the tooltip names the segment under the pointer (a pixel inside the largest segment)
            ids = np.array(page.evaluate("Array.from(state.ids)")).reshape(72, 100)
            interior = np.ones_like(ids, dtype=bool)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    interior &= ids == np.roll(ids, (dy, dx), (0, 1))
            largest = max(answer["segments_info"], key=lambda s: (interior & (ids == s["id"])).sum())
            ys, xs = np.nonzero(interior & (ids == largest["id"]))
            box = page.locator("#canvas").bounding_box()
            scale = box["width"] / 100
            assert scale > 2  # a small image is shown enlarged
            page.mouse.move(box["x"] + (xs[len(xs) // 2] + 0.5) * scale, box["y"] + (ys[len(ys) // 2] + 0.5) * scale)
            tip = page.text_content("#tooltip")
            assert largest["category_name"] in tip and f"{largest['score']:.3f}" in tip
            assert page.is_visible("#tooltip")

            # untick the segment: its pixels show the image again
            page.uncheck(f"#legend li[data-id='{largest['id']}'] input")
            again = np.array(page.evaluate(
                "Array.from(canvas.getContext('2d').getImageData(0, 0, 100, 72).data)"), dtype=np.uint8
            ).reshape(72, 100, 4)[..., :3]
            hidden = interior & (ids == largest["id"])
            assert np.array_equal(again[hidden], image[hidden])
            assert not np.array_equal(again[~hidden & (ids > 0) & interior], image[~hidden & (ids > 0) & interior])

            # the downloads: the answer as JSON, the drawn picture as PNG
            with page.expect_download() as download:
                page.click("#download-json")
            assert json.loads(Path(download.value.path()).read_text()) == answer
            with page.expect_download() as download:
                page.click("#download-png")
            assert Image.open(download.value.path()).size == (100, 72)

            # another task from the same page
            page.check("input[name=task][value=semantic]")
            page.wait_for_function("state.answer && state.answer.task === 'semantic'")
            names = page.eval_on_selector_all("#legend li .name", "items => items.map(i => i.textContent)")
            assert names == [c["category_name"] for c in page.evaluate("state.answer.classes")]
            assert not errors, errors
        finally:
            browser.close()
    assert not outside, outside
