"""The pythonic engine over the raw SWIG module ``sako._sako``.

The C structs cross the boundary as numpy structured arrays whose layout comes from one
table, :data:`FIELDS`; everything the user sees (options, :class:`ItemInfo`,
:class:`Stats`, :class:`UserInfo`, :class:`UserItem`, results) is built from it.
"""
from __future__ import annotations

import ctypes
import dataclasses
import enum
import operator
import os
import warnings
from itertools import repeat
from typing import (Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import numpy as np

from . import _sako
from ._errors import InvalidArgument, Misuse, NotFound, RangeError

ID_MAX: int = int(_sako.SAKO_ID_MAX)
TIME_MAX: int = int(_sako.SAKO_TIME_MAX)  # unix ms of 9999-12-31
MAX_K: int = int(_sako.SAKO_MAX_K)
MAX_BATCH: int = int(_sako.SAKO_MAX_BATCH)
MAX_EXCLUDE: int = int(_sako.SAKO_MAX_EXCLUDE)
MAX_NAME: int = int(_sako.SAKO_MAX_NAME)

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

# ------------------------------------------------------------- the one field table

#: The structs of sako.h that cross the binding, each field in declaration order as
#: (name, numpy type[, Python type]). numpy's aligned layout is the C layout; the buffer
#: typemap of sako.i checks each struct's size on every call, and tests/test_fields.py
#: checks the names against include/sako.h, so a new C field is one edit here (or a
#: failing test that names it).
FIELDS: Dict[str, Tuple[Tuple[Any, ...], ...]] = {
    "sako_options": (
        ("version", "u4"), ("reward_click", "f8"), ("reward_cart", "f8"),
        ("reward_purchase", "f8"), ("penalty_impression", "f8"), ("prior", "i4"),
        ("prior_strength", "f8"), ("category_shrinkage", "f8"), ("prior_refresh_events", "u8"),
        ("seed", "u8"), ("durability", "i4"), ("unknown_items", "i4"),
        ("busy_timeout_ms", "i4"), ("reconfigure", "i4"),
        # version 2 (0.2): the personal engine
        ("organic_demand", "i4"), ("demand_min_purchases", "u8"), ("personal", "i4"),
        ("personal_min_baskets", "u4"), ("half_life_days", "f8"), ("personal_strength", "f8"),
        ("personal_temperature", "f8"), ("due_exponent", "f8"), ("affinity_strength", "f8"),
        ("lift_strength", "f8"), ("basket_gap_ms", "i8"),
        # version 3 (0.3): decay; issue 12: create a database in an existing zero-length file
        ("decay_half_life_days", "f8"), ("create_empty", "i4"),
        # version 4 (issue 10): matrix factorisation
        ("mf_factors", "u4"), ("mf_iterations", "u4"), ("mf_regularization", "f8"),
        ("mf_alpha", "f8"), ("mf_cg_steps", "u4"), ("mf_threads", "u4"), ("mf_seed", "u8"),
        ("mf_mode", "i4"), ("mf_min_users", "u4"), ("mf_min_user_items", "u4"),
        ("mf_weight", "f8"), ("mf_candidates", "u4"),
        # version 5 (issue 10, serving speed): the factor index's probe (run time)
        ("mf_probe", "u4")),
    "sako_category": (("id", "i8"), ("parent_id", "i8"), ("name", np.uintp)),  # a const char*
    "sako_item": (("id", "i8"), ("category_id", "i8"), ("active", "i4"), ("added_at", "i8")),
    "sako_event": (("user_id", "i8"), ("item_id", "i8"), ("type", "i4"), ("time", "i8"),
                   ("rec_id", "i8")),
    "sako_rec": (("item_id", "i8"), ("score", "f8"), ("source", "i4")),
    "sako_item_info": (
        ("id", "i8"), ("category_id", "i8"), ("active", "i4", bool), ("added_at", "i8"),
        ("last_event_at", "i8"), ("impressions", "f8"), ("clicks", "f8"), ("carts", "f8"),
        ("purchases", "f8"), ("prior_mean", "f8"), ("alpha", "f8"), ("beta", "f8")),
    "sako_stats": (
        ("n_items", "u8"), ("n_active_items", "u8"), ("n_categories", "u8"), ("n_users", "u8"),
        ("n_events", "u8"), ("events_since_refresh", "u8"), ("model_version", "i8"),
        ("global_mean", "f8")),
    "sako_user_info": (
        ("id", "i8"), ("n_events", "u8"), ("last_event_at", "i8"), ("n_baskets", "u8"),
        ("n_products", "u8"), ("weight", "f8"), ("last_basket_at", "i8"),
        ("personal", "i4", bool)),
    "sako_user_item": (
        ("item_id", "i8"), ("n_baskets", "u8"), ("weight", "f8"), ("last_bought_at", "i8"),
        ("mean_gap_days", "f8")),
    # 0.3: the retrain policy
    "sako_policy": (
        ("version", "u4"), ("every_events", "u8"), ("every_seconds", "u8"),
        ("drift_fraction", "f8"), ("drift_window", "u8"), ("drift_min_impressions", "u8"),
        # version 2 (0.4): the versions' gate and how many are kept
        ("gate_margin", "f8"), ("gate_holdout_events", "u8"), ("gate_holdout_fraction", "f8"),
        ("gate_min_baskets", "u8"), ("keep_versions", "u8")),
    "sako_retrain_status": (
        ("due", "i4", bool), ("reasons", "u4"), ("reason", np.uintp),  # a static const char*
        ("events_since", "u8"), ("seconds_since", "f8"), ("retrained_at", "i8"),
        ("baseline_conversion", "f8"), ("baseline_impressions", "u8"),
        ("recent_conversion", "f8"), ("recent_impressions", "u8")),
    # 0.3, issue 12: what sako_verify checked
    "sako_verify_report": (("n_batches", "u8"), ("n_checksummed", "u8"), ("n_events", "u8"),
                           ("compact_batch", "i8"), ("n_checkpoint_chunks", "u8")),
    # 0.4, issue 9 item 5: log compaction
    "sako_compact_options": (("version", "u4"), ("keep_days", "f8"), ("keep_events", "u8")),
    "sako_compact_report": (
        ("compact_batch", "i8"), ("first_batch", "i8"), ("batches_removed", "u8"),
        ("events_removed", "u8"), ("checkpoint_bytes", "u8"), ("elapsed_ms", "f8")),
    "sako_log_stats": (
        ("n_batches", "u8"), ("n_events", "u8"), ("first_batch", "i8"), ("last_batch", "i8"),
        ("compact_batch", "i8"), ("compacted_events", "u8"), ("checkpoint_bytes", "u8"),
        ("file_bytes", "u8"), ("free_bytes", "u8")),
    # issue 10: the factors the engine serves
    "sako_factors_info": (
        ("version", "u4"), ("factors", "u4"), ("iterations", "u4"), ("cg_steps", "u4"),
        ("regularization", "f8"), ("alpha", "f8"), ("seed", "u8"), ("trained_at", "i8"),
        ("first_batch", "i8"), ("last_batch", "i8"), ("n_events", "u8"), ("n_users", "u8"),
        ("n_items", "u8"), ("n_folded", "u8"), ("index_lists", "u8"), ("bytes", "u8"),
        ("train_seconds", "f8"), ("serving", "i4", bool)),
}
# 0.4, issue 9: one model version (its options are a nested sako_options; its verdict a
# NUL-terminated char array)
FIELDS["sako_version_info"] = (
    ("version", "i8"), ("created_at", "i8"), ("status", "i4"), ("pinned", "i4", bool),
    ("reasons", "u4"), ("verdict", "S%d" % _sako.SAKO_VERDICT_MAX), ("first_batch", "i8"),
    ("last_batch", "i8"), ("n_events", "u8"), ("champion", "i8"), ("scored", "i4", bool),
    ("score", "f8"), ("champion_score", "f8"), ("holdout_events", "u8"),
    ("holdout_baskets", "u8"), ("root_mean", "f8"), ("epoch_at", "i8"),
    ("options", np.dtype([f[:2] for f in FIELDS["sako_options"]], align=True)))

# 0.5, issue 10: matrix factorisation's options (sako_csr crosses as sakopy_mf_fit()'s
# arrays)
FIELDS["sako_mf_options"] = (
    ("version", "u4"), ("factors", "u4"), ("iterations", "u4"), ("regularization", "f8"),
    ("alpha", "f8"), ("cg_steps", "u4"), ("threads", "u4"), ("seed", "u8"))

#: numpy dtype of each struct (aligned like the C compiler aligns it)
DTYPES: Dict[str, np.dtype] = {s: np.dtype([f[:2] for f in fs], align=True)
                               for s, fs in FIELDS.items()}
_REC, _EVENT, _ITEM, _CATEGORY = (DTYPES[s] for s in ("sako_rec", "sako_event", "sako_item",
                                                       "sako_category"))


def _pytype(field: Tuple[Any, ...]) -> type:
    return field[2] if len(field) > 2 else float if np.dtype(field[1]).kind == "f" else int


def _record(name: str, struct: str, doc: str, **namespace: Any) -> type:
    """A frozen dataclass with the fields of a C struct, built from a filled buffer."""
    fields = FIELDS[struct]
    cls = dataclasses.make_dataclass(name, [(f[0], _pytype(f)) for f in fields], frozen=True,
                                     namespace={"__doc__": doc, **namespace})
    cls.__module__ = __name__
    convert = tuple(_pytype(f) for f in fields)
    cls._from_buffer = classmethod(  # type: ignore[attr-defined]
        lambda c, buf: c(*map(lambda t, v: t(v), convert, buf[0].tolist())))
    return cls


def _posterior_mean(self: Any) -> float:
    """alpha / (alpha + beta)."""
    s = self.alpha + self.beta
    return self.alpha / s if s > 0 else 0.0


ItemInfo = _record("ItemInfo", "sako_item_info",
                   "An item's evidence and posterior (``sako_item_info``). Times are unix ms.",
                   posterior_mean=property(_posterior_mean))
Stats = _record("Stats", "sako_stats", "Engine-wide figures (``sako_stats``).")
FactorsInfo = _record(
    "FactorsInfo", "sako_factors_info",
    "The matrix factors the engine serves (``sako_factors_info``): the last training's "
    "parameters, the range of the event log it saw (batches, events), when it ran (unix ms), "
    "vectors, users folded in since, memory, and whether they are served. ``factors`` is 0 "
    "before any training with ``mf_factors`` > 0.")
UserInfo = _record("UserInfo", "sako_user_info",
                   "A user's personal state (``sako_user_info``). Times are unix ms; "
                   "``personal`` is True when the personal engine serves the user.")
UserItem = _record("UserItem", "sako_user_item",
                   "One product of a user's purchase history (``sako_user_item``). Times "
                   "are unix ms.")
CompactReport = _record("CompactReport", "sako_compact_report",
                        "What :meth:`Engine.compact` did (``sako_compact_report``): the "
                        "compaction point (``compact_batch``, 0: never compacted), the first "
                        "batch left, batches and events deleted, checkpoint bytes written, "
                        "elapsed milliseconds.")
LogStats = _record("LogStats", "sako_log_stats",
                   "The size of the event log and of the file (``sako_log_stats``): batches "
                   "and events in the log, its first and last batch, the compaction point and "
                   "the events folded into it, the checkpoint's bytes, the file's bytes and "
                   "of them free pages (reused by later writes).")
#: events :meth:`Engine.compact` always leaves in the log
COMPACT_MIN_EVENTS: int = int(_sako.SAKO_COMPACT_MIN_EVENTS)

# ------------------------------------------------------------------ retrain policy

class RetrainReason(enum.IntFlag):
    """What made a retrain due (``sako_retrain_reason`` bits)."""

    EVENTS = _sako.SAKO_RETRAIN_EVENTS  #: every_events events since the last retrain
    TIME = _sako.SAKO_RETRAIN_TIME      #: every_seconds seconds since it
    DRIFT = _sako.SAKO_RETRAIN_DRIFT    #: the conversion of served recommendations dropped
    MANUAL = _sako.SAKO_RETRAIN_MANUAL  #: asked for by hand (0.4)


def _policy_init() -> np.ndarray:
    buf = np.zeros(1, DTYPES["sako_policy"])
    _sako.policy_init(buf)
    return buf


_POLICY_DEFAULTS = dict(zip(DTYPES["sako_policy"].names, _policy_init()[0].tolist()))
#: largest every_events, every_seconds and drift_window (2^53 - 1)
POLICY_MAX: int = int(_sako.SAKO_POLICY_MAX)


@dataclasses.dataclass(frozen=True)
class Policy:
    """The retrain policy (``sako_policy``): set in advance, stored in the database.

    Any combination of triggers may be on; all are off by default.

    Attributes
    ----------
    every_events : int
        Retrain after this many events since the last retrain; 0 = off.
    every_seconds : int
        Retrain after this many wall-clock seconds since the last retrain; 0 = off.
    drift_fraction : float
        In [0, 1): retrain when the recent conversion of served recommendations falls
        below this fraction of its level after the last retrain; 0 = off (0.8 is the
        fraction the default sample is sized for).
    drift_window : int
        Rec-attributed impressions in the baseline and in the recent window (25,000).
    drift_min_impressions : int
        Least sample of each before drift can fire, 1..drift_window (12,500).
    gate_margin : float
        A retrain's candidate is rejected when its NDCG@20 on the held-out newest
        baskets is below the active version's minus this, in [0, 1]; 1 = finiteness
        only (0.01).
    gate_holdout_events : int
        Most events held out (50,000).
    gate_holdout_fraction : float
        Share of the log held out, at most ``gate_holdout_events``, in [0, 0.5]; 0 = no
        holdout (0.05).
    gate_min_baskets : int
        Fewer scored baskets than this: finiteness alone decides (200).
    keep_versions : int
        Versions kept, newest first; the active and pinned ones are never deleted,
        1..10,000 (10).
    """

    every_events: int = int(_POLICY_DEFAULTS["every_events"])
    every_seconds: int = int(_POLICY_DEFAULTS["every_seconds"])
    drift_fraction: float = float(_POLICY_DEFAULTS["drift_fraction"])
    drift_window: int = int(_POLICY_DEFAULTS["drift_window"])
    drift_min_impressions: int = int(_POLICY_DEFAULTS["drift_min_impressions"])
    gate_margin: float = float(_POLICY_DEFAULTS["gate_margin"])
    gate_holdout_events: int = int(_POLICY_DEFAULTS["gate_holdout_events"])
    gate_holdout_fraction: float = float(_POLICY_DEFAULTS["gate_holdout_fraction"])
    gate_min_baskets: int = int(_POLICY_DEFAULTS["gate_min_baskets"])
    keep_versions: int = int(_POLICY_DEFAULTS["keep_versions"])

    #: the fraction the default drift sample is sized for
    DRIFT_FRACTION = float(_sako.SAKO_POLICY_DRIFT_FRACTION)

    def as_dict(self) -> Dict[str, Any]:
        """The fields as a dict (JSON-ready)."""
        return dataclasses.asdict(self)


def _policy_buffer(p: "Policy") -> np.ndarray:
    buf = _policy_init()
    for f in dataclasses.fields(Policy):
        v = getattr(p, f.name)
        if f.type in (float, "float"):
            if isinstance(v, (str, bytes, bool)) or not isinstance(v, (int, float, np.number)):
                raise InvalidArgument(f"policy: {f.name} must be a number, got {v!r}")
            buf[f.name] = float(v)
        else:
            try:
                if isinstance(v, bool):
                    raise TypeError("bool")
                v = operator.index(v)
            except TypeError:
                raise InvalidArgument(f"policy: {f.name} must be an integer, got {v!r}") from None
            if not 0 <= v < 2**64:
                raise InvalidArgument(f"policy: {f.name} {v} is not in [0, 2^64)")
            buf[f.name] = v
    return buf


@dataclasses.dataclass(frozen=True)
class RetrainStatus:
    """Whether a retrain is due and why (``sako_retrain_status``).

    ``reasons`` holds :class:`RetrainReason` bits, ``reason`` the same as text
    (``"events"``, ``"time, drift"``, ``"not due"``...). Counters run since the last
    retrain (0.4: whatever its gate decided) or activation (``retrained_at``, unix ms;
    before the first, since the file was created or upgraded). Conversions are reward-weighted successes per
    rec-attributed impression; ``*_impressions`` are their samples.
    """

    due: bool
    reasons: RetrainReason
    reason: str
    events_since: int
    seconds_since: float
    retrained_at: int
    baseline_conversion: float
    baseline_impressions: int
    recent_conversion: float
    recent_impressions: int

    @property
    def reason_names(self) -> Tuple[str, ...]:
        """The reasons as lower-case names, e.g. ``("events", "drift")``."""
        return tuple(r.name.lower() for r in RetrainReason if r in self.reasons)

    def as_dict(self) -> Dict[str, Any]:
        """The fields as a dict (JSON-ready: ``reasons`` as a list of names)."""
        d = dataclasses.asdict(self)
        d["reasons"] = list(self.reason_names)
        return d

    @classmethod
    def _from_buffer(cls, buf: np.ndarray) -> "RetrainStatus":
        r = buf[0]
        text = ctypes.string_at(int(r["reason"])).decode() if int(r["reason"]) else ""
        return cls(bool(r["due"]), RetrainReason(int(r["reasons"])), text, int(r["events_since"]),
                   float(r["seconds_since"]), int(r["retrained_at"]),
                   float(r["baseline_conversion"]), int(r["baseline_impressions"]),
                   float(r["recent_conversion"]), int(r["recent_impressions"]))


#: ``sako_model_status`` codes -> names
VERSION_STATUS: Dict[int, str] = {int(_sako.SAKO_MODEL_ACTIVE): "active",
                                  int(_sako.SAKO_MODEL_INACTIVE): "inactive",
                                  int(_sako.SAKO_MODEL_REJECTED): "rejected"}
#: the options fields a version was fitted with (the model's, not the run-time ones)
_RUNTIME_OPTIONS = {"version", "seed", "durability", "unknown_items", "busy_timeout_ms",
                    "reconfigure", "create_empty", "mf_threads"}


@dataclasses.dataclass(frozen=True)
class VersionInfo:
    """One model version (``sako_version_info``): the population model a retrain fitted,
    what asked for it, the log it saw, and what its gate found. Times are unix ms.

    ``status`` is ``"active"``, ``"inactive"`` (passed, or replaced; may be activated)
    or ``"rejected"`` (failed its gate; never activated). ``score`` and
    ``champion_score`` are NDCG@20 on the held-out baskets (``scored`` says whether the
    gate compared them). ``root_mean`` is NaN when the stored model is damaged.
    ``options`` holds the model options it was fitted with.
    """

    version: int
    created_at: int
    status: str
    pinned: bool
    reasons: RetrainReason
    verdict: str
    first_batch: int
    last_batch: int
    n_events: int
    champion: int
    scored: bool
    score: float
    champion_score: float
    holdout_events: int
    holdout_baskets: int
    root_mean: float
    epoch_at: int
    options: Dict[str, Any]

    @property
    def reason_names(self) -> Tuple[str, ...]:
        """The reasons as lower-case names, e.g. ``("manual",)``."""
        return tuple(r.name.lower() for r in RetrainReason if r in self.reasons)

    def as_dict(self) -> Dict[str, Any]:
        """The fields as a dict (JSON-ready: ``reasons`` as a list of names, a NaN
        ``root_mean`` as None)."""
        d = dataclasses.asdict(self)
        d["reasons"] = list(self.reason_names)
        if d["root_mean"] != d["root_mean"]:
            d["root_mean"] = None
        return d

    @classmethod
    def _from_buffer(cls, buf: np.ndarray) -> "VersionInfo":
        r = buf[0]
        status = int(r["status"])
        opts = r["options"]
        options = {name: (float(opts[name]) if np.dtype(t).kind == "f" else int(opts[name]))
                   for name, t, *_ in FIELDS["sako_options"] if name not in _RUNTIME_OPTIONS}
        return cls(int(r["version"]), int(r["created_at"]),
                   VERSION_STATUS.get(status, f"status_{status}"), bool(r["pinned"]),
                   RetrainReason(int(r["reasons"])), bytes(r["verdict"]).decode(errors="replace"),
                   int(r["first_batch"]), int(r["last_batch"]), int(r["n_events"]),
                   int(r["champion"]), bool(r["scored"]), float(r["score"]),
                   float(r["champion_score"]), int(r["holdout_events"]),
                   int(r["holdout_baskets"]), float(r["root_mean"]), int(r["epoch_at"]), options)


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


class Mode(enum.IntEnum):
    """What a personal query returns (``sako_mode``)."""

    MIXED = _sako.SAKO_MODE_MIXED        #: repeat purchases and new products
    REPEAT = _sako.SAKO_MODE_REPEAT      #: only products the user bought before
    DISCOVER = _sako.SAKO_MODE_DISCOVER  #: only products the user never bought

    def __str__(self) -> str:
        return self.name.lower()


#: mode names accepted wherever a mode is expected
MODE_NAMES: Dict[str, int] = {m.name.lower(): int(m) for m in Mode}


class _SourceNames(Dict[int, str]):
    def __missing__(self, code: int) -> str:  # a source added to the C library later
        return f"source_{code}"


#: ``sako_source`` codes -> names used in results: the enumerator without its prefix
#: (``SAKO_SOURCE_THOMPSON`` -> ``"thompson"``, the population engine; ``"repeat"``,
#: ``"affinity"``, ``"copurchase"``, ``"demand"``, the personal engine)
SOURCE_NAMES: Dict[int, str] = _SourceNames(
    {int(v): k[len("SAKO_SOURCE_"):].lower() for k, v in vars(_sako).items()
     if k.startswith("SAKO_SOURCE_")})

_ENUM_OPTIONS = {
    "durability": {"full": _sako.SAKO_DURABLE_FULL, "normal": _sako.SAKO_DURABLE_NORMAL,
                   "off": _sako.SAKO_DURABLE_OFF},
    "unknown_items": {"reject": _sako.SAKO_UNKNOWN_REJECT, "create": _sako.SAKO_UNKNOWN_CREATE},
    "prior": {"category": _sako.SAKO_PRIOR_CATEGORY, "flat": _sako.SAKO_PRIOR_FLAT},
    "mf_mode": {"auto": _sako.SAKO_MF_AUTO, "off": _sako.SAKO_MF_OFF, "on": _sako.SAKO_MF_ON},
}


def _options_init() -> np.ndarray:
    buf = np.zeros(1, DTYPES["sako_options"])
    _sako.options_init(buf)
    return buf


_OPTION_TYPES = {f[0]: np.dtype(f[1]) for f in FIELDS["sako_options"] if f[0] != "version"}
_DEFAULTS = {k: v for k, v in zip(DTYPES["sako_options"].names, _options_init()[0].tolist())
             if k in _OPTION_TYPES}


def default_options() -> Dict[str, Any]:
    """The option defaults of the linked C library (``SAKO_OPTIONS_INIT``) as a dict."""
    return dict(_DEFAULTS)


def _option_value(key: str, value: Any) -> Any:
    """A Python value for one ``sako_options`` field, or InvalidArgument."""
    dt = _OPTION_TYPES.get(key)
    if dt is None:
        raise InvalidArgument(f"unknown option '{key}'")
    table = _ENUM_OPTIONS.get(key)
    if table is not None and isinstance(value, str):
        if value.lower() not in table:
            raise InvalidArgument(f"option {key}={value!r}; expected one of {', '.join(table)}")
        return table[value.lower()]
    try:
        if dt.kind == "f":
            if isinstance(value, (str, bytes)):
                raise TypeError(type(value).__name__)
            return float(value)
        value = operator.index(value)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"option '{key}' must be a number, got {value!r} ({e})") from None
    info = np.iinfo(dt)
    if not info.min <= value <= info.max:
        raise InvalidArgument(f"option '{key}' out of range: {value}")
    return value


