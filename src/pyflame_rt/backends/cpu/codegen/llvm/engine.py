"""Compile LLVM IR for the host CPU once, and keep the object code on disk.

Kernels generated as LLVM IR (see :mod:`.conv`) are optimized at ``-O3`` for the host CPU
(its name and feature flags, as LLVM detects them) and emitted as object code, which is
stored under ``<cache dir>/llvm/`` (:func:`...threads.cache_dir`, i.e.
``$PYFLAME_RT_CACHE_DIR`` or ``~/.cache/pyflame_rt``) by a digest of the IR text, the CPU and
the llvmlite version: a later process loads it in milliseconds instead of compiling again.
The object code is linked into an in-process MCJIT engine that lives as long as the process.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CompiledModule", "compile_generated", "compile_ir", "host_cpu", "vector_width"]

_log = logging.getLogger("pyflame_rt")
_lock = threading.Lock()
_modules: dict[str, CompiledModule] = {}
_announced = False


@functools.cache
def _llvm() -> Any:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


@functools.cache
def host_cpu() -> tuple[str, str]:
    """(CPU name, feature string) of the host as LLVM sees them."""
    llvm = _llvm()
    name = llvm.get_host_cpu_name()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # some platforms cannot report features
        features = ""
    return name, features


def _has(feature: str) -> bool:
    return f"+{feature}" in host_cpu()[1].split(",")


@functools.cache
def vector_width() -> int:
    """Floats per vector register for the generated kernels: 16 with AVX-512F, 8 with
    AVX2+FMA, 0 when the host has neither (the generated kernels are then not used)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return 0
    if _has("avx512f") and _has("fma"):
        return 16
    if _has("avx2") and _has("fma"):
        return 8
    return 0


def _new_target_machine() -> Any:
    llvm = _llvm()
    name, features = host_cpu()
    # Sapphire/Emerald Rapids tune for 256-bit vectors by default, which would split the
    # <16 x float> kernels into halves.
    if _has("avx512f"):
        features = ",".join(f for f in features.split(",") if "prefer-256" not in f)
        features += ",-prefer-256-bit"
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=name, features=features, opt=3, reloc="default",
                                        codemodel="jitdefault", jit=True)


@functools.cache
def _target_machine() -> Any:
    """The target machine used to emit code (engines get their own: they take ownership)."""
    return _new_target_machine()


class CompiledModule:
    """Object code loaded into an execution engine; :meth:`address` of its functions."""

    def __init__(self, engine: Any, name: str) -> None:
        self._engine = engine
        self.name = name

    def address(self, function: str) -> int:
        addr = self._engine.get_function_address(function)
        if not addr:
            raise LookupError(f"no function {function!r} in generated module {self.name!r}")
        return int(addr)


def _cache_path(name: str, digest: str) -> Path:
    from ... import threads

    return threads.cache_dir() / "llvm" / f"{name}-{digest}.o"


def _compile(text: str) -> bytes:
    llvm = _llvm()
    tm = _target_machine()
    mod = llvm.parse_assembly(text)
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_object(mod)


def _load(name: str, obj: bytes) -> CompiledModule:
    llvm = _llvm()
    tm = _new_target_machine()  # owned (and freed) by the engine
    backing = llvm.parse_assembly("")
    backing.triple = tm.triple
    engine = llvm.create_mcjit_compiler(backing, tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return CompiledModule(engine, name)


@functools.cache
def _generator_digest() -> str:
    """A digest of this package's sources: generated IR is a function of them and of the
    generator's arguments, so a changed generator never reuses stale object code."""
    digest = hashlib.sha1()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def compile_generated(name: str, make_ir: Callable[[], str]) -> CompiledModule:
    """The module that ``make_ir()`` generates, compiled for the host. ``name`` must say
    everything the IR depends on besides this package's sources (the generator's
    arguments): on a warm cache the IR is not even generated (that takes ~0.5 s in Python
    for a convolution module)."""
    cpu, features = host_cpu()
    return _compile_keyed(name, f"{_generator_digest()}|{cpu}|{features}", make_ir)


def compile_ir(name: str, text: str) -> CompiledModule:
    """The module of LLVM IR ``text`` compiled for the host (cached in memory and on disk)."""
    cpu, features = host_cpu()
    return _compile_keyed(name, f"{text}|{cpu}|{features}", lambda: text)


def _compile_keyed(name: str, identity: str, make_ir: Callable[[], str]) -> CompiledModule:
    import llvmlite

    digest = hashlib.sha1(f"{identity}|{llvmlite.__version__}".encode()).hexdigest()[:16]
    key = f"{name}-{digest}"
    mod = _modules.get(key)
    if mod is not None:
        return mod
    with _lock:
        mod = _modules.get(key)
        if mod is not None:
            return mod
        path = _cache_path(name, digest)
        obj = None
        try:
            obj = path.read_bytes()
        except OSError:
            pass
        if obj is None:
            global _announced
            if not _announced:
                _announced = True
                _log.warning("pyflame_rt: generating CPU kernels with LLVM (first use only, "
                             "about a second each; cached in %s)", path.parent)
            t0 = time.perf_counter()
            obj = _compile(make_ir())
            _log.info("pyflame_rt: compiled generated kernels %s in %.2f s", name,
                      time.perf_counter() - t0)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".obj-")
                with os.fdopen(fd, "wb") as f:
                    f.write(obj)
                os.replace(tmp, path)
            except OSError as exc:  # a read-only cache only costs a compile per process
                _log.info("pyflame_rt: cannot cache generated kernels in %s: %s", path, exc)
        mod = _modules[key] = _load(name, obj)
        return mod
