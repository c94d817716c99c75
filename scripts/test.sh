#!/usr/bin/env bash
# The README's test command: install the package with its dev extras, run every test with
# line coverage (fails under 85%). tests/test_packaging.py builds the wheel and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[dev,torch-test]"
python -m pytest -q -p no:cacheprovider --cov=pyflame_rt --cov-report=term --cov-fail-under=85 "$@"
