"""The official ONNX backend suite, run in CI with per-set counts.

Each set (node, simple, pytorch-converted, pytorch-operator, light) runs as one test that
prints ``<set>: N passed, M failed of T`` and fails when a case fails that
``exclusions.py`` does not list with a reason. Exclusions that now pass are printed so the
list can only shrink. ``test_backend_test_api`` proves ``onnx.backend.test.BackendTest``
drives ``pyflame_rt.backend`` directly.
"""

from __future__ import annotations

import re
import unittest

import onnx.backend.test
import pytest
from exclusions import EXCLUSIONS
from harness import run_suite

import pyflame_rt.backend

SETS = ["node", "simple", "pytorch-converted", "pytorch-operator", "light"]


def _reason(name: str) -> str | None:
    for pattern, reason in EXCLUSIONS.items():
        if re.fullmatch(pattern, name):
            return reason
    return None


@pytest.mark.slow
@pytest.mark.parametrize("kind", SETS)
def test_suite(kind, capsys):
    results = run_suite(kind)
    passed = [r for r in results if r.passed]
    failed = [r for r in results if not r.passed]
    unexplained = [r for r in failed if _reason(r.name) is None]
    stale = [r.name for r in passed if _reason(r.name) is not None]
    with capsys.disabled():
        print(f"\nconformance {kind}: {len(passed)} passed, {len(failed)} failed "
              f"of {len(results)} ({len(failed) - len(unexplained)} failures excluded with "
              "reasons in tests/conformance/exclusions.py)")
        if stale:
            print(f"conformance {kind}: excluded but now passing (remove from exclusions.py): "
                  f"{stale}")
    assert results, f"no {kind} cases found"
    assert not unexplained, "failures not in exclusions.py:\n" + "\n".join(
        f"{r.name}: {r.message}" for r in unexplained)


def test_backend_test_api():
    """A few cases through onnx.backend.test.BackendTest itself (unittest machinery)."""
    suite_builder = onnx.backend.test.BackendTest(pyflame_rt.backend, __name__)
    suite_builder.include(r"^test_(relu|add_bcast|conv_with_strides_padding|if_seq)_cpu$")
    cases = suite_builder.test_cases
    suite = unittest.TestSuite()
    for case in cases.values():
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    result = unittest.TestResult()
    suite.run(result)
    ran = result.testsRun - len(result.skipped)
    assert ran >= 4, f"expected the included cases to run, ran {ran}"
    assert not result.failures and not result.errors, result.failures + result.errors
