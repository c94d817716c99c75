"""Fuzzing the loaders with mutated .onnx and .pfm files (issue: hostile model files).

The cases run in ``fuzz_worker.py`` subprocesses (two per format, one per CI core), so a
crash, a hang or an unbounded allocation fails this test with the worker's report instead of
taking pytest down. What a case checks is described in the worker's docstring.

Environment knobs (see SECURITY.md for long local runs):

* ``PYFLAME_FUZZ_CASES`` -- cases per format (default 2000, the CI minimum);
* ``PYFLAME_FUZZ_SEED`` -- base hypothesis seed (default fixed, so CI is reproducible);
* ``PYFLAME_FUZZ_WORKERS`` -- parallel workers per format (default 2).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from fuzz_seeds import onnx_seeds, pack_pfm, pfm_seeds, prepare_external_folder, unpack_pfm

import pyflame_rt as ort
from pyflame_rt.io.onnx import load_onnx
from pyflame_rt.io.pfm import loads_pfm

WORKER = Path(__file__).with_name("fuzz_worker.py")
CASES = int(os.environ.get("PYFLAME_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("PYFLAME_FUZZ_SEED", "20261125"))
WORKERS = int(os.environ.get("PYFLAME_FUZZ_WORKERS", "2"))
# The whole worker, warm-up included; generous because CI machines are shared.
WORKER_TIMEOUT = 120 + CASES * 0.3


# The worker bounds its memory with RLIMIT_AS and reads its size from /proc.
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the fuzz worker needs RLIMIT_AS and /proc (Linux)")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1",
               # Few malloc arenas: each costs 64 MiB of address space under RLIMIT_AS.
               MALLOC_ARENA_MAX="2")
    env.pop("COVERAGE_PROCESS_START", None)
    return env


def _start(fmt: str, cases: int, seed: int, artifacts: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, str(WORKER), fmt, "--cases", str(cases), "--seed", str(seed),
           "--artifacts", str(artifacts), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), cwd=WORKER.parent)


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return -999, out + f"\n[the worker did not finish within {timeout:.0f} s]"
    return proc.returncode, out


def _result(out: str) -> dict | None:
    for line in out.splitlines():
        if line.startswith("FUZZ-RESULT "):
            return json.loads(line[len("FUZZ-RESULT "):])
    return None


# -- the seeds themselves ---------------------------------------------------------------------
def test_every_seed_is_a_valid_model_that_matches_onnxruntime(tmp_path) -> None:
    """A fuzzer whose seeds do not load and run would only ever test the parser's front door."""
    folder = prepare_external_folder(str(tmp_path))
    for seed in onnx_seeds():
        sess = ort.InferenceSession(load_onnx(seed.data, base_dir=folder))
        got = sess.run(None, seed.feeds)
        if seed.external:
            reference = next(s for s in onnx_seeds() if s.name == "mlp")
            want = onnxruntime.InferenceSession(
                reference.data, providers=["CPUExecutionProvider"]).run(None, seed.feeds)
        else:
            want = onnxruntime.InferenceSession(
                seed.data, providers=["CPUExecutionProvider"]).run(None, seed.feeds)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype, seed.name
            if g.dtype == object:
                assert g.tolist() == w.tolist(), seed.name
            else:
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=seed.name)
    for seed in pfm_seeds():
        repacked = pack_pfm(*unpack_pfm(seed.data))
        for data in (seed.data, repacked):
            assert ort.InferenceSession(loads_pfm(data)).run(None, seed.feeds), seed.name


# -- the fuzzers ------------------------------------------------------------------------------
@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "pfm"])
def test_fuzz_mutated_models(fmt: str, tmp_path, capsys) -> None:
    per_worker = math.ceil(CASES / WORKERS)
    procs = [_start(fmt, per_worker, SEED + 1000 * i, tmp_path) for i in range(WORKERS)]
    results, failures = [], []
    for i, proc in enumerate(procs):
        rc, out = _finish(proc, WORKER_TIMEOUT)
        result = _result(out)
        if rc != 0 or result is None:
            failures.append(f"--- worker {i} (seed {SEED + 1000 * i}) exit status {rc}; "
                            f"replay the file named in FUZZ-FAILURE, or the case in "
                            f"{tmp_path}/current-*.bin if it hung or crashed:\n{out[-6000:]}")
        else:
            results.append(result)
    assert not failures, "\n".join(failures)
    total = {key: sum(r[key] for r in results)
             for key in ("cases", "refused", "loaded", "built", "ran")}
    slowest = max(r["max_case_seconds"] for r in results)
    assert total["cases"] >= CASES
    # Mutations must reach past the parser, or the later stages go untested.
    assert total["loaded"] >= total["cases"] // 10, total
    assert total["built"] >= total["cases"] // 20, total
    assert total["ran"] >= total["cases"] // 20, total
    with capsys.disabled():
        print(f"\nfuzz {fmt}: {total['cases']} cases, 0 failures ({total['refused']} refused "
              f"at load, {total['loaded']} loaded, {total['built']} built, {total['ran']} ran; "
              f"slowest case {slowest:.2f} s)")


@linux_only
def test_fuzz_harness_reports_each_kind_of_failure(tmp_path) -> None:
    """The worker must fail loudly on a stray exception, a hidden allocation failure and a hang
    (each injected into every case), or a green fuzz run would prove nothing. (The injection
    replaces the loader, so one format exercises the whole harness.)"""
    expected = {"exception": "KeyError", "memory": "ran out of memory",
                "hang": "Timeout"}
    procs = {kind: _start("onnx", 3, SEED, tmp_path / kind, "--inject", kind, "--timeout", "4",
                          "--skip-warmup")
             for kind in expected}
    for kind, proc in procs.items():
        rc, out = _finish(proc, 180)
        assert rc not in (0, -999), f"{kind}: the worker did not report the failure:\n{out}"
        assert expected[kind] in out, f"{kind}: unexpected report:\n{out[-3000:]}"
        assert _result(out) is None
