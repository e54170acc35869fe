"""Matrix factorisation: implicit ALS with conjugate-gradient row solves, and fold-in.

The functions of libsako's "Matrix factorisation" section (``sako_mf_fit``,
``sako_mf_gram``, ``sako_mf_fold_in``) over numpy arrays. No engine is involved: these
train and fold in on matrices the caller builds.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _sako
from ._engine import DTYPES
from ._errors import InvalidArgument

_I32_MAX = 2**31 - 1
_U32_MAX = 2**32 - 1


def _uint(value: Any, name: str, top: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{name} must be an integer, not {type(value).__name__}")
    v = int(value)
    if not 0 <= v <= top:
        raise InvalidArgument(f"{name} {v} is not in [0, {top}]")
    return v


def _options(factors: Any, iterations: Any, regularization: Any, alpha: Any, cg_steps: Any,
             threads: Any, seed: Any) -> np.ndarray:
    opt = np.zeros(1, DTYPES["sako_mf_options"])
    _sako.mf_options_init(opt)
    opt["factors"] = _uint(factors, "factors", _U32_MAX)
    opt["iterations"] = _uint(iterations, "iterations", _U32_MAX)
    opt["regularization"] = float(regularization)
    opt["alpha"] = float(alpha)
    opt["cg_steps"] = _uint(cg_steps, "cg_steps", _U32_MAX)
    opt["threads"] = _uint(threads, "threads", _U32_MAX)
    opt["seed"] = _uint(seed, "seed", 2**64 - 1)
    return opt


def _index_array(a: Any, name: str) -> np.ndarray:
    """int32, C-contiguous; a wider integer array is narrowed only if its values fit."""
    arr = np.asarray(a)
    if arr.size and arr.dtype.kind not in "iu":
        raise InvalidArgument(f"{name} must hold integers, not {arr.dtype}")
    if arr.dtype != np.int32 and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < -(2**31) or hi > _I32_MAX:
            bad = lo if lo < -(2**31) else hi
            raise InvalidArgument(f"{name}: {bad} does not fit in 32 bits")
    return np.ascontiguousarray(arr.reshape(-1), dtype=np.int32)


def _csr_arrays(matrix: Any, n_cols: Optional[int]) -> Tuple[np.ndarray, np.ndarray,
                                                              np.ndarray, int]:
    if isinstance(matrix, tuple):
        if len(matrix) != 3 or n_cols is None:
            raise InvalidArgument("a matrix given as arrays is (data, indices, indptr) with "
                                  "n_cols=")
        data, indices, indptr = matrix
        cols = _uint(n_cols, "n_cols", _I32_MAX)
    elif hasattr(matrix, "tocsr"):
        m = matrix.tocsr()
        if not getattr(m, "has_canonical_format", True):
            m = m.copy()
            m.sum_duplicates()  # sorts the columns of each row too
        if m.nnz and not np.all(m.data != 0):
            m = m.copy()
            m.eliminate_zeros()  # an explicit 0 is no interaction
        data, indices, indptr = m.data, m.indices, m.indptr
        cols = int(m.shape[1])
        if n_cols is not None and int(n_cols) != cols:
            raise InvalidArgument(f"n_cols {n_cols} differs from the matrix's {cols} columns")
        nnz = int(indptr[-1]) if len(indptr) else 0
        data, indices = data[:nnz], indices[:nnz]
    else:
        raise InvalidArgument("matrix must be a scipy.sparse matrix or (data, indices, indptr)")
    indptr = np.ascontiguousarray(np.asarray(indptr).reshape(-1), dtype=np.int64)
    indices = _index_array(indices, "indices")
    data = np.ascontiguousarray(np.asarray(data).reshape(-1), dtype=np.float32)
    return indptr, indices, data, cols


def mf_fit(matrix: Any, factors: int = 64, iterations: int = 15, regularization: float = 0.01,
           alpha: float = 1.0, cg_steps: int = 3, threads: int = 0, seed: int = 0, *,
           n_cols: Optional[int] = None,
           seconds: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Factorise a user x item matrix by implicit ALS (``sako_mf_fit``).

    Hu, Koren, Volinsky (2008) with conjugate-gradient row solves warm-started from the
    previous iteration: confidence ``c = 1 + alpha * r`` for stored values ``r``,
    preference 1 there, confidence 1 and preference 0 elsewhere; loss
    ``sum c (p - x.y)^2 + regularization (|X|^2 + |Y|^2)``. The GIL is released during
    training. The same matrix, options and library give bit-identical factors whatever
    ``threads``.

    Parameters
    ----------
    matrix : scipy.sparse matrix or tuple
        Users in rows, items in columns, values > 0 and finite. Any scipy sparse format
        (converted to CSR; duplicates summed and explicit zeros dropped on a copy), or
        ``(data, indices, indptr)`` of a CSR matrix with ``n_cols``: columns ascending
        and unique within each row. int32 indices and float32 data are read in place.
    factors, iterations, regularization, alpha, cg_steps, threads, seed
        The fields of ``sako_mf_options`` (``threads=0``: every online core; ``seed=0``:
        a fixed default).
    n_cols : int, optional
        The number of columns, required with the tuple form.
    seconds : numpy.ndarray, optional
        A float64 array of ``iterations`` entries, filled with each iteration's wall time
        (the first also holds the setup: the transposed copy and the initial factors).
        The factors are the same with or without it.

    Returns
    -------
    (user_factors, item_factors) : tuple of numpy.ndarray
        float32 arrays of shape (n_rows, factors) and (n_cols, factors).

    Raises
    ------
    InvalidArgument
        Bad options, or a bad matrix (the message names the row and the entry).
    RangeError
        More than 2^31-1 rows or columns.
    """
    opt = _options(factors, iterations, regularization, alpha, cg_steps, threads, seed)
    indptr, indices, data, cols = _csr_arrays(matrix, n_cols)
    k = int(opt["factors"][0])
    n_rows = max(len(indptr) - 1, 0)
    user = np.empty((n_rows, k), dtype=np.float32)
    item = np.empty((cols, k), dtype=np.float32)
    if seconds is not None:
        if not (isinstance(seconds, np.ndarray) and seconds.dtype == np.float64
                and seconds.flags.c_contiguous and seconds.ndim == 1):
            raise InvalidArgument("seconds must be a 1-D C-contiguous float64 numpy array")
    _sako.mf_fit(indptr, indices, data, cols, opt, user.reshape(-1), item.reshape(-1), seconds)
    return user, item


