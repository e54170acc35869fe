"""The HTTP service: FastAPI over an in-process :class:`sako.Engine`.

Create it with :func:`create_app`; ``sako serve`` runs it on uvicorn. See
docs/service.md for the API, auth, limits and status codes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from typing import Annotated, Any, AsyncIterator, Dict, List, Literal, Optional, Sequence

import numpy as np
from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import _errors
from .._engine import EVENT_TYPE_NAMES, ID_MAX, MAX_K, Engine
from .keys import ADMIN, CLIENT, KeyRing
from .metrics import Metrics

log = logging.getLogger("sako.service")

MAX_BATCH_HTTP = 10_000          # entries per request
MAX_LIST = 10_000                # exclude / recent
MAX_BODY_BYTES = 4 * 1024 * 1024  # 4 MiB
INLINE_BELOW_S = 200e-6           # recommend inline on the event loop below this cost
TIME_MAX_MS = 253402300799999    # 9999-12-31

Id = Annotated[int, Field(ge=1, le=ID_MAX, strict=True, description="id in [1, 2^53-1]")]
OptId = Optional[Id]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------- schemas
class RecommendationRequest(_Model):
    user_id: int = Field(ge=0, le=ID_MAX, description="the user; 0 for an anonymous user")
    k: int = Field(default=20, ge=0, le=MAX_K, description="results wanted, 0..1000")
    category_id: OptId = Field(default=None, description="restrict to this category's subtree")
    exclude: List[Id] = Field(default_factory=list, max_length=MAX_LIST,
                              description="items never to return")
    recent: List[Id] = Field(default_factory=list, max_length=MAX_LIST,
                             description="items the user just viewed, newest first")


class RecommendedItem(BaseModel):
    item_id: int
    score: float = Field(description="sampled reward rate in [0, 1]")
    source: str = Field(description="part of the model that produced it ('thompson')")


class RecommendationResponse(BaseModel):
    recommendation_id: int = Field(description="unique id; send it back as rec_id in events")
    items: List[RecommendedItem]


EventTypeName = Literal["impression", "click", "cart", "purchase"]


class EventIn(_Model):
    user_id: Id
    item_id: Id
    type: EventTypeName
    time: int = Field(default=0, ge=0, le=TIME_MAX_MS, description="unix ms; 0 = now")
    rec_id: OptId = Field(default=None, description="the recommendation this answers")


class EventsRequest(_Model):
    events: List[EventIn] = Field(max_length=MAX_BATCH_HTTP,
                                  description=f"at most {MAX_BATCH_HTTP} events; all or nothing")


class EventsResponse(BaseModel):
    accepted: int


class CategoryIn(_Model):
    id: Id
    parent_id: OptId = Field(default=None, description="the department of an aisle; null for a department")
    name: Optional[str] = Field(default=None, max_length=256, description="null keeps the stored name")

    @field_validator("name")
    @classmethod
    def _name_bytes(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            try:
                b = v.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("name is not valid UTF-8 (lone surrogate)") from None
            if len(b) > 256:
                raise ValueError("name longer than 256 bytes in UTF-8")
            if "\x00" in v:
                raise ValueError("name contains a NUL character")
        return v


class CategoriesRequest(_Model):
    categories: List[CategoryIn] = Field(max_length=MAX_BATCH_HTTP)


class ItemIn(_Model):
    id: Id
    category_id: OptId = Field(default=None, description="null = catalog root")
    active: bool = True
    added_at: int = Field(default=0, ge=0, le=TIME_MAX_MS, description="unix ms; 0 = now")


class ItemsRequest(_Model):
    items: List[ItemIn] = Field(max_length=MAX_BATCH_HTTP)


class UpsertResponse(BaseModel):
    upserted: int


class ItemOut(BaseModel):
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
    posterior_mean: float


class StatsOut(BaseModel):
    n_items: int
    n_active_items: int
    n_categories: int
    n_users: int
    n_events: int
    events_since_refresh: int
    model_version: int
    global_mean: float


class PriorOut(BaseModel):
    category_id: int
    prior_mean: float


class HealthOut(BaseModel):
    status: str
    version: str
    model_version: int
    n_items: int


class ErrorEntry(BaseModel):
    index: Optional[int] = None
    field: Optional[str] = None
    reason: str


class ErrorBody(BaseModel):
    error: str
    message: str
    errors: List[ErrorEntry] = Field(default_factory=list)


_ERR = {"model": ErrorBody}
_AUTH_RESPONSES: Dict[Any, Any] = {400: _ERR, 401: _ERR, 413: _ERR, 422: _ERR, 503: _ERR}
_ADMIN_RESPONSES: Dict[Any, Any] = {**_AUTH_RESPONSES, 403: _ERR}


# ------------------------------------------------------------- helpers
class RecIdGenerator:
    """Unique recommendation ids: unix ms << 10 plus a counter, strictly increasing
    within a process and across restarts (unless > 1024 ids/ms are sustained), below
    2^53 until the year 2109."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        now = int(time.time() * 1000) << 10
        with self._lock:
            self._last = nid = max(now, self._last + 1)
        return nid