class Recommendation:
    """One recommended item.

    Attributes
    ----------
    item_id : int
    score : float
        The sampled rate in [0, 1] (population engine: reward per impression; personal
        engine: purchase per basket); results are sorted by it, descending.
    source : str
        Which part of the model produced it: ``"thompson"`` (the population engine),
        or, for a user the personal engine serves, ``"repeat"`` (the user's own
        history), ``"affinity"`` (the user's category affinity), ``"copurchase"``
        (bought together with the latest basket or ``recent``), ``"demand"`` (its
        population demand, for a product the user never bought).
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


def _renamed(where: str) -> None:
    warnings.warn(f"{where}: 'rec_id' is deprecated; use 'recommendation_id' (the name the "
                  "recommendation answer carries)", DeprecationWarning, stacklevel=3)


class _EventFields(NamedTuple):
    user_id: int
    item_id: int
    type: Union[int, str]
    time: int = 0
    recommendation_id: int = 0
    order_id: int = 0


class Event(_EventFields):
    """One feedback event; ``time`` is unix ms (0 = now), ``recommendation_id`` is the
    ``recommendation_id`` of the answer it responds to (0 = none), ``order_id`` the
    order a purchase belongs to (0 = none; a user's purchases of one order form one
    basket of the personal engine).

    ``rec_id`` (keyword or attribute) is the old name of ``recommendation_id``: accepted
    in this release with a DeprecationWarning.
    """

    __slots__ = ()

    def __new__(cls, user_id: int, item_id: int, type: Union[int, str], time: int = 0,
                recommendation_id: int = 0, order_id: int = 0, **old: Any) -> "Event":
        if old:
            if set(old) != {"rec_id"}:
                raise TypeError(f"Event() got unexpected keyword arguments {sorted(old)}")
            _renamed("Event(rec_id=...)")
            recommendation_id = recommendation_id or old["rec_id"]
        return _EventFields.__new__(cls, user_id, item_id, type, time, recommendation_id,
                                    order_id)

    @property
    def rec_id(self) -> int:
        """Deprecated name of :attr:`recommendation_id`."""
        _renamed("Event.rec_id")
        return self.recommendation_id


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


def _mode_code(mode: Any) -> int:
    """A ``sako_mode`` from a name (``"mixed"``, ``"repeat"``, ``"discover"``) or an int;
    an int's range is checked by the C library, like an event type's."""
    if type(mode) is str:  # the usual case
        code = MODE_NAMES.get(mode)
        if code is None:
            code = MODE_NAMES.get(mode.lower())
        if code is None:
            raise InvalidArgument(f"unknown mode {mode!r}; expected one of "
                                  f"{', '.join(MODE_NAMES)}")
        return code
    if isinstance(mode, (int, np.integer)) and not isinstance(mode, (bool, np.bool_)):
        return int(mode) if _INT_MIN <= int(mode) <= _INT_MAX else -1
    raise InvalidArgument(f"mode must be a name ({', '.join(MODE_NAMES)}) or a sako.Mode, "
                          f"got {type(mode).__name__} {mode!r}")


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


def _c_strings(names: Sequence[Optional[str]]) -> Tuple[np.ndarray, np.ndarray]:
    """The ``const char *`` column of a struct array: NUL-terminated UTF-8 copies in one
    blob, and their addresses (0 for None). Keep the blob alive until C returns."""
    parts: List[bytes] = []
    offsets: List[int] = []
    pos = 0
    for idx, s in enumerate(names):
        if s is None:
            offsets.append(-1)
            continue
        if not isinstance(s, str):
            raise TypeError(f"names[{idx}] must be str or None, got {type(s).__name__}")
        try:
            b = s.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(f"names[{idx}] is not valid UTF-8 (lone surrogate)") from None
        if b"\0" in b:
            raise InvalidArgument(f"names[{idx}] contains a NUL character")
        offsets.append(pos)
        parts.append(b + b"\0")
        pos += len(b) + 1
    blob = np.frombuffer(b"".join(parts) or b"\0", dtype=np.uint8)
    base = blob.__array_interface__["data"][0]
    return blob, np.array([0 if o < 0 else base + o for o in offsets], dtype=np.uintp)


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
        ``busy_timeout_ms``, ``reconfigure``, and the personal engine's
        ``organic_demand``, ``demand_min_purchases``, ``personal``,
        ``personal_min_baskets``, ``half_life_days``, ``personal_strength``,
        ``personal_temperature``, ``due_exponent``, ``affinity_strength``,
        ``lift_strength``, ``basket_gap_ms``, ``decay_half_life_days`` (the
        half-life of the population evidence, product demand and bought-together
        counts in days of event time; 0 = no decay), ``create_empty`` (1: an existing
        zero-length file becomes a new database; by default it is refused with
        :class:`Corrupt`, as a database truncated to nothing), and the matrix
        factorisation's ``mf_factors`` (0 = off, the default), ``mf_iterations``,
        ``mf_regularization``, ``mf_alpha``, ``mf_cg_steps``, ``mf_threads`` (run time),
        ``mf_seed``, ``mf_mode`` (``"auto"``, ``"off"``, ``"on"``), ``mf_min_users``,
        ``mf_min_user_items``, ``mf_weight``, ``mf_candidates`` and ``mf_probe`` (run
        time; 0 = the index's default) (docs/python.md, "Matrix factorisation"). Unset fields keep the C defaults
        (:func:`default_options`). The model fields of an existing database stay as
        stored unless ``reconfigure=1``.

    Attributes
    ----------
    options : dict
        The options in force as the C library reports them (``sako_options_get``):
        the model fields as stored in the database, the others as given (``seed`` as
        actually used; ``reconfigure`` reads 0).

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
        opts = {key: _option_value(key, value) for key, value in options.items()}
        buf = _options_init()
        for key, value in opts.items():
            buf[key] = value
        p = None if path is None else os.fspath(path)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        self.path: Optional[str] = p
        self._h = _sako.open(p, buf)
        # what C holds, not what was asked: a database keeps its stored model fields
        got = _options_init()
        _sako.sako_options_get(self._h, got)
        self.options: Dict[str, Any] = {k: v for k, v in zip(got.dtype.names, got[0].tolist())
                                        if k in _OPTION_TYPES}

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
                  exclude: ArrayLike = (), recent: ArrayLike = (),
                  mode: Union[str, int] = "mixed", time: int = 0) -> List[Recommendation]:
        """Recommend up to ``k`` items for a user.

        One joint draw over the active items of the catalog (or of ``category`` and
        its sub-categories), minus ``exclude``; the top ``k`` by sampled score,
        descending. A user with purchase history gets the personal engine (see the
        ``personal`` options), anyone else the population engine's Thompson draw.

        Parameters
        ----------
        user_id : int
            In [1, 2**53-1], or 0 for an anonymous user.
        k : int, default 20
            0..``MAX_K`` (1000). Fewer eligible items give fewer results.
        category : int, optional
            Restrict to this category's subtree.
        exclude, recent : sequence of int or int64 array
            Items never to return; items the user just viewed or added, newest first
            (their bought-together partners become candidates).
        mode : {"mixed", "repeat", "discover"} or Mode, default "mixed"
            ``"repeat"``: only products the user bought before (a "buy it again"
            shelf; nothing for a user without history); ``"discover"``: only products
            the user never bought.
        time : int, default 0
            When the recommendation is for, unix ms (0 = now): the personal engine
            measures decay and due-ness to it.

        Returns
        -------
        list of Recommendation

        Raises
        ------
        InvalidArgument
            ``k < 0``, a bad id, an unknown mode or a bad time.
        RangeError
            ``k > MAX_K`` or too long a list.
        NotFound
            Unknown category.
        """
        r = self._recommend(user_id, k, category, exclude, recent, mode, time)
        src = r["source"].tolist()
        names = (repeat(SOURCE_NAMES[src[0]], len(src)) if src.count(src[0]) == len(src)  # usual
                 else map(SOURCE_NAMES.__getitem__, src)) if src else ()
        return list(map(Recommendation, r["item_id"].tolist(), r["score"].tolist(), names))

    def _recommend(self, user_id: Any, k: Any, category: Any, exclude: Any,
                   recent: Any, mode: Any, time: Any) -> np.ndarray:
        """The ``sako_rec`` results of one query, as a structured array."""
        k = _k_arg(k)
        out = np.empty(min(max(k, 0), MAX_K), _REC)
        n = _sako.recommend(self._h, _int_arg(user_id, "user_id"), k,
                            0 if category is None else _int_arg(category, "category"),
                            _opt_ids(exclude, "exclude"), _opt_ids(recent, "recent"),
                            _mode_code(mode), _int_arg(time, "time"), out)
        return out[:n]

    def recommend_arrays(self, user_id: int, k: int = 20, category: Optional[int] = None,
                         exclude: ArrayLike = (), recent: ArrayLike = (),
                         mode: Union[str, int] = "mixed", time: int = 0
                         ) -> Tuple[np.ndarray, np.ndarray]:
        """Like :meth:`recommend`, as arrays for bulk work.

        Returns
        -------
        ids : ndarray of int64, shape (n,)
        scores : ndarray of float64, shape (n,)
            ``n <= k``; sorted by score, descending.
        """
        r = self._recommend(user_id, k, category, exclude, recent, mode, time)
        return r["item_id"].copy(), r["score"].copy()

    # ---------------------------------------------------------------- events
    def update(self, events: Iterable[EventLike]) -> int:
        """Record a batch of events atomically and apply them to the model at once.

        Parameters
        ----------
        events : iterable of tuples ``(user_id, item_id, type[, time[, recommendation_id[,
            order_id]]])``, :class:`Event`, or dicts with those keys. ``type`` is an int
            or a name (``"impression"``, ``"click"``, ``"cart"``, ``"purchase"``);
            ``time`` is unix ms (0 or absent = now); ``recommendation_id`` is the
            ``recommendation_id`` of the answer this event responds to (the old key
            ``rec_id`` is deprecated); ``order_id`` the order a purchase belongs to (0 or
            absent = none), which groups a user's purchases into baskets.

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
        orders: List[int] = []
        for idx, e in enumerate(events):
            if isinstance(e, Mapping):
                try:
                    u, it, t = e["user_id"], e["item_id"], e["type"]
                except KeyError as ke:
                    raise InvalidArgument(f"event {idx}: missing key {ke.args[0]!r}") from None
                tm, rid = e.get("time", 0) or 0, e.get("recommendation_id", 0) or 0
                oid = e.get("order_id", 0) or 0
                if "rec_id" in e:
                    _renamed(f"event {idx}")
                    rid = rid or e["rec_id"] or 0
            else:
                n = len(e)
                if not 3 <= n <= 6:
                    raise InvalidArgument(f"event {idx}: expected (user, item, type[, time[, "
                                          f"recommendation_id[, order_id]]]), got {n} fields")
                u, it, t = e[0], e[1], e[2]
                tm = e[3] if n > 3 else 0
                rid = e[4] if n > 4 else 0
                oid = e[5] if n > 5 else 0
            users.append(_int_arg(u, f"event {idx}: user_id"))
            items.append(_int_arg(it, f"event {idx}: item_id"))
            types.append(_type_code(t, idx))
            times.append(_int_arg(tm or 0, f"event {idx}: time"))
            recs.append(_int_arg(rid or 0, f"event {idx}: recommendation_id"))
            orders.append(_int_arg(oid or 0, f"event {idx}: order_id"))
        return self.update_arrays(np.array(users, dtype=np.int64), np.array(items, dtype=np.int64),
                                  np.array(types, dtype=np.int32), np.array(times, dtype=np.int64),
                                  np.array(recs, dtype=np.int64),
                                  np.array(orders, dtype=np.int64) if any(orders) else None)

    def update_arrays(self, users: ArrayLike, items: ArrayLike, types: ArrayLike,
                      times: Optional[ArrayLike] = None,
                      recommendation_ids: Optional[ArrayLike] = None,
                      order_ids: Optional[ArrayLike] = None, *,
                      rec_ids: Optional[ArrayLike] = None) -> int:
        """Record events given as parallel arrays, without a Python loop.

        The ``sako_event`` array is filled by numpy and handed to C, which runs with the
        GIL released. At most ``MAX_BATCH`` (1,000,000) events per call; the batch is
        atomic.

        Parameters
        ----------
        users, items : int64 arrays (any integer dtype or sequence is converted)
        types : int array (0..3) or array of names
        times : int64 array of unix ms, or datetime64 array; None = now
        recommendation_ids : int64 array, optional
            (``rec_ids`` is its deprecated old name.)
        order_ids : int64 array, optional
            The order of each event, in [0, ``ID_MAX``] (0 = none): a user's purchases
            with one order id form one basket of the personal engine; purchases without
            one are grouped by time (option ``basket_gap_ms``). None = no order ids
            (``sako_update``).

        Returns
        -------
        int
            Number of events recorded.
        """
        if rec_ids is not None:
            _renamed("update_arrays(rec_ids=...)")
            if recommendation_ids is not None:
                raise InvalidArgument("give recommendation_ids or rec_ids, not both")
            recommendation_ids = rec_ids
        cols = {"user_id": _as_int64(users, "users"), "item_id": _as_int64(items, "items"),
                "type": _as_types(types)}
        if times is not None:
            cols["time"] = _as_int64(times, "times")
        if recommendation_ids is not None:
            cols["rec_id"] = _as_int64(recommendation_ids, "recommendation_ids")
        if order_ids is None:
            self._call(_sako.sako_update, _EVENT, "event", cols)
        else:
            orders = _as_int64(order_ids, "order_ids")
            self._call(_sako.update_orders, _EVENT, "event", cols, also={"order_id": orders})
        return len(cols["user_id"])

    def _call(self, fn: Any, dtype: np.dtype, what: str, cols: Dict[str, np.ndarray],
              keep: Any = None, also: Optional[Dict[str, np.ndarray]] = None) -> None:
        """Fill an array of C structs from parallel columns (absent fields stay 0) and
        pass it to ``fn``, then the arrays of ``also`` (parallel to the structs, not in
        them); ``keep`` holds memory the structs point into until C returns."""
        n = len(next(iter(cols.values())))
        every = {**cols, **(also or {})}
        if any(len(c) != n for c in every.values()):
            raise InvalidArgument(f"{what} arrays differ in length: " +
                                  ", ".join(f"{k} {len(c)}" for k, c in every.items()))
        buf = np.zeros(n, dtype)
        for key, col in cols.items():
            buf[key] = col
        fn(self._h, buf, *(also or {}).values())

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
        cols = {"id": _as_int64(ids, "ids")}
        if parent_ids is not None:
            cols["parent_id"] = _as_int64(parent_ids, "parent_ids")
        blob = None
        if names is not None:
            blob, cols["name"] = _c_strings(names)
        self._call(_sako.sako_categories_upsert, _CATEGORY, "category", cols, keep=blob)
        return len(cols["id"])

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
        cols = {"id": i, "active": np.ones(len(i), np.int32) if active is None
                else _as_flags(active, "active")}
        if category_ids is not None:
            cols["category_id"] = _as_int64(category_ids, "category_ids")
        if added_at is not None:
            cols["added_at"] = _as_int64(added_at, "added_at")
        self._call(_sako.sako_items_upsert, _ITEM, "item", cols)
        return len(i)

    # --------------------------------------------------------- model & info
    def retrain(self) -> "Stats":
        """Rebuild the model from the event log into a new model version, gate it, and
        swap it in atomically if it passes (``sako_retrain``; a manual retrain).

        A version the gate rejects is recorded and the active one stays: that is not an
        error; :meth:`retrain_result` tells what became of it.

        Returns
        -------
        Stats
            The engine's figures after the retrain (``model_version`` increased).
        """
        _sako.sako_retrain(self._h)
        return self.stats()

    def retrain_for(self, reasons: Union[int, "RetrainReason"]) -> "VersionInfo":
        """Retrain saying what asked for it (``sako_retrain_v2``): ``reasons`` are
        :class:`RetrainReason` bits (the policy's, or ``MANUAL``). While the active
        version is pinned, a retrain without ``MANUAL`` records its version without
        activating it. Returns the version it built (:meth:`retrain_result`): its
        ``status`` says whether the gate passed it and it was activated, ``verdict``
        why. A rejected version is not an error."""
        _sako.sako_retrain_v2(self._h, _int_arg(int(reasons), "reasons"))
        return self.retrain_result()

    def retrain_result(self) -> "VersionInfo":
        """The version this handle's last retrain built (``sako_retrain_result``).

        Raises
        ------
        NotFound
            No retrain on this handle yet (or its version was deleted since)."""
        buf = np.zeros(1, DTYPES["sako_version_info"])
        _sako.sako_retrain_result(self._h, buf)
        return VersionInfo._from_buffer(buf)

    def versions(self) -> List["VersionInfo"]:
        """The stored model versions, newest first (``sako_versions_list``)."""
        total = _sako.versions_count(self._h)
        buf = np.zeros(max(total, 1) + 8, DTYPES["sako_version_info"])
        n = _sako.versions_list(self._h, buf)
        return [VersionInfo._from_buffer(buf[i:i + 1]) for i in range(n)]

    def version(self, version: int = 0) -> "VersionInfo":
        """One model version; 0 (the default) is the active one (``sako_version_get``).

        Raises
        ------
        NotFound
            No such version (or, for 0, no retrain yet).
        InvalidArgument
            A negative number."""
        buf = np.zeros(1, DTYPES["sako_version_info"])
        _sako.sako_version_get(self._h, _int_arg(version, "version"), buf)
        return VersionInfo._from_buffer(buf)

    def activate(self, version: int) -> "VersionInfo":
        """Serve a stored version (a rollback): its fitted priors replace the served ones
        atomically and the file records it (``sako_version_activate``). Returns it.

        Raises
        ------
        NotFound
            No such version.
        InvalidArgument
            A rejected version (the message gives its verdict), or a number below 1.
        Corrupt
            Its stored model fails its checksum; nothing changed.
        Busy
            A retrain is running: retry after it."""
        _sako.sako_version_activate(self._h, _int_arg(version, "version"))
        return self.version(version)

    def pin(self, version: int, pinned: bool = True) -> "VersionInfo":
        """Pin (or unpin) a version (``sako_version_pin``): never deleted by
        ``keep_versions``, and while active, automatic retrains do not replace it."""
        _sako.sako_version_pin(self._h, _int_arg(version, "version"), 1 if pinned else 0)
        return self.version(version)

    @property
    def policy(self) -> Policy:
        """The retrain policy in force (``sako_policy_get``); assign a :class:`Policy`
        or a mapping of some of its fields (the others keep their current values) to
        set it (``sako_policy_set``: validated whole, stored in the database).

        Raises
        ------
        InvalidArgument
            On assignment: a field out of range (the message names it); nothing changed.
        """
        buf = _policy_init()
        _sako.sako_policy_get(self._h, buf)
        r = buf[0]
        return Policy(**{f.name: (float if f.type in (float, "float") else int)(r[f.name])
                         for f in dataclasses.fields(Policy)})

    @policy.setter
    def policy(self, value: Union[Policy, Mapping[str, Any]]) -> None:
        if isinstance(value, Mapping):
            names = {f.name for f in dataclasses.fields(Policy)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise InvalidArgument(f"policy: unknown field(s) {', '.join(unknown)}")
            value = dataclasses.replace(self.policy, **value)
        elif not isinstance(value, Policy):
            raise InvalidArgument(f"policy: expected a sako.Policy or a mapping, got "
                                  f"{type(value).__name__}")
        _sako.sako_policy_set(self._h, _policy_buffer(value))

    def retrain_due(self) -> RetrainStatus:
        """Whether the retrain policy says a retrain is due, why, and its counters
        (``sako_retrain_due``; O(1)). The engine never retrains by itself: call
        :meth:`retrain` when ``due`` is true (the service's background task does)."""
        buf = np.zeros(1, DTYPES["sako_retrain_status"])
        _sako.sako_retrain_due(self._h, buf)
        return RetrainStatus._from_buffer(buf)

    def item(self, item_id: int) -> ItemInfo:
        """Evidence and posterior of one item.

        Raises
        ------
        NotFound
            No such item.
        """
        buf = np.zeros(1, DTYPES["sako_item_info"])
        _sako.sako_item_get(self._h, _int_arg(item_id, "item_id"), buf)
        return ItemInfo._from_buffer(buf)

    def user(self, user_id: int) -> UserInfo:
        """A user's personal state: events, baskets, distinct products bought, the
        decayed basket count ``weight`` and whether the personal engine serves them.

        Raises
        ------
        NotFound
            No event of this user.
        """
        buf = np.zeros(1, DTYPES["sako_user_info"])
        _sako.sako_user_get(self._h, _int_arg(user_id, "user_id"), buf)
        return UserInfo._from_buffer(buf)

    def user_item(self, user_id: int, item_id: int) -> UserItem:
        """One product of a user's purchase history: baskets that held it, their
        decayed count, the last purchase and the mean repurchase interval.

        Raises
        ------
        NotFound
            Unknown user, or the user never bought the product.
        """
        buf = np.zeros(1, DTYPES["sako_user_item"])
        _sako.sako_user_item_get(self._h, _int_arg(user_id, "user_id"),
                                 _int_arg(item_id, "item_id"), buf)
        return UserItem._from_buffer(buf)

    def stats(self) -> Stats:
        """Engine-wide figures."""
        buf = np.zeros(1, DTYPES["sako_stats"])
        _sako.sako_stats_get(self._h, buf)
        return Stats._from_buffer(buf)

    def factors_info(self) -> FactorsInfo:
        """The matrix factors served (``sako_factors_info_get``): what trained them, on
        which part of the log, and whether the personal engine uses them."""
        buf = np.zeros(1, DTYPES["sako_factors_info"])
        buf[0]["version"] = _sako.SAKO_FACTORS_INFO_VERSION
        _sako.sako_factors_info_get(self._h, buf)
        return FactorsInfo._from_buffer(buf)

    def category_prior(self, category_id: int) -> float:
        """Mean of the prior a new item of this category starts from (0 = catalog root).

        Raises
        ------
        NotFound
            No such category.
        """
        return float(_sako.sako_category_prior(self._h, _int_arg(category_id, "category_id")))

    # ------------------------------------------------------ compaction
    def compact(self, keep_days: float = 30.0, keep_events: int = 100_000) -> "CompactReport":
        """Fold the old part of the event log into a checkpoint and delete it
        (``sako_compact``), so that the file stops growing under steady traffic.

        The compaction point C is the latest batch that leaves at least
        ``keep_events`` events (never fewer than ``COMPACT_MIN_EVENTS`` nor the
        policy's ``gate_holdout_events``: the next retrain's gate holdout) and every
        batch holding an event within ``keep_days`` of the log's latest event in the
        log, is at or before the latest retrain, and is checkpointed. Reopen and
        retrain give bit for bit what they gave before. Updates and recommendations
        go on meanwhile (updates wait at most one short step); the GIL is released.

        Parameters
        ----------
        keep_days : float
            Days of event time to keep (0: no time window). Default 30.
        keep_events : int
            Latest events to keep at least. Default 100,000.

        Returns
        -------
        CompactReport
            What was done (``batches_removed`` 0: nothing to compact).

        Raises
        ------
        InvalidArgument
            A negative or non-finite ``keep_days``, ``keep_events`` out of range.
        Busy
            A retrain or another compaction of this engine runs.
        Corrupt
            A batch or the current checkpoint is damaged (nothing changed).
        """
        kd = float(keep_days)
        ke = _int_arg(keep_events, "keep_events")
        if ke < 0:
            raise InvalidArgument(f"keep_events {ke} is negative")
        if ke > ID_MAX:
            raise InvalidArgument(f"keep_events {ke} is above 2^53-1")
        opt = np.zeros(1, DTYPES["sako_compact_options"])
        opt[0] = (_sako.SAKO_COMPACT_OPTIONS_VERSION, kd, ke)
        buf = np.zeros(1, DTYPES["sako_compact_report"])
        _sako.sako_compact(self._h, opt, buf)
        return CompactReport._from_buffer(buf)  # type: ignore[attr-defined]

    def log_stats(self) -> "LogStats":
        """The size of the event log and of the database file (``sako_log_stats_get``)."""
        buf = np.zeros(1, DTYPES["sako_log_stats"])
        _sako.sako_log_stats_get(self._h, buf)
        return LogStats._from_buffer(buf)  # type: ignore[attr-defined]

    # ------------------------------------------------------ backup, readiness
    def backup(self, path: Union[str, "os.PathLike[str]"]) -> str:
        """Copy the database into the new file ``path`` while the engine keeps serving.

        SQLite's online backup, through the engine's own connection: updates wait at
        most one step of 64 pages, recommendations never wait. The backup is the
        database at one instant: every batch acknowledged before the call is in it, and
        opening it gives the engine's state at that instant. Works for in-memory
        engines too.

        Returns
        -------
        str
            ``path``, as a string.

        Raises
        ------
        InvalidArgument
            ``path`` exists (a backup never overwrites a file) or is empty/``":memory:"``.
        SakoError
            The directory is missing or not writable, the disk is full (no file is
            left at ``path``).
        """
        p = os.fspath(path)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        if not isinstance(p, str):
            raise InvalidArgument("backup path must be a str or os.PathLike")
        _sako.sako_backup(self._h, p)
        return p

    # ------------------------------------------------------------ replication
    @property
    def log_position(self) -> int:
        """The position of the last batch applied with an ``*_at`` call (0: none):
        where a replica resumes its log (``sako_log_position``)."""
        return int(_sako.sako_log_position(self._h))

    def _at(self, fn: Any, position: int, *args: Any) -> "AtOutcome":
        position = _int_arg(position, "position")
        try:
            code = fn(self._h, position, *args)
        except (InvalidArgument, NotFound, RangeError) as exc:
            # A validation failure consumes its position (the batch is the log's: every
            # replica rejects it alike); a position < 1 does not.
            if position >= 1 and self.log_position >= position:
                return AtOutcome("rejected", str(exc))
            raise
        return AtOutcome(_AT_OUTCOMES.get(int(code), "none"), "")

    def update_arrays_at(self, position: int, users: ArrayLike, items: ArrayLike,
                         types: ArrayLike, times: ArrayLike,
                         recommendation_ids: Optional[ArrayLike] = None,
                         order_ids: Optional[ArrayLike] = None) -> "AtOutcome":
        """Apply a batch of events at a position of a replicated log
        (``sako_update_at``): skipped when ``position`` is at or below
        :attr:`log_position`, else applied and stored with the position in one
        transaction. Every time must be given (0 is refused: the publisher resolves
        "now"). A batch failing validation is rejected and its position consumed.

        Returns
        -------
        AtOutcome
            ``outcome`` is ``"applied"``, ``"skipped"`` or ``"rejected"`` (then
            ``message`` says why); other failures raise and consume nothing.
        """
        cols = {"user_id": _as_int64(users, "users"), "item_id": _as_int64(items, "items"),
                "type": _as_types(types), "time": _as_int64(times, "times")}
        if recommendation_ids is not None:
            cols["rec_id"] = _as_int64(recommendation_ids, "recommendation_ids")
        orders = None if order_ids is None else _as_int64(order_ids, "order_ids")
        n = len(cols["user_id"])
        if any(len(c) != n for c in cols.values()) or (orders is not None and len(orders) != n):
            raise InvalidArgument("event arrays differ in length")
        buf = np.zeros(n, _EVENT)
        for key, col in cols.items():
            buf[key] = col
        return self._at(_sako.update_at, position, buf, orders)

    def update_events_at(self, position: int, events: np.ndarray) -> "AtOutcome":
        """:meth:`update_arrays_at` from one structured array with the fields
        ``user_id, item_id, type, time, rec_id, order_id`` (as
        :data:`sako.replication.EVENT_DTYPE`)."""
        buf = np.zeros(len(events), _EVENT)
        for key in ("user_id", "item_id", "type", "time", "rec_id"):
            buf[key] = events[key]
        orders = np.ascontiguousarray(events["order_id"], dtype=np.int64)
        return self._at(_sako.update_at, position, buf, orders if orders.any() else None)

    def upsert_items_at(self, position: int, ids: ArrayLike, category_ids: ArrayLike,
                        active: ArrayLike, added_at: ArrayLike) -> "AtOutcome":
        """Items at a log position (``sako_items_upsert_at``; see
        :meth:`update_arrays_at`). ``added_at`` must be given (0 is refused)."""
        i = _as_int64(ids, "ids")
        cols = {"id": i, "category_id": _as_int64(category_ids, "category_ids"),
                "active": _as_flags(active, "active"), "added_at": _as_int64(added_at, "added_at")}
        if any(len(c) != len(i) for c in cols.values()):
            raise InvalidArgument("item arrays differ in length")
        buf = np.zeros(len(i), _ITEM)
        for key, col in cols.items():
            buf[key] = col
        return self._at(_sako.sako_items_upsert_at, position, buf)

    def upsert_categories_at(self, position: int, ids: ArrayLike, parent_ids: ArrayLike,
                             names: Sequence[Optional[str]]) -> "AtOutcome":
        """Categories at a log position (``sako_categories_upsert_at``)."""
        cols = {"id": _as_int64(ids, "ids"), "parent_id": _as_int64(parent_ids, "parent_ids")}
        blob, cols["name"] = _c_strings(names)
        n = len(cols["id"])
        if len(cols["parent_id"]) != n or len(cols["name"]) != n:
            raise InvalidArgument("category arrays differ in length")
        buf = np.zeros(n, _CATEGORY)
        for key, col in cols.items():
            buf[key] = col
        out = self._at(_sako.sako_categories_upsert_at, position, buf)
        del blob  # the names' bytes lived until C returned
        return out

    def retrain_at(self, position: int, reasons: Union[int, "RetrainReason"] = 8) -> "AtOutcome":
        """A retrain entry of a replicated log (``sako_retrain_at``): the position is
        stored with the version it builds, so every replica retrains once at the same
        point of the log and fits the same model."""
        return self._at(_sako.sako_retrain_at, position, _int_arg(int(reasons), "reasons"))

    @property
    def ready(self) -> bool:
        """True once the sampling domains are built (large catalogs build them in the
        background after open; until then recommendations are exact but slower)."""
        return bool(_sako.sako_ready(self._h))


class AtOutcome(NamedTuple):
    """What an ``*_at`` call did: ``outcome`` is ``"applied"``, ``"skipped"`` (at or
    below the stored position) or ``"rejected"`` (failed validation; ``message``)."""
    outcome: str
    message: str


_AT_OUTCOMES = {1: "applied", 2: "skipped", 3: "rejected"}


def open(path: Union[str, "os.PathLike[str]", None] = None, **options: Any) -> Engine:  # noqa: A001
    """Open (or create) an engine; same arguments as :class:`Engine`.

    Use it as a context manager: ``with sako.open("shop.db") as eng: ...``.
    """
    return Engine(path, **options)


__all__ = ["Engine", "open", "Recommendation", "ItemInfo", "Stats", "FactorsInfo", "UserInfo", "UserItem",
           "Policy", "RetrainStatus", "RetrainReason", "POLICY_MAX",
           "CompactReport", "LogStats", "COMPACT_MIN_EVENTS",
           "Event", "EventType", "Mode", "MODE_NAMES", "SOURCE_NAMES",
           "default_options", "ID_MAX", "TIME_MAX", "MAX_K", "MAX_BATCH", "MAX_EXCLUDE", "MAX_NAME", "Misuse"]


class VerifyReport(NamedTuple):
    """What :func:`verify` checked (``sako_verify_report``)."""
    n_batches: int      #: event batches in the log
    n_checksummed: int  #: of them with a checksum, all verified (0.2 batches have none)
    n_events: int       #: events in the batches read
    compact_batch: int = 0        #: the log checkpoint's batch (0: never compacted)
    n_checkpoint_chunks: int = 0  #: its chunks, all verified


def verify(path: Union[str, "os.PathLike[str]"]) -> VerifyReport:
    """Check a database file without changing it (``sako_verify``): SQLite's
    integrity_check, then every logged event batch against its CRC-32C.

    Safe on a file a running engine has open (it reads a consistent snapshot) and on
    backups. Raises :class:`Corrupt` naming the first damaged batch, :class:`IOFailure`
    if the file cannot be read, :class:`VersionError` for a newer schema.
    """
    buf = np.zeros(1, DTYPES["sako_verify_report"])
    _sako.sako_verify(os.fspath(path), buf)
    r = buf[0]
    return VerifyReport(int(r["n_batches"]), int(r["n_checksummed"]), int(r["n_events"]),
                        int(r["compact_batch"]), int(r["n_checkpoint_chunks"]))
