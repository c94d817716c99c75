"""The machinery behind the ``pyflame-rt`` command, usable from Python too.

Each module does one job and returns a result object with ``format()`` (the text the command
prints) and ``to_dict()`` (its ``--json`` form), so the command line stays thin:

=====================  ==========================================================
module                 what it does
=====================  ==========================================================
``common``             load a model (``.onnx``/``.pfm``), build feeds, progress bars
``convert``            PyTorch sources for ``pyflame-rt convert``
``flops``              estimate the FLOPs of every node
``inspect_model``      ``pyflame-rt inspect``: interface, opsets, ops, parameters
``dot``                Graphviz export of a graph
``bench``              ``pyflame-rt bench``: latency statistics, ONNX Runtime side by side
``rss``                peak RSS of one engine, measured alone in a fresh process
``profile``            ``pyflame-rt profile``: Chrome trace and the top nodes by time
``compare``            ``pyflame-rt compare``: per-tensor errors, first divergent node
``warmup``             ``pyflame-rt warmup``: compile the kernels, time a model's tactics
``gen_docs``           regenerate ``docs/API_Reference.md`` and ``docs/operators.md``
=====================  ==========================================================
"""

from __future__ import annotations

__all__: list[str] = []
