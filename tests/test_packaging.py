"""``python -m build`` makes a wheel that installs and runs the demo (from the wheel)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import venv

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def _env_without_coverage() -> dict[str, str]:
    # Coverage follows subprocesses (pyproject: patch = ["subprocess"]); the wheel's copy of
    # the package is not the source tree being measured, so keep coverage out of it.
    return {k: v for k, v in os.environ.items() if not k.startswith("COV")}


def test_wheel_builds_installs_and_runs_the_demo(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(dist), ROOT], check=True, capture_output=True, text=True)
    wheels = glob.glob(str(dist / "pyflame_rt-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    # Reuse this interpreter's dependencies (numpy, onnx, ...); install only our wheel.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = str(env_dir / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps",
                    "--no-index", "-q", wheels[0]], check=True, capture_output=True, text=True)
    env = _env_without_coverage()
    where = subprocess.run([py, "-c", "import pyflame_rt; print(pyflame_rt.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path,
                           env=env).stdout
    assert str(env_dir) in where, f"imported {where.strip()} instead of the wheel's copy"
    demo = subprocess.run([str(env_dir / "bin" / "pyflame-rt"), "demo", "--runs", "3",
                           "--images", "32"], capture_output=True, text=True, cwd=tmp_path,
                          env=env)
    assert demo.returncode == 0, demo.stderr
    assert "accuracy" in demo.stdout and "latency" in demo.stdout
    assert "shapes_cnn.onnx" in demo.stdout