def _error(status: int, error: str, message: str, errors: Sequence[Dict[str, Any]] = (),
           headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "errors": list(errors)},
                        status_code=status, headers=headers)


_STATUS_OF = {
    "InvalidArgument": (422, "invalid_argument"),
    "RangeError": (422, "out_of_range"),
    "NotFound": (404, "not_found"),
    "Busy": (503, "busy"),
    "IOFailure": (503, "io_failure"),
    "OutOfMemory": (503, "out_of_memory"),
    "Misuse": (503, "unavailable"),
    "Corrupt": (500, "corrupt"),
    "VersionError": (500, "version"),
    "InternalError": (500, "internal"),
}


def _clean(v: Any) -> Any:
    """JSON-safe copy of validation error inputs (no NaN/inf, no bytes)."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)[:200]


def _validation_entries(exc: RequestValidationError) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for e in exc.errors()[:100]:
        loc = [x for x in e.get("loc", ()) if x != "body"]
        index = next((x for x in loc if isinstance(x, int)), None)
        field = ".".join(str(x) for x in loc) or None
        out.append({"index": index, "field": field, "reason": str(e.get("msg", "invalid"))})
    return out


# ----------------------------------------------------------- middleware
class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, by Content-Length or while reading."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                break
        if length is not None and (length > self.limit or length < 0):
            await self._reject(send, 413 if length > self.limit else 400)
            return
        if length is not None or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): buffer up to the limit, then replay.
        chunks: List[bytes] = []
        total = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunk = msg.get("body", b"")
            total += len(chunk)
            if total > self.limit:
                await self._reject(send, 413)
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Any, status: int) -> None:
        body = json.dumps({"error": "payload_too_large" if status == 413 else "bad_request",
                           "message": f"request body over {self.limit} bytes" if status == 413
                           else "invalid Content-Length", "errors": []}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class FastPathMiddleware:
    """Hand POST requests to one path to ``handler(scope, body)``; when it returns bytes
    they are the 200 JSON response, when it returns None the request (body replayed)
    goes on to the application unchanged."""

    def __init__(self, app: Any, path: str, handler: Any, route: Any = None) -> None:
        self.app, self.path, self.handler, self.route = app, path, handler, route

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: List[bytes] = []
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # client went away
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        out = await self.handler(scope, body)
        if out is None:
            sent = False

            async def replay() -> Dict[str, Any]:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        if self.route is not None:
            scope["route"] = self.route  # for the metrics' route label
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})


# ------------------------------------------------------------------ app
def create_app(engine: Optional[Engine] = None, db_path: Optional[str] = None,
               keys: Optional[KeyRing] = None, dev: bool = False,
               seed_demo: bool = True, engine_options: Optional[Dict[str, Any]] = None,
               max_body_bytes: int = MAX_BODY_BYTES, inline_recommend: Optional[bool] = None,
               metrics: bool = True, fast_path: bool = True) -> FastAPI:
    """Build the FastAPI application.

    Parameters
    ----------
    engine : Engine, optional
        Use this engine (the caller owns it and closes it). Otherwise one is opened on
        ``db_path`` at startup and closed at shutdown.
    db_path : str, optional
        Database file; created and seeded with the demo catalog if absent (and
        ``seed_demo``). Default ``./var/sako.db``.
    keys : KeyRing, optional
        API keys. With no key configured the app refuses to be built unless ``dev``.
    dev : bool
        Allow running with no API key (every request is admin).
    fast_path : bool
        Serve successful recommendation requests through a lean ASGI path (same
        validation model, same auth, same response); anything else goes through FastAPI.
    inline_recommend : bool, optional
        True: call ``recommend`` directly on the event loop (cheapest when the C call
        takes microseconds). False: send it to the threadpool like every other engine
        call (the GIL is released in C, so requests then use several cores). None
        (default): decide per request from a moving average of the call's duration:
        inline below ``INLINE_BELOW_S`` (200 µs), threadpool above.
    """
    keys = keys if keys is not None else KeyRing()
    if not len(keys) and not dev:
        raise RuntimeError("no API key configured: set SAKO_CLIENT_KEYS / SAKO_ADMIN_KEYS or "
                           "--keys-file, or run with --dev")
    owned = engine is None
    state: Dict[str, Any] = {"engine": engine}
    rec_ids = RecIdGenerator()
    cost = [0.0]      # moving average of recommend's duration on the event loop, s
    ids_cost = [0.0]  # last duration measured in the threadpool, s

    def _timed_recommend(e: Engine, args: Any) -> Any:
        t0 = time.perf_counter()
        out = e.recommend_arrays(*args)
        ids_cost[0] = time.perf_counter() - t0
        return out
    m = Metrics(lambda: state.get("engine")) if metrics else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state["engine"] is None:
            state["engine"] = await run_in_threadpool(
                open_default_engine, db_path, seed_demo, engine_options or {})
        app.state.engine = state["engine"]
        try:
            yield
        finally:
            if owned and state["engine"] is not None:
                eng = state["engine"]
                await run_in_threadpool(eng.close)
                log.info("engine closed")

    app = FastAPI(title="sako", version=_version(),
                  description="Grocery recommendations by Thompson sampling with category "
                              "priors (libsako). Send the API key in the X-API-Key header.",
                  lifespan=lifespan)
    if engine is not None:
        app.state.engine = engine

    api_key = APIKeyHeader(name="X-API-Key", auto_error=False,
                           description="client or admin key")

    def _role(key: Optional[str]) -> str:
        if not len(keys) and dev:
            return ADMIN
        role = keys.role(key)
        if role is None:
            raise _Denied(401, "unauthorized", "missing or unknown API key (X-API-Key)")
        return role

    # async: trivial checks must not cost a threadpool hop per request
    async def client(key: Optional[str] = Depends(api_key)) -> str:
        return _role(key)

    async def admin(key: Optional[str] = Depends(api_key)) -> str:
        role = _role(key)
        if role != ADMIN:
            raise _Denied(403, "forbidden", "this route needs an admin key")
        return role

    def eng() -> Engine:
        e = state["engine"]
        if e is None:
            raise _errors.Misuse("engine is not open")
        return e

    # ----------------------------------------------------- error handlers
    @app.exception_handler(_Denied)
    async def _denied(_: Request, exc: "_Denied") -> JSONResponse:
        headers = {"WWW-Authenticate": "ApiKey"} if exc.status == 401 else None
        return _error(exc.status, exc.code, exc.message, headers=headers)

    @app.exception_handler(_errors.SakoError)
    async def _sako_error(_: Request, exc: _errors.SakoError) -> JSONResponse:
        status, code = _STATUS_OF.get(type(exc).__name__, (500, "internal"))
        headers = {"Retry-After": "1"} if status == 503 else None
        if status >= 500:
            log.error("engine error: %s: %s", type(exc).__name__, exc)
        return _error(status, code, str(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        json_errors = [e for e in exc.errors() if e.get("type") == "json_invalid"]
        if json_errors:
            pos = next((x for x in json_errors[0].get("loc", ()) if isinstance(x, int)), None)
            where = "" if pos is None else f" at character {pos}"
            return _error(400, "malformed_json", f"malformed JSON{where}",
                          [{"reason": str(json_errors[0].get("msg", "JSON decode error"))}])
        entries = _validation_entries(exc)
        msg = "; ".join(f"{e['field'] or 'body'}: {e['reason']}" for e in entries[:5])
        return _error(422, "validation_error", msg or "invalid request", entries)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unhandled error")
        return _error(500, "internal", f"{type(exc).__name__}")

    # -------------------------------------------------------------- routes
    @app.post("/v1/recommendations", response_model=RecommendationResponse,
              responses={**_AUTH_RESPONSES, 404: _ERR}, tags=["recommend"],
              summary="Recommend up to k items for a user")
    async def recommend(req: RecommendationRequest, _r: str = Depends(client)) -> Any:
        try:
            body = await _recommend_body(eng(), req)
        except _errors.NotFound as exc:  # a category named in the body: the request is invalid
            return _error(422, "not_found", str(exc), [{"field": "category_id", "reason": str(exc)}])
        return Response(body, media_type="application/json")

    async def _recommend_body(e: Engine, req: RecommendationRequest) -> bytes:
        args = (req.user_id, req.k, req.category_id, req.exclude or (), req.recent or ())
        inline = inline_recommend
        if inline is None:
            inline = cost[0] < INLINE_BELOW_S
        if inline:
            t0 = time.perf_counter()
            ids, scores = e.recommend_arrays(*args)
            cost[0] = 0.9 * cost[0] + 0.1 * (time.perf_counter() - t0)
        else:
            ids, scores = await run_in_threadpool(_timed_recommend, e, args)
            # slowly forget, so a faster engine gets inline calls back
            cost[0] = 0.9 * cost[0] + 0.1 * min(ids_cost[0], cost[0])
        items = [{"item_id": i, "score": s, "source": "thompson"}
                 for i, s in zip(ids.tolist(), scores.tolist())]
        if m is not None:
            m.recommendations.inc()
        # serialised here: the shape is fixed, so skip re-validating the response model
        return _dumps({"recommendation_id": rec_ids(), "items": items})

    async def fast_recommend(scope: Dict[str, Any], body: bytes) -> Optional[bytes]:
        """The success path of POST /v1/recommendations without FastAPI's routing and
        dependency machinery; None sends the request down the full stack (which then
        produces the error response, identical to the one without this shortcut)."""
        key = None
        ctype = b""
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                key = value.decode("latin-1")
            elif name == b"content-type":
                ctype = value
        if not ctype.startswith(b"application/json"):
            return None
        try:
            _role(key)
            req = RecommendationRequest.model_validate_json(body)
            return await _recommend_body(eng(), req)
        except Exception:  # any refusal: let the full app answer it
            return None

    @app.post("/v1/events", response_model=EventsResponse, tags=["events"],
              responses=_AUTH_RESPONSES, summary="Record a batch of events (all or nothing)")
    def events(req: EventsRequest, _r: str = Depends(client)) -> Any:
        e = eng()
        evs = req.events
        n = len(evs)
        users = np.fromiter((x.user_id for x in evs), dtype=np.int64, count=n)
        items = np.fromiter((x.item_id for x in evs), dtype=np.int64, count=n)
        types = np.fromiter((EVENT_TYPE_NAMES[x.type] for x in evs), dtype=np.int32, count=n)
        times = np.fromiter((x.time for x in evs), dtype=np.int64, count=n)
        recs = np.fromiter((x.rec_id or 0 for x in evs), dtype=np.int64, count=n)
        try:
            e.update_arrays(users, items, types, times, recs)
        except _errors.NotFound as exc:
            return _error(422, "unknown_item", str(exc), _unknown_items(e, items))
        if m is not None and n:
            m.count_events(types)
        return {"accepted": n}

    @app.put("/v1/categories", response_model=UpsertResponse, tags=["catalog"],
             responses=_ADMIN_RESPONSES, summary="Insert or update categories (admin)")
    def put_categories(req: CategoriesRequest, _r: str = Depends(admin)) -> Any:
        e = eng()
        cats = req.categories
        try:
            e.upsert_categories_arrays([c.id for c in cats], [c.parent_id or 0 for c in cats],
                                       [c.name for c in cats])
        except _errors.NotFound as exc:
            return _error(422, "not_found", str(exc), [{"field": "parent_id", "reason": str(exc)}])
        return {"upserted": len(cats)}

    @app.put("/v1/items", response_model=UpsertResponse, tags=["catalog"],
             responses=_ADMIN_RESPONSES, summary="Insert or update items (admin)")
    def put_items(req: ItemsRequest, _r: str = Depends(admin)) -> Any:
        e = eng()
        its = req.items
        try:
            e.upsert_items_arrays([i.id for i in its], [i.category_id or 0 for i in its],
                                  [1 if i.active else 0 for i in its], [i.added_at for i in its])
        except _errors.NotFound as exc:
            return _error(422, "not_found", str(exc), [{"field": "category_id", "reason": str(exc)}])
        return {"upserted": len(its)}

    @app.get("/v1/items/{item_id}", response_model=ItemOut, tags=["catalog"],
             responses={**_AUTH_RESPONSES, 404: _ERR}, summary="An item's evidence and posterior")
    def get_item(item_id: Annotated[int, Path(ge=1, le=ID_MAX)], _r: str = Depends(client)) -> Any:
        info = eng().item(item_id)
        d = dict(info.__dict__)
        d["posterior_mean"] = info.posterior_mean
        return d

    @app.get("/v1/categories/{category_id}/prior", response_model=PriorOut, tags=["catalog"],
             responses={**_AUTH_RESPONSES, 404: _ERR}, summary="A category's prior mean")
    def get_prior(category_id: Annotated[int, Path(ge=0, le=ID_MAX)],
                  _r: str = Depends(client)) -> Any:
        return {"category_id": category_id, "prior_mean": eng().category_prior(category_id)}

    @app.get("/v1/stats", response_model=StatsOut, tags=["model"], responses=_AUTH_RESPONSES,
             summary="Engine-wide figures")
    def stats(_r: str = Depends(client)) -> Any:
        return eng().stats().__dict__

    @app.post("/v1/retrain", response_model=StatsOut, tags=["model"],
              responses=_ADMIN_RESPONSES, summary="Rebuild the model from the event log (admin)")
    def retrain(_r: str = Depends(admin)) -> Any:
        return eng().retrain().__dict__

    @app.get("/healthz", response_model=HealthOut, tags=["ops"], responses={503: _ERR},
             summary="Liveness and readiness")
    def healthz() -> Any:
        s = eng().stats()
        return {"status": "ok", "version": _version(), "model_version": s.model_version,
                "n_items": s.n_items}

    if m is not None:
        @app.get("/metrics", tags=["ops"], response_class=Response,
                 summary="Prometheus metrics")
        def metrics_route() -> Response:
            body, ctype = m.render()
            return Response(body, media_type=ctype)

    if fast_path:
        route = next(r for r in app.routes if getattr(r, "path", None) == "/v1/recommendations")
        app.add_middleware(FastPathMiddleware, path="/v1/recommendations", handler=fast_recommend,
                           route=route)
    app.add_middleware(BodyLimitMiddleware, limit=max_body_bytes)
    if m is not None:
        app.add_middleware(m.middleware)
    app.state.keys = keys
    app.state.dev = dev
    return app


class _Denied(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _unknown_items(e: Engine, items: np.ndarray, limit: int = 50) -> List[Dict[str, Any]]:
    """The entries naming unknown items (index + reason), found after the C library
    refused the batch."""
    out: List[Dict[str, Any]] = []
    known: Dict[int, bool] = {}
    for idx, it in enumerate(items.tolist()):
        ok = known.get(it)
        if ok is None:
            try:
                e.item(it)
                ok = True
            except _errors.NotFound:
                ok = False
            known[it] = ok
        if not ok:
            out.append({"index": idx, "field": "item_id", "reason": f"unknown item {it}"})
            if len(out) >= limit:
                break
    return out


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _version() -> str:
    from .. import __version__

    return __version__


DEFAULT_DB = os.path.join("var", "sako.db")


def open_default_engine(db_path: Optional[str] = None, seed_demo: bool = True,
                        options: Optional[Dict[str, Any]] = None) -> Engine:
    """Open ``db_path`` (default ``./var/sako.db``); a new file is seeded with the demo
    catalog and a simulated history when ``seed_demo``."""
    path = db_path or DEFAULT_DB
    fresh = path != ":memory:" and not os.path.exists(path)
    if fresh and os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    e = Engine(path, **(options or {}))
    if (fresh or path == ":memory:") and seed_demo and e.stats().n_items == 0:
        from ..demo import seed_engine

        log.info("seeding %s with the demo catalog", path)
        seed_engine(e)
    return e

