"""The pythonic engine over the raw SWIG module ``sako._sako``."""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import (Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import numpy as np

from . import _sako
from ._errors import InvalidArgument, Misuse

ID_MAX: int = int(_sako.SAKO_ID_MAX)
MAX_K: int = int(_sako.SAKO_MAX_K)
MAX_BATCH: int = int(_sako.SAKO_MAX_BATCH)
MAX_EXCLUDE: int = int(_sako.SAKO_MAX_EXCLUDE)
MAX_NAME: int = int(_sako.SAKO_MAX_NAME)

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class EventType(enum.IntEnum):
    """Kinds of feedback (``sako_event_type``)."""

    IMPRESSION = _sako.SAKO_EVENT_IMPRESSION
    CLICK = _sako.SAKO_EVENT_CLICK
    CART = _sako.SAKO_EVENT_CART
    PURCHASE = _sako.SAKO_EVENT_PURCHASE

    def __str__(self) -> str:
        return self.name.lower()


#: event type names accepted wherever a type is expected
EVENT_TYPE_NAMES: Dict[str, int] = {t.name.lower(): int(t) for t in EventType}

#: ``sako_source`` codes -> names used in results
SOURCE_NAMES: Dict[int, str] = {int(_sako.SAKO_SOURCE_THOMPSON): "thompson"}

_DURABILITY = {"full": _sako.SAKO_DURABLE_FULL, "normal": _sako.SAKO_DURABLE_NORMAL,
               "off": _sako.SAKO_DURABLE_OFF}
_UNKNOWN_ITEMS = {"reject": _sako.SAKO_UNKNOWN_REJECT, "create": _sako.SAKO_UNKNOWN_CREATE}
_PRIOR = {"category": _sako.SAKO_PRIOR_CATEGORY, "flat": _sako.SAKO_PRIOR_FLAT}
_ENUM_OPTIONS = {"durability": _DURABILITY, "unknown_items": _UNKNOWN_ITEMS, "prior": _PRIOR}


def default_options() -> Dict[str, Any]:
    """The option defaults of the linked C library (``SAKO_OPTIONS_INIT``) as a dict."""
    return dict(_sako.default_options())


class Recommendation:
    """One recommended item.

    Attributes
    ----------
    item_id : int
    score : float
        The sampled reward rate in [0, 1]; results are sorted by it, descending.
    source : str
        Which part of the model produced it (``"thompson"``).
    """

    __slots__ = ("item_id", "score", "source")

    def __init__(self, item_id: int, score: float, source: str) -> None:
        self.item_id = item_id
        self.score = score
        self.source = source

    def __repr__(self) -> str:
        return f"Recommendation(item_id={self.item_id}, score={self.score:.4f}, source={self.source!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Recommendation):
            return NotImplemented
        return (self.item_id, self.score, self.source) == (other.item_id, other.score, other.source)

    def __hash__(self) -> int:
        return hash((self.item_id, self.score, self.source))

    def as_dict(self) -> Dict[str, Any]:
        """``{"item_id": ..., "score": ..., "source": ...}``."""
        return {"item_id": self.item_id, "score": self.score, "source": self.source}


@dataclass(frozen=True)
class ItemInfo:
    """An item's evidence and posterior (``sako_item_info``). Times are unix ms."""

    id: int
    category_id: int
    active: bool
    added_at: int
    last_event_at: int
    impressions: float
    clicks: float
    carts: float
    purchases: float
    prior_mean: float
    alpha: float
    beta: float

    @property
    def posterior_mean(self) -> float:
        """alpha / (alpha + beta)."""
        s = self.alpha + self.beta
        return self.alpha / s if s > 0 else 0.0


@dataclass(frozen=True)
class Stats:
    """Engine-wide figures (``sako_stats``)."""

    n_items: int
    n_active_items: int
    n_categories: int
    n_users: int
    n_events: int
    events_since_refresh: int
    model_version: int
    global_mean: float


class Event(NamedTuple):
    """One feedback event; ``time`` is unix ms (0 = now), ``rec_id`` 0 = none."""

    user_id: int
    item_id: int
    type: Union[int, str]
    time: int = 0
    rec_id: int = 0


_sako.set_result_class(Recommendation, dict(SOURCE_NAMES))

ArrayLike = Union[np.ndarray, Sequence[Any]]
EventLike = Union[Event, Tuple[Any, ...], Mapping[str, Any]]


# ----------------------------------------------------------------- conversions

def _int_arg(x: Any, name: str) -> int:
    """A Python int for a C int64 argument; out-of-range values become InvalidArgument
    (never an OverflowError from the wrapper)."""
    if type(x) is int and _I64_MIN <= x <= _I64_MAX:  # the fast path
        return x
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        if isinstance(x, (float, np.floating)) and float(x).is_integer():
            x = int(x)
        else:
            raise InvalidArgument(f"{name} must be an integer, got {type(x).__name__} {x!r}")
    x = int(x)
    if not _I64_MIN <= x <= _I64_MAX:
        raise InvalidArgument(f"{name} {x} is out of range [1, {ID_MAX}]")
    return x


def _k_arg(k: Any) -> int:
    if type(k) is int and 0 <= k <= MAX_K:  # the fast path
        return k
    k = _int_arg(k, "k")
    # C checks k; keep it inside a C int so its message, not an OverflowError, reports it.
    return min(max(k, _INT_MIN), _INT_MAX)


def _as_int64(x: Any, name: str) -> np.ndarray:
    """A 1-D C-contiguous int64 array from any integer sequence or array.

    Floats are accepted only when every value is integral; bools, strings and objects
    that are not integers are refused (TypeError / InvalidArgument).
    """
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if a.ndim != 1:
        if a.ndim == 0 or a.size == 0 and a.ndim > 1:
            a = a.reshape(-1)
        else:
            raise InvalidArgument(f"{name} must be 1-D, got shape {a.shape}")
    kind = a.dtype.kind
    if kind == "i" or kind == "u":
        if kind == "u" and a.dtype.itemsize >= 8 and a.size and int(a.max()) > _I64_MAX:
            raise InvalidArgument(f"{name} holds values beyond int64")
        return np.ascontiguousarray(a, dtype=np.int64)
    if kind == "f":
        if a.size and not (np.all(np.isfinite(a)) and np.all(a == np.trunc(a))):
            raise InvalidArgument(f"{name} must hold integers; got non-integral or non-finite floats")
        if a.size and (a.min() < _I64_MIN or a.max() >= 2.0**63):
            raise InvalidArgument(f"{name} holds values beyond int64")
        return np.ascontiguousarray(a, dtype=np.int64)
    if kind == "M":  # datetime64 -> unix ms
        return np.ascontiguousarray(a.astype("datetime64[ms]").astype(np.int64))
    if kind == "O" and a.size == 0:
        return np.empty(0, dtype=np.int64)
    if kind == "O":
        try:
            return np.ascontiguousarray(np.array([_int_arg(v, name) for v in a], dtype=np.int64))
        except TypeError as e:  # pragma: no cover - _int_arg raises InvalidArgument
            raise InvalidArgument(f"{name}: {e}") from None
    raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")


def _as_types(x: Any) -> np.ndarray:
    """Event types as int32: integers 0..3 or names ('impression', 'click', 'cart',
    'purchase'). Range is checked by the C library."""
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if a.ndim != 1:
        raise InvalidArgument(f"types must be 1-D, got shape {a.shape}")
    if a.dtype.kind in "USO":
        if a.size == 0:
            return np.empty(0, dtype=np.int32)
        uniq, inv = np.unique(a.astype(str) if a.dtype.kind == "S" else a, return_inverse=True)
        codes = np.empty(len(uniq), dtype=np.int32)
        for i, u in enumerate(uniq):
            codes[i] = _type_code(u.decode() if isinstance(u, bytes) else u, i)
        return codes[inv.reshape(-1)]
    if a.dtype.kind == "b":
        raise TypeError("types must be integers or names, got bool")
    t = _as_int64(a, "types")
    if t.size and (t.min() < _INT_MIN or t.max() > _INT_MAX):
        raise InvalidArgument("types holds values beyond a C int")
    return np.ascontiguousarray(t, dtype=np.int32)


def _type_code(t: Any, where: Any = None) -> int:
    if isinstance(t, str):
        code = EVENT_TYPE_NAMES.get(t.lower())
        if code is None:
            at = "" if where is None else f" (entry {where})"
            raise InvalidArgument(f"unknown event type {t!r}{at}; expected one of "
                                  f"{', '.join(EVENT_TYPE_NAMES)}")
        return code
    if isinstance(t, (bool, np.bool_)):
        raise InvalidArgument(f"event type must be an int or a name, got {t!r}")
    if isinstance(t, (int, np.integer)):
        return int(t) if _INT_MIN <= int(t) <= _INT_MAX else -1
    raise InvalidArgument(f"event type must be an int or a name, got {type(t).__name__}")


def _as_flags(x: Any, name: str) -> np.ndarray:
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if a.ndim != 1:
        raise InvalidArgument(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind == "b":
        return a.astype(np.int32)
    return np.ascontiguousarray(_as_int64(a, name) != 0, dtype=np.int32)


def _opt_ids(x: Any, name: str) -> Optional[np.ndarray]:
    if x is None or (not x if type(x) in (tuple, list) else False):
        return None
    return _as_int64(x, name)


# ---------------------------------------------------------------------- engine

class Engine:
    """A libsako engine: a catalog, its bandit state and event log in one SQLite file.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Database file, created if missing. ``None`` or ``":memory:"`` gives a private
        in-memory database (nothing persists).
    **options
        Fields of ``sako_options``: ``reward_click``, ``reward_cart``,
        ``reward_purchase``, ``penalty_impression``, ``prior`` (``"category"`` /
        ``"flat"``), ``prior_strength``, ``category_shrinkage``,
        ``prior_refresh_events``, ``seed``, ``durability`` (``"full"``, ``"normal"``,
        ``"off"``), ``unknown_items`` (``"reject"`` / ``"create"``),
        ``busy_timeout_ms``. Unset fields keep the C defaults (:func:`default_options`).

    Raises
    ------
    Corrupt
        The file is not a libsako database or is damaged.
    VersionError
        The file was written by a newer schema.
    IOFailure, Busy, InvalidArgument
        As documented for ``sako_init``.

    Notes
    -----
    Thread-safe: any method may be called from several threads; the GIL is released
    inside the C library so recommendations run in parallel. ``close()`` waits for
    calls in flight and is idempotent; methods of a closed engine raise
    :class:`Misuse` (a :class:`SakoError`) with the message ``"engine is closed"``.

    Examples
    --------
    >>> with sako.open(":memory:", seed=1) as eng:
    ...     eng.upsert_categories([(1, 0, "Dairy")])
    ...     eng.upsert_items([(10, 1), (11, 1)])
    ...     eng.update([(7, 10, "click", 0)])
    ...     recs = eng.recommend(7, k=2)
    """

    def __init__(self, path: Union[str, "os.PathLike[str]", None] = None, **options: Any) -> None:
        self._h: Any = None
        opts: Dict[str, Any] = {}
        for key, value in options.items():
            table = _ENUM_OPTIONS.get(key)
            if table is not None and isinstance(value, str):
                if value.lower() not in table:
                    raise InvalidArgument(f"option {key}={value!r}; expected one of {', '.join(table)}")
                value = table[value.lower()]
            opts[key] = value
        p = None if path is None else os.fspath(path)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        self.path: Optional[str] = p
        self.options: Dict[str, Any] = {**default_options(), **opts}
        try:
            self._h = _sako.open(p, opts)
        except TypeError as e:  # an unknown option name or a wrong value type
            raise InvalidArgument(str(e)) from None

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the engine. Idempotent; waits for calls in flight on other threads."""
        h = self._h
        if h is not None:
            _sako.close(h)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._h is None or bool(_sako.is_closed(self._h))

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        h = getattr(self, "_h", None)
        if h is not None:
            self._h = None
            try:
                _sako.free(h)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<sako.Engine {self.path or ':memory:'!s} {state}>"

    # ------------------------------------------------------------- recommend
    def recommend(self, user_id: int, k: int = 20, category: Optional[int] = None,
                  exclude: ArrayLike = (), recent: ArrayLike = ()) -> List[Recommendation]:
        """Recommend up to ``k`` items for a user.

        One joint Thompson draw over the active items of the catalog (or of
        ``category`` and its sub-categories), minus ``exclude``; the top ``k`` by
        sampled score, descending.

        Parameters
        ----------
        user_id : int
            In [1, 2**53-1], or 0 for an anonymous user.
        k : int, default 20
            0..``MAX_K`` (1000). Fewer eligible items give fewer results.
        category : int, optional
            Restrict to this category's subtree.
        exclude, recent : sequence of int or int64 array
            Items never to return; items the user just viewed (newest first).

        Returns
        -------
        list of Recommendation

        Raises
        ------
        InvalidArgument
            ``k < 0`` or a bad id.
        RangeError
            ``k > MAX_K`` or too long a list.
        NotFound
            Unknown category.
        """
        # the extension builds the Recommendation objects itself (see set_result_class)
        return _sako.recommend(self._h, _int_arg(user_id, "user_id"), _k_arg(k),
                               0 if category is None else _int_arg(category, "category"),
                               _opt_ids(exclude, "exclude"), _opt_ids(recent, "recent"))

    def recommend_arrays(self, user_id: int, k: int = 20, category: Optional[int] = None,
                         exclude: ArrayLike = (), recent: ArrayLike = ()
                         ) -> Tuple[np.ndarray, np.ndarray]:
        """Like :meth:`recommend`, as arrays for bulk work.

        Returns
        -------
        ids : ndarray of int64, shape (n,)
        scores : ndarray of float64, shape (n,)
            ``n <= k``; sorted by score, descending.
        """
        k = _k_arg(k)
        cap = min(max(k, 0), MAX_K)
        ids = np.empty(cap, dtype=np.int64)
        scores = np.empty(cap, dtype=np.float64)
        n = _sako.recommend_into(self._h, _int_arg(user_id, "user_id"), k,
                                 0 if category is None else _int_arg(category, "category"),
                                 _opt_ids(exclude, "exclude"), _opt_ids(recent, "recent"),
                                 ids, scores, None)
        if n != cap:
            return ids[:n].copy(), scores[:n].copy()
        return ids, scores

    # ---------------------------------------------------------------- events
    def update(self, events: Iterable[EventLike]) -> int:
        """Record a batch of events atomically and apply them to the model at once.

        Parameters
        ----------
        events : iterable of tuples ``(user_id, item_id, type[, time[, rec_id]])``,
            :class:`Event`, or dicts with those keys. ``type`` is an int or a name
            (``"impression"``, ``"click"``, ``"cart"``, ``"purchase"``); ``time`` is
            unix ms (0 or absent = now); ``rec_id`` is the recommendation answered.

        Returns
        -------
        int
            Number of events recorded.

        Raises
        ------
        InvalidArgument, NotFound, RangeError
            Nothing is recorded; the message names the bad entry's index.
        """
        users: List[int] = []
        items: List[int] = []
        types: List[int] = []
        times: List[int] = []
        recs: List[int] = []
        for idx, e in enumerate(events):
            if isinstance(e, Mapping):
                try:
                    u, it, t = e["user_id"], e["item_id"], e["type"]
                except KeyError as ke:
                    raise InvalidArgument(f"event {idx}: missing key {ke.args[0]!r}") from None
                tm, rid = e.get("time", 0) or 0, e.get("rec_id", 0) or 0
            else:
                n = len(e)
                if not 3 <= n <= 5:
                    raise InvalidArgument(f"event {idx}: expected (user, item, type[, time[, rec_id]]), "
                                          f"got {n} fields")
                u, it, t = e[0], e[1], e[2]
                tm = e[3] if n > 3 else 0
                rid = e[4] if n > 4 else 0
            users.append(_int_arg(u, f"event {idx}: user_id"))
            items.append(_int_arg(it, f"event {idx}: item_id"))
            types.append(_type_code(t, idx))
            times.append(_int_arg(tm or 0, f"event {idx}: time"))
            recs.append(_int_arg(rid or 0, f"event {idx}: rec_id"))
        return self.update_arrays(np.array(users, dtype=np.int64), np.array(items, dtype=np.int64),
                                  np.array(types, dtype=np.int32), np.array(times, dtype=np.int64),
                                  np.array(recs, dtype=np.int64))

    def update_arrays(self, users: ArrayLike, items: ArrayLike, types: ArrayLike,
                      times: Optional[ArrayLike] = None,
                      rec_ids: Optional[ArrayLike] = None) -> int:
        """Record events given as parallel arrays, without a Python loop.

        The ``sako_event`` structs are built in C from the buffers, with the GIL
        released. At most ``MAX_BATCH`` (1,000,000) events per call; the batch is
        atomic.

        Parameters
        ----------
        users, items : int64 arrays (any integer dtype or sequence is converted)
        types : int array (0..3) or array of names
        times : int64 array of unix ms, or datetime64 array; None = now
        rec_ids : int64 array, optional

        Returns
        -------
        int
            Number of events recorded.
        """
        u = _as_int64(users, "users")
        it = _as_int64(items, "items")
        t = _as_types(types)
        tm = None if times is None else _as_int64(times, "times")
        r = None if rec_ids is None else _as_int64(rec_ids, "rec_ids")
        _sako.update(self._h, u, it, t, tm, r)
        return int(u.shape[0])

    # --------------------------------------------------------------- catalog
    def upsert_categories(self, categories: Iterable[Union[Tuple[Any, ...], Mapping[str, Any]]]) -> int:
        """Insert or update categories atomically.

        Parameters
        ----------
        categories : iterable of ``(id, parent_id[, name])`` or dicts with keys
            ``id``, ``parent_id`` (0/None = a department), ``name`` (None keeps the
            stored name). A parent must exist or come earlier in the batch.

        Returns
        -------
        int
            Number of categories written.
        """
        ids: List[int] = []
        parents: List[int] = []
        names: List[Optional[str]] = []
        for idx, c in enumerate(categories):
            if isinstance(c, Mapping):
                if "id" not in c:
                    raise InvalidArgument(f"category {idx}: missing key 'id'")
                cid, parent, name = c["id"], c.get("parent_id"), c.get("name")
            else:
                if not 1 <= len(c) <= 3:
                    raise InvalidArgument(f"category {idx}: expected (id, parent_id[, name])")
                cid = c[0]
                parent = c[1] if len(c) > 1 else 0
                name = c[2] if len(c) > 2 else None
            ids.append(_int_arg(cid, f"category {idx}: id"))
            parents.append(_int_arg(parent or 0, f"category {idx}: parent_id"))
            names.append(name)
        return self.upsert_categories_arrays(ids, parents, names)

    def upsert_categories_arrays(self, ids: ArrayLike, parent_ids: Optional[ArrayLike] = None,
                                 names: Optional[Sequence[Optional[str]]] = None) -> int:
        """Insert or update categories from parallel arrays (see :meth:`upsert_categories`)."""
        i = _as_int64(ids, "ids")
        p = None if parent_ids is None else _as_int64(parent_ids, "parent_ids")
        nm = None
        if names is not None:
            nm = tuple(None if s is None else str(s) if isinstance(s, np.str_) else s for s in names)
            for idx, s in enumerate(nm):
                if isinstance(s, str) and not s.isascii():
                    try:
                        s.encode("utf-8")
                    except UnicodeEncodeError:
                        raise InvalidArgument(f"names[{idx}] is not valid UTF-8 (lone surrogate)") from None
        _sako.categories_upsert(self._h, i, p, nm)
        return int(i.shape[0])

    def upsert_items(self, items: Iterable[Union[Tuple[Any, ...], Mapping[str, Any]]]) -> int:
        """Insert or update items atomically.

        Parameters
        ----------
        items : iterable of ``(id, category_id[, active[, added_at]])`` or dicts with
            those keys. ``category_id`` 0/None = catalog root, ``active`` defaults to
            True, ``added_at`` is unix ms (0 = now). Existing items keep their evidence.

        Returns
        -------
        int
            Number of items written.
        """
        ids: List[int] = []
        cats: List[int] = []
        act: List[int] = []
        added: List[int] = []
        for idx, c in enumerate(items):
            if isinstance(c, Mapping):
                if "id" not in c:
                    raise InvalidArgument(f"item {idx}: missing key 'id'")
                iid, cat, a, t = c["id"], c.get("category_id"), c.get("active", True), c.get("added_at")
            else:
                if not 1 <= len(c) <= 4:
                    raise InvalidArgument(f"item {idx}: expected (id, category_id[, active[, added_at]])")
                iid = c[0]
                cat = c[1] if len(c) > 1 else 0
                a = c[2] if len(c) > 2 else True
                t = c[3] if len(c) > 3 else 0
            ids.append(_int_arg(iid, f"item {idx}: id"))
            cats.append(_int_arg(cat or 0, f"item {idx}: category_id"))
            act.append(1 if a else 0)
            added.append(_int_arg(t or 0, f"item {idx}: added_at"))
        return self.upsert_items_arrays(ids, cats, act, added)

    def upsert_items_arrays(self, ids: ArrayLike, category_ids: Optional[ArrayLike] = None,
                            active: Optional[ArrayLike] = None,
                            added_at: Optional[ArrayLike] = None) -> int:
        """Insert or update items from parallel arrays (see :meth:`upsert_items`)."""
        i = _as_int64(ids, "ids")
        c = None if category_ids is None else _as_int64(category_ids, "category_ids")
        a = None if active is None else _as_flags(active, "active")
        t = None if added_at is None else _as_int64(added_at, "added_at")
        _sako.items_upsert(self._h, i, c, a, t)
        return int(i.shape[0])

    # --------------------------------------------------------- model & info
    def retrain(self) -> "Stats":
        """Rebuild the model from the event log and swap it in atomically.

        Returns
        -------
        Stats
            The engine's figures after the retrain (``model_version`` increased).
        """
        _sako.retrain(self._h)
        return self.stats()

    def item(self, item_id: int) -> ItemInfo:
        """Evidence and posterior of one item.

        Raises
        ------
        NotFound
            No such item.
        """
        return ItemInfo(**_sako.item_get(self._h, _int_arg(item_id, "item_id")))

    def stats(self) -> Stats:
        """Engine-wide figures."""
        return Stats(**_sako.stats_get(self._h))

    def category_prior(self, category_id: int) -> float:
        """Mean of the prior a new item of this category starts from (0 = catalog root).

        Raises
        ------
        NotFound
            No such category.
        """
        return float(_sako.category_prior(self._h, _int_arg(category_id, "category_id")))


def open(path: Union[str, "os.PathLike[str]", None] = None, **options: Any) -> Engine:  # noqa: A001
    """Open (or create) an engine; same arguments as :class:`Engine`.

    Use it as a context manager: ``with sako.open("shop.db") as eng: ...``.
    """
    return Engine(path, **options)


__all__ = ["Engine", "open", "Recommendation", "ItemInfo", "Stats", "Event", "EventType",
           "default_options", "ID_MAX", "MAX_K", "MAX_BATCH", "MAX_EXCLUDE", "MAX_NAME", "Misuse"]
