#!/usr/bin/env bash
# The README's test command: install the package with its dev extras, run every test with
# line coverage (fails under 85%). tests/test_packaging.py builds the wheel and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[dev,torch-test]"
# The PyTorch-importer tests run in their own process: torch.jit.script keeps process-wide
# caches that earlier torch use in the same process (the optimizer's exporter tests) can
# leave in a state where scripting nn.Conv2d fails inside torch itself.
python -m pytest -q -p no:cacheprovider --cov=pyflame_rt --cov-report= \
    --ignore=tests/torch_io "$@"
python -m pytest -q -p no:cacheprovider --cov=pyflame_rt --cov-append --cov-report= \
    tests/torch_io
# The gate, as its own command (two decimals, see pyproject): pytest-cov 7.1 printed "FAIL
# Required test coverage" for --cov-fail-under at 84.6% but exited 0, so it gated nothing.
python -m coverage report --fail-under=85
