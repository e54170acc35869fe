"""sako — grocery recommendations by Thompson sampling with category priors.

The Python binding of libsako (a pure-C library persisted to SQLite). Start with
:func:`open`::

    import sako
    with sako.open("shop.db") as eng:
        eng.upsert_categories([(1, 0, "Dairy"), (2, 1, "Yoghurt")])
        eng.upsert_items([(100, 2), (101, 2)])
        eng.update([(7, 100, "purchase", 0)])
        for rec in eng.recommend(user_id=7, k=10):
            print(rec.item_id, rec.score)

Errors raise subclasses of :class:`SakoError`, one per C status code.
"""
from . import _sako
from ._errors import (ERRORS, Busy, Corrupt, InternalError, InvalidArgument, IOFailure,
                      Misuse, NotFound, OutOfMemory, RangeError, SakoError, VersionError,
                      error_for)
from ._engine import (EVENT_TYPE_NAMES, ID_MAX, TIME_MAX, MAX_BATCH, MAX_EXCLUDE, MAX_K, MAX_NAME,
                      MODE_NAMES, SOURCE_NAMES, Engine, Event, EventType, ItemInfo, Mode,
                      Recommendation, Stats, UserInfo, UserItem, default_options, open)
from ._engine import POLICY_MAX, Policy, RetrainReason, RetrainStatus, VersionInfo
from ._engine import VerifyReport, verify
from ._engine import COMPACT_MIN_EVENTS, CompactReport, LogStats
from ._mf import mf_fit, mf_fold_in, mf_gram
from ._engine import AtOutcome

#: version of the linked C library (``sako_version_string()``)
__version__: str = _sako.sako_version_string()
#: (major, minor, patch) of the linked C library
version_info = (_sako.SAKO_VERSION_MAJOR, _sako.SAKO_VERSION_MINOR, _sako.SAKO_VERSION_PATCH)

__all__ = [
    "Engine", "open", "Recommendation", "ItemInfo", "Stats", "UserInfo", "UserItem", "Event",
    "EventType", "Mode", "default_options", "SakoError", "InternalError", "OutOfMemory", "InvalidArgument",
    "NotFound", "RangeError", "IOFailure", "Corrupt", "Busy", "Misuse", "VersionError",
    "ERRORS", "error_for", "ID_MAX", "TIME_MAX", "MAX_K", "MAX_BATCH", "MAX_EXCLUDE", "MAX_NAME",
    "EVENT_TYPE_NAMES", "MODE_NAMES", "SOURCE_NAMES", "__version__", "version_info",
    "Policy", "RetrainStatus", "RetrainReason", "POLICY_MAX", "VersionInfo",
    "verify", "VerifyReport", "CompactReport", "LogStats", "COMPACT_MIN_EVENTS",
    "mf_fit", "mf_fold_in", "mf_gram",
    "AtOutcome",
]
