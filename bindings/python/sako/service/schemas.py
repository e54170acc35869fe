"""Request and response bodies. Limits come from the ``sako`` package (the C library's
constants); the item, user and stats answers are built from the fields of
:class:`sako.ItemInfo`, :class:`sako.UserInfo`, :class:`sako.UserItem` and
:class:`sako.Stats`, so a new engine field appears here without an edit."""
from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Dict, List, Literal, Optional, Type

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

import sako

#: entries per request (events, categories, items); the service's own bound, far below
#: the library's ``sako.MAX_BATCH`` so one request cannot hold the writer for long
MAX_BATCH_HTTP = 10_000
#: largest time the library accepts (SAKO_TIME_MAX: 9999-12-31 in unix ms)
TIME_MAX_MS: int = sako.TIME_MAX

Id = Annotated[int, Field(ge=1, le=sako.ID_MAX, strict=True, description="id in [1, 2^53-1]")]
OptId = Optional[Id]
Time = Annotated[int, Field(ge=0, le=TIME_MAX_MS, description="unix ms; 0 = now")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ------------------------------------------------------------------ requests
ModeName = Literal[tuple(sako.MODE_NAMES)]  # type: ignore[valid-type]


class RecommendationRequest(_Model):
    user_id: int = Field(ge=0, le=sako.ID_MAX, description="the user; 0 for an anonymous user")
    k: int = Field(default=20, ge=0, le=sako.MAX_K, description=f"results wanted, 0..{sako.MAX_K}")
    category_id: OptId = Field(default=None, description="restrict to this category's subtree")
    exclude: List[Id] = Field(default_factory=list, max_length=sako.MAX_EXCLUDE,
                              description="items never to return")
    recent: List[Id] = Field(default_factory=list, max_length=sako.MAX_EXCLUDE,
                             description="items the user just viewed or added, newest first "
                                         "(their bought-together partners become candidates)")
    mode: ModeName = Field(default="mixed",
                           description="mixed: everything; repeat: only products the user "
                                       "bought before; discover: only products the user "
                                       "never bought")
    time: Time = Field(default=0, description="when the recommendation is for, unix ms "
                                              "(0 = now)")


EventTypeName = Literal[tuple(sako.EVENT_TYPE_NAMES)]  # type: ignore[valid-type]


class EventIn(_Model):
    user_id: Id
    item_id: Id
    type: EventTypeName
    time: Time = 0
    recommendation_id: OptId = Field(default=None,
                                     description="the recommendation this event answers")
    rec_id: OptId = Field(default=None, json_schema_extra={"deprecated": True},
                          description="deprecated name of recommendation_id (accepted in this "
                                      "release only)")
    order_id: OptId = Field(default=None,
                            description="the order a purchase belongs to: a user's purchases "
                                        "of one order form one basket")

    @model_validator(mode="after")
    def _one_recommendation_id(self) -> "EventIn":
        if self.rec_id is not None:
            if self.recommendation_id not in (None, self.rec_id):
                raise ValueError("recommendation_id and its deprecated name rec_id differ")
            self.recommendation_id = self.rec_id
        return self


class EventsRequest(_Model):
    events: List[EventIn] = Field(max_length=MAX_BATCH_HTTP,
                                  description=f"at most {MAX_BATCH_HTTP} events; all or nothing")


class CategoryIn(_Model):
    id: Id
    parent_id: OptId = Field(default=None, description="the department of an aisle; null for a department")
    name: Optional[str] = Field(default=None, max_length=sako.MAX_NAME,
                                description="null keeps the stored name")

    @field_validator("name")
    @classmethod
    def _name_bytes(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            try:
                b = v.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("name is not valid UTF-8 (lone surrogate)") from None
            if len(b) > sako.MAX_NAME:
                raise ValueError(f"name longer than {sako.MAX_NAME} bytes in UTF-8")
            if "\x00" in v:
                raise ValueError("name contains a NUL character")
        return v


class CategoriesRequest(_Model):
    categories: List[CategoryIn] = Field(max_length=MAX_BATCH_HTTP)


class ItemIn(_Model):
    id: Id
    category_id: OptId = Field(default=None, description="null = catalog root")
    active: bool = True
    added_at: Time = 0


class ItemsRequest(_Model):
    items: List[ItemIn] = Field(max_length=MAX_BATCH_HTTP)


# ----------------------------------------------------------------- responses
class RecommendedItem(BaseModel):
    item_id: int
    score: float = Field(description="sampled rate in [0, 1] (population: reward per "
                                     "impression; personal: purchase per basket)")
    source: str = Field(description="part of the model that produced it: 'thompson' (the "
                                    "population engine), or 'repeat', 'affinity', "
                                    "'copurchase', 'demand' (the personal engine)")


class RecommendationResponse(BaseModel):
    recommendation_id: int = Field(description="unique id; send it back as recommendation_id "
                                               "in the events that answer it")
    items: List[RecommendedItem]


class EventsResponse(BaseModel):
    accepted: int


class UpsertResponse(BaseModel):
    upserted: int


def _from_dataclass(name: str, cls: type, doc: str, **extra: Any) -> Type[BaseModel]:
    """A response model with the fields of a result dataclass of the binding, plus
    ``extra`` (name=(type, default))."""
    hints = typing.get_type_hints(cls)
    fields: Dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(cls)}
    return create_model(name, __doc__=doc, **fields, **extra)


ItemOut = _from_dataclass("ItemOut", sako.ItemInfo, "An item's evidence and posterior (times in unix ms).",
                          posterior_mean=(float, Field(description="alpha / (alpha + beta)")))
StatsOut = _from_dataclass("StatsOut", sako.Stats, "Engine-wide figures.")
UserOut = _from_dataclass("UserOut", sako.UserInfo,
                          "A user's personal state (times in unix ms).")
UserItemOut = _from_dataclass("UserItemOut", sako.UserItem,
                              "One product of a user's purchase history (times in unix ms).")


def item_out(info: sako.ItemInfo) -> Dict[str, Any]:
    return {**dataclasses.asdict(info), "posterior_mean": info.posterior_mean}


def stats_out(stats: sako.Stats) -> Dict[str, Any]:
    return dataclasses.asdict(stats)


def record_out(record: Any) -> Dict[str, Any]:
    """The answer of a result dataclass without extra fields (UserInfo, UserItem)."""
    return dataclasses.asdict(record)


class PriorOut(BaseModel):
    category_id: int
    prior_mean: float


class HealthOut(BaseModel):
    status: str
    version: str
    model_version: int
    n_items: int
    ready: bool = Field(description="samplers built (GET /readyz answers 200)")
    replication: Optional[Dict[str, Any]] = Field(
        None, description="replicated mode: connected, applied position, the stream's last "
                          "sequence, lag (entries not applied yet), leader, stalled")


class ReadyOut(BaseModel):
    ready: bool
    model_version: int


class ErrorEntry(BaseModel):
    index: Optional[int] = None
    field: Optional[str] = None
    reason: str


class ErrorBody(BaseModel):
    error: str
    message: str
    errors: List[ErrorEntry] = Field(default_factory=list)


_ERR = {"model": ErrorBody}
#: OpenAPI ``responses`` of routes that need a key, and of admin routes
AUTH_RESPONSES: Dict[Any, Any] = {400: _ERR, 401: _ERR, 413: _ERR, 422: _ERR, 503: _ERR}
ADMIN_RESPONSES: Dict[Any, Any] = {**AUTH_RESPONSES, 403: _ERR}
NOT_FOUND_RESPONSES: Dict[Any, Any] = {**AUTH_RESPONSES, 404: _ERR}
UNAVAILABLE_RESPONSES: Dict[Any, Any] = {503: _ERR}


# ------------------------------------------------------------ retrain policy (0.3)
class PolicyIn(_Model):
    """The retrain policy's fields to change (``PUT /v1/policy``); absent ones keep
    their current values. The whole result is validated by the engine before anything
    changes."""

    every_events: Optional[int] = Field(
        default=None, ge=0, le=sako.POLICY_MAX,
        description="retrain after this many events since the last retrain; 0 = off")
    every_seconds: Optional[int] = Field(
        default=None, ge=0, le=sako.POLICY_MAX,
        description="retrain after this many seconds since the last retrain; 0 = off")
    drift_fraction: Optional[float] = Field(
        default=None, ge=0.0, lt=1.0, allow_inf_nan=False,
        description="retrain when the recent conversion of served recommendations falls below "
                    "this fraction of its level after the last retrain; 0 = off")
    drift_window: Optional[int] = Field(
        default=None, ge=1, le=sako.POLICY_MAX,
        description="rec-attributed impressions in the baseline and in the recent window")
    drift_min_impressions: Optional[int] = Field(
        default=None, ge=1, le=sako.POLICY_MAX,
        description="least sample of baseline and recent window before drift can fire "
                    "(at most drift_window)")

    gate_margin: Optional[float] = Field(
        default=None, ge=0.0, le=1.0, allow_inf_nan=False,
        description="reject a retrain's candidate whose NDCG@20 on the holdout is below the "
                    "active version's minus this; 1 = finiteness only")
    gate_holdout_events: Optional[int] = Field(
        default=None, ge=0, le=sako.POLICY_MAX, description="most events held out")
    gate_holdout_fraction: Optional[float] = Field(
        default=None, ge=0.0, le=0.5, allow_inf_nan=False,
        description="share of the log held out (at most gate_holdout_events); 0 = no holdout")
    gate_min_baskets: Optional[int] = Field(
        default=None, ge=0, le=sako.POLICY_MAX,
        description="fewer scored baskets: finiteness alone decides")
    keep_versions: Optional[int] = Field(
        default=None, ge=1, le=10000,
        description="versions kept, newest first (the active and pinned ones always)")

    @model_validator(mode="after")
    def _min_within_window(self) -> "PolicyIn":
        if (self.drift_window is not None and self.drift_min_impressions is not None
                and self.drift_min_impressions > self.drift_window):
            raise ValueError(f"drift_min_impressions {self.drift_min_impressions} is above "
                             f"drift_window {self.drift_window}")
        return self


PolicyOut = _from_dataclass("PolicyOut", sako.Policy, "The retrain policy in force.")


class RetrainStatusOut(BaseModel):
    """Whether a retrain is due and the counters behind it (``Engine.retrain_due``)."""

    due: bool
    reasons: List[str] = Field(description="the triggers that fired: events, time, drift")
    reason: str
    events_since: int
    seconds_since: float
    retrained_at: int = Field(description="unix ms of the last retrain (or of the file's "
                                          "creation before the first)")
    baseline_conversion: float
    baseline_impressions: int
    recent_conversion: float
    recent_impressions: int


class RetrainRecordOut(BaseModel):
    """A retrain the service ran (times in unix ms)."""

    reason: str = Field(description="manual, or the policy's reasons joined by '+'")
    started_at: int
    finished_at: int
    duration_seconds: float
    outcome: str = Field(description="ok, error, or running")
    error: Optional[str] = None
    model_version: Optional[int] = None
    version: Optional[int] = Field(default=None, description="the model version it built")
    gate: Optional[str] = Field(default=None, description="what became of that version: "
                                "activated, rejected, or not_activated (active version pinned)")
    verdict: Optional[str] = Field(default=None, description="the gate's verdict")


# ------------------------------------------------------------ model versions (0.4)
class VersionOut(BaseModel):
    """One model version: a retrain's fitted population model, what asked for it, the
    log it saw and what its gate found (times in unix ms)."""

    version: int
    created_at: int
    status: str = Field(description="active, inactive (may be activated) or rejected (never)")
    pinned: bool
    reasons: List[str] = Field(description="what asked for it: manual, events, time, drift")
    verdict: str = Field(description="the gate's verdict")
    first_batch: int
    last_batch: int
    n_events: int = Field(description="events in the log it was fitted on")
    champion: int = Field(description="the active version it was compared with, 0 if none")
    scored: bool = Field(description="whether the gate compared NDCG@20 on the holdout")
    score: float = Field(description="its NDCG@20 on the held-out baskets")
    champion_score: float
    holdout_events: int
    holdout_baskets: int
    root_mean: Optional[float] = Field(description="its catalog prior mean; null if its "
                                                   "stored model is damaged")
    epoch_at: int = Field(description="the log's latest event time it was fitted at")
    options: Dict[str, Any] = Field(description="the model options it was fitted with")


class VersionsOut(BaseModel):
    active: Optional[int] = Field(description="the active version, null before any retrain")
    versions: List[VersionOut] = Field(description="newest first")


class PinIn(_Model):
    pinned: bool = Field(description="true: automatic retrains do not replace it while it is "
                                     "active, and keep_versions never deletes it")


class RetrainOut(StatsOut):  # type: ignore[valid-type, misc]
    """Engine-wide figures after a retrain, and the version it built."""

    version: VersionOut
    gate: str = Field(description="activated, rejected, or not_activated (active version pinned)")


def gate_result(info: sako.VersionInfo) -> str:
    """What became of a retrain's version: activated, rejected or not_activated."""
    return {"active": "activated", "rejected": "rejected"}.get(info.status, "not_activated")


class CompactionOut(BaseModel):
    outcome: str = Field(description="ok or error")
    error: Optional[str] = None
    finished_at: int = Field(description="unix ms")
    compact_batch: Optional[int] = Field(None, description="the log starts after this batch")
    events_removed: Optional[int] = None
    duration_seconds: Optional[float] = None


class BackgroundOut(BaseModel):
    enabled: bool
    check_seconds: float
    checks: int
    last_check_at: Optional[int] = None
    last_check_error: Optional[str] = None
    auto_compact: bool = Field(False, description="the log is compacted after each "
                                                  "successful background retrain")
    last_compaction: Optional[CompactionOut] = Field(
        None, description="the last compaction after a background retrain")


class PolicyResponse(BaseModel):
    policy: PolicyOut  # type: ignore[valid-type]
    status: RetrainStatusOut
    last_retrain: Optional[RetrainRecordOut] = None
    running: Optional[RetrainRecordOut] = None
    background: BackgroundOut
