"""The graph optimizer: levels, passes and ``optimize``.

The pass manager, pattern matcher and fusion rules are built under issue #4; until they land,
``optimize`` runs the passes registered here (none yet at any level) and reports that.
"""

from __future__ import annotations

from .levels import OptLevel
from .optimize import OptimizationReport, optimize

__all__ = ["OptLevel", "OptimizationReport", "optimize"]
