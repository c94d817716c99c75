"""Per-engine peak RSS (``pyflame_rt.tools.rss``): each engine measured alone in a fresh process.

The bounds come from independent measurements in fresh interpreters (the cost of importing
each engine), not from the worker's own numbers.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pyflame_rt.models import demo_model_path
from pyflame_rt.tools.rss import measure_engine_rss


def _import_peak(*modules: str) -> int:
    """Peak RSS (bytes) of a fresh Python that only imports ``modules``."""
    code = ("import " + ", ".join(modules) + "\n"
            "for line in open('/proc/self/status'):\n"
            "    if line.startswith('VmHWM:'): print(int(line.split()[1]) * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    return int(out.split()[0])


@pytest.fixture(scope="module")
def feeds_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("rss") / "feeds.npz"
    np.savez(path, image=np.random.default_rng(0).random((2, 1, 32, 32), np.float32))
    return str(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_each_engine_is_measured_without_the_other(feeds_path):
    ort_alone = _import_peak("onnxruntime")
    both = _import_peak("onnxruntime", "pyflame_rt")
    assert both > ort_alone + 8 * 2**20  # importing pyflame_rt (and onnx) costs real memory

    theirs = measure_engine_rss("onnxruntime", demo_model_path(), feeds_path,
                                level="ORT_ENABLE_ALL", threads=1)
    assert theirs.ok, theirs
    assert ort_alone * 0.9 <= theirs["peak_rss_bytes"]
    # Had the worker imported pyflame_rt, ONNX Runtime's peak would include its import.
    assert theirs["peak_rss_bytes"] < both
    assert theirs["import_rss_bytes"] <= theirs["peak_rss_bytes"]

    ours = measure_engine_rss("pyflame-rt", demo_model_path(), feeds_path, level="all",
                              threads=1)
    assert ours.ok, ours
    assert ours["peak_rss_bytes"] >= _import_peak("pyflame_rt") * 0.9
    assert ours["runs"] == 3 and ours["build_ms"] > 0


def test_worker_failure_is_reported_not_raised(feeds_path, tmp_path):
    report = measure_engine_rss("onnxruntime", str(tmp_path / "missing.onnx"), feeds_path,
                                level="ORT_ENABLE_ALL")
    assert not report.ok
    assert "missing.onnx" in report["error"]
    with pytest.raises(ValueError, match="unknown engine"):
        measure_engine_rss("tensorrt", demo_model_path(), feeds_path, level="all")


def test_peak_rss_grows_with_an_allocation():
    # In a fresh process, so the test's own earlier peak cannot hide the allocation.
    code = ("import numpy as np\nfrom pyflame_rt.tools.rss import peak_rss_bytes\n"
            "before = peak_rss_bytes()\nblock = np.ones(100 * 2**20 // 8)\n"
            "print(before, peak_rss_bytes())\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    before, after = map(int, out.split())
    assert after - before >= 90 * 2**20
