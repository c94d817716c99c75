"""Conformance cases we know fail, each with the reason (regex on the case name -> reason).

Reviewed rule: an entry stays only while the case really fails, and the reason must say
why in words a user would accept. ``test_conformance.py`` prints entries that pass again.
"""

from __future__ import annotations

EXCLUSIONS: dict[str, str] = {}