def _factors_2d(item_factors: Any) -> np.ndarray:
    y = np.ascontiguousarray(item_factors, dtype=np.float32)
    if y.ndim != 2 or y.shape[1] < 1:
        raise InvalidArgument(f"item_factors must be a 2-D (n_items, factors) array, not of "
                              f"shape {y.shape}")
    return y


def mf_gram(item_factors: Any) -> np.ndarray:
    """``Y^T Y`` of a factor matrix in float64 (``sako_mf_gram``): the cache of
    :func:`mf_fold_in`.

    Parameters
    ----------
    item_factors : array_like, shape (n_items, factors)

    Returns
    -------
    numpy.ndarray
        float64, shape (factors, factors), symmetric.
    """
    y = _factors_2d(item_factors)
    k = y.shape[1]
    gram = np.empty((k, k), dtype=np.float64)
    _sako.mf_gram(y.reshape(-1), _uint(k, "factors", _U32_MAX), gram.reshape(-1))
    return gram


def mf_fold_in(item_factors: Any, items: Any, values: Any, gram: Optional[Any] = None,
               exact: bool = False, x0: Optional[Any] = None, *,
               regularization: float = 0.01, alpha: float = 1.0,
               cg_steps: int = 3) -> np.ndarray:
    """Solve one user's vector against fixed item factors (``sako_mf_fold_in``).

    The solve one training half-iteration performs for that user, from the user's whole
    history: ``cg_steps`` conjugate-gradient steps from ``x0`` (zeros if None), or with
    ``exact=True`` the exact solution (Cholesky in double).

    Parameters
    ----------
    item_factors : array_like, shape (n_items, factors)
    items : array_like of int
        Row indices into ``item_factors``, each at most once.
    values : array_like of float
        The user's value for each item (> 0, finite), as in the training matrix.
    gram : array_like, shape (factors, factors), optional
        :func:`mf_gram` of ``item_factors``; computed here if None (cache it).
    exact : bool
        Solve exactly instead of by CG.
    x0 : array_like, shape (factors,), optional
        Warm start of CG (the user's previous vector).
    regularization, alpha, cg_steps
        As in :func:`mf_fit` (use the training's values).

    Returns
    -------
    numpy.ndarray
        float32, shape (factors,).
    """
    y = _factors_2d(item_factors)
    k = y.shape[1]
    opt = _options(k, 1, regularization, alpha, cg_steps, 1, 0)
    it = _index_array(items, "items")
    val = np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=np.float32)
    g = None if gram is None else np.ascontiguousarray(gram, dtype=np.float64).reshape(-1)
    x = np.zeros(k, dtype=np.float32) if x0 is None else \
        np.array(x0, dtype=np.float32).reshape(-1)
    _sako.mf_fold_in(y.reshape(-1), g, it, val, opt, 1 if exact else 0, x)
    return x
