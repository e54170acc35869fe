"""Hooks for tests and benchmarks (bench/run_bench.py); not API, never imported by the
package itself. They reach the raw SWIG module the way Engine does, minus the Python
layer, so a benchmark can tell the binding's cost from the Python layer's."""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import _sako
from ._engine import _REC, MAX_K, Engine


def raw_recommend(engine: Engine, user_id: int, k: int) -> Callable[[], int]:
    """A call of the bare SWIG ``recommend`` into a preallocated ``sako_rec`` array:
    sako_recommend() plus argument parsing, the closed-handle check and the GIL
    release, without Engine's conversions or result objects."""
    h, out = engine._h, np.empty(min(max(k, 0), MAX_K), _REC)
    return lambda: _sako.recommend(h, user_id, k, 0, None, None, 0, 0, out)


def empty_call(engine: Engine) -> Callable[[], int]:
    """The same path doing no work in C: a query for k = 0."""
    return raw_recommend(engine, 1, 0)
