"""Progress on a terminal is a live bar; in a log it is a line every tenth of the run or so."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from mask2former.data.synthetic import write_synthetic
from mask2former.progress import Progress, track


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_tenth(caplog):
    caplog.set_level(logging.INFO, logger="mask2former")
    with Progress(total=200, desc="train", unit="it", interval=1e9, stream=io.StringIO()) as progress:
        for _ in range(200):
            progress.set_postfix(loss="1.000")
            progress.update()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10, lines
    assert lines[0].startswith("train: 20/200 it (10%)") and lines[-1].startswith("train: 200/200 it (100%)")
    assert all("loss=1.000" in line and "\r" not in line for line in lines)


def test_a_slow_run_also_reports_on_time(caplog):
    caplog.set_level(logging.INFO, logger="mask2former")
    items = list(track(range(5), total=None, desc="eval", unit="img"))  # no total: only time can trigger
    assert items == list(range(5)) and not caplog.records
    with Progress(total=1000, desc="eval", unit="img", interval=0.0, stream=io.StringIO()) as progress:
        progress.update()
    assert caplog.records[-1].getMessage().startswith("eval: 1/1000 img (0%)")


def test_a_terminal_gets_the_live_bar():
    stream = _Terminal()
    with Progress(total=3, desc="predict", unit="img", stream=stream) as progress:
        progress.update(3)
    assert "\r" in stream.getvalue() and "predict" in stream.getvalue()


def test_a_training_log_written_to_a_file_has_no_bar_frames(tmp_path):
    data = write_synthetic(tmp_path / "data", num_train=4, num_val=1, seed=0)
    log = tmp_path / "train.log"
    with open(log, "w") as stderr:
        subprocess.run([sys.executable, "-m", "mask2former", "train", "--data", str(data), "--preset", "tiny",
                        "--iters", "4", "--output", str(tmp_path / "run"), "--set", "num_workers=0"],
                       stderr=stderr, stdout=subprocess.DEVNULL, check=True, timeout=600)
    text = log.read_text()
    assert "\r" not in text
    assert "train: 4/4 it (100%)" in text
