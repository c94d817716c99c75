"""The official ONNX backend suite, run in CI with per-set counts.

Each set (node, simple, pytorch-converted, pytorch-operator, light) runs as one test that
prints ``<set>: N passed, M failed of T`` and fails when a case fails that
``exclusions.py`` does not list with a reason. Exclusions that now pass are printed so the
list can only shrink. ``test_backend_test_api`` proves ``onnx.backend.test.BackendTest``
drives ``pyflame_rt.backend`` directly.

The sets run at the default level (ALL). The node set also runs at BASIC and EXTENDED, on its
non-trivial subset: the cases whose graph the optimizer changes at ALL (about a fifth of
them; each lower level runs a subset of ALL's passes, so a case ALL leaves untouched is
untouched there too and would only repeat the ALL run). That costs about 25 s instead of the
~100 s of two more full runs. The subset is recorded during the ALL run (or, when that test
did not run in this process, found by optimizing every case at EXTENDED).
"""

from __future__ import annotations

import re
import unittest

import onnx.backend.test
import pytest
from exclusions import EXCLUSIONS
from harness import iter_cases, run_case

import pyflame_rt.backend
from pyflame_rt.io.onnx import from_onnx
from pyflame_rt.opt import optimize

SETS = ["node", "simple", "pytorch-converted", "pytorch-operator", "light"]

#: Node cases whose graph the ALL level changed, recorded by test_suite("node").
_NODE_CHANGED: list[tuple] = []


class _Recorder:
    """``pyflame_rt.backend`` at a given level, noting whether the optimizer changed the
    graph of the last model it prepared (a model that fails to prepare counts as changed)."""

    def __init__(self, level: str | None = None) -> None:
        self.level = level
        self.changed = True

    def prepare(self, model, device="CPU"):
        self.changed = True
        kwargs = {} if self.level is None else {"graph_optimization_level": self.level}
        rep = pyflame_rt.backend.prepare(model, device, **kwargs)
        report = rep.session.optimization_report
        self.changed = bool(report.rules_fired) or report.nodes_after != report.nodes_before
        return rep


def _reason(name: str) -> str | None:
    for pattern, reason in EXCLUSIONS.items():
        if re.fullmatch(pattern, name):
            return reason
    return None


@pytest.mark.slow
@pytest.mark.parametrize("kind", SETS)
def test_suite(kind, capsys):
    recorder = _Recorder()
    results = []
    changed = []
    for case in iter_cases(kind):
        results.append(run_case(*case, runtime=recorder))
        if recorder.changed:
            changed.append(case)
    if kind == "node":
        _NODE_CHANGED[:] = changed
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


def _changed_node_cases() -> list[tuple]:
    if _NODE_CHANGED:
        return _NODE_CHANGED
    found = []
    for case in iter_cases("node"):
        try:
            _, report = optimize(from_onnx(case[1]), "extended")
            if report.rules_fired or report.nodes_after != report.nodes_before:
                found.append(case)
        except Exception:  # noqa: BLE001 - a case that fails to import or optimize is run too
            found.append(case)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("level", ["basic", "extended"])
def test_node_suite_at_lower_levels(level, capsys):
    cases = _changed_node_cases()
    results = [run_case(*case, runtime=_Recorder(level)) for case in cases]
    failed = [r for r in results if not r.passed]
    unexplained = [r for r in failed if _reason(r.name) is None]
    with capsys.disabled():
        print(f"\nconformance node at {level.upper()} (the {len(cases)} cases the optimizer "
              f"changes): {len(results) - len(failed)} passed, {len(failed)} failed")
    assert len(cases) > 100, "the optimizer should change a few hundred node cases"
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
