"""The HTTP service: FastAPI over an in-process :class:`sako.Engine`.

:func:`create_app` assembles the routers (``routers/``), the dependencies, the error
handlers and the middleware from one :class:`Settings`. ``sako serve`` runs it on
uvicorn; so does ``uvicorn --factory sako.service:create_app`` (settings from the
environment). See docs/service.md.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import AsyncIterator, Optional

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import sako

from . import errors
from .metrics import Metrics
from .middleware import BodyLimitMiddleware, JsonBodyMiddleware
from .retrainer import Retrainer
from .routers import (backup, catalog, compact, events, operations, policy, recommendations,
                      users, versions)
from .settings import DEFAULT_DB, Settings

log = logging.getLogger("sako.service")


def create_app(settings: Optional[Settings] = None, engine: Optional[sako.Engine] = None) -> FastAPI:
    """Build the FastAPI application.

    Parameters
    ----------
    settings : Settings, optional
        The configuration; by default read from the ``SAKO_*`` environment variables.
    engine : Engine, optional
        Serve this engine (the caller owns it and closes it). Otherwise the app opens
        ``settings.db`` at startup and closes it at shutdown.

    Raises
    ------
    RuntimeError
        No API key is configured and ``settings.dev`` is off.
    OSError, ValueError
        ``settings.keys_file`` cannot be read or is malformed.
    """
    settings = settings if settings is not None else Settings()
    keys = settings.keyring()
    if not len(keys) and not settings.dev:
        raise RuntimeError("no API key configured: set SAKO_CLIENT_KEYS / SAKO_ADMIN_KEYS or "
                           "--keys-file, or run with --dev")
    owned = engine is None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.stopping = False
        if app.state.engine is None and settings.replicate:
            # A replica: its own file, filled only from the log (no demo seeding, which
            # would write outside it); retrains are decided by the lease holder.
            from sako.replication import Replica, snapshot

            from .replicated import ReplicatedEngine

            try:  # left behind by the stream's retention: start from a snapshot
                restored = await run_in_threadpool(
                    snapshot.prepare, settings.replicate.split(","), settings.db,
                    settings.replicate_stream)
                if restored is not None:
                    log.info("replica %s restored from the snapshot at %d", settings.db, restored)
            except Exception as exc:  # NATS unreachable: follow what the file holds
                log.warning("replica %s: no snapshot check (%s)", settings.db, exc)
            options = settings.engine_options()
            if "durability" not in settings.model_fields_set:
                # the stream is the durable record: no fsync per batch (docs/operations.md)
                options["durability"] = "normal"
            local = await run_in_threadpool(open_default_engine, settings.db, False, options)
            replica = Replica(local, settings.replicate, stream=settings.replicate_stream,
                              replicas=settings.replicate_replicas or None,
                              retrain_check_seconds=(settings.policy_check_seconds
                                                     if settings.auto_retrain else 0),
                              compact=({"keep_days": settings.compact_keep_days,
                                        "keep_events": settings.compact_keep_events}
                                       if settings.auto_compact else None))
            app.state.replica = replica.start()
            app.state.engine = ReplicatedEngine(local, replica, settings.replicate_wait_seconds)
        if app.state.engine is None:
            app.state.engine = await run_in_threadpool(
                open_default_engine, settings.db, settings.demo, settings.engine_options())
        if settings.auto_retrain and app.state.replica is None:
            app.state.retrainer.start()
        try:
            yield
        finally:
            app.state.stopping = True  # /readyz answers 503 from here on
            await app.state.retrainer.stop()
            if app.state.replica is not None:
                await run_in_threadpool(app.state.replica.stop)
            if owned and app.state.engine is not None:
                await run_in_threadpool(app.state.engine.close)
                log.info("engine closed")

    app = FastAPI(title="sako", version=sako.__version__,
                  description="Grocery recommendations by Thompson sampling with category "
                              "priors (libsako). Send the API key in the X-API-Key header.",
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.replica = None
    app.state.stopping = False
    app.state.keys = keys
    app.state.dev = settings.dev
    app.state.recommender = recommendations.Recommender(settings.inline_recommend)
    app.state.metrics = (Metrics(lambda: getattr(app.state, "engine", None))
                         if settings.metrics else None)
    app.state.retrainer = Retrainer(
        lambda: getattr(app.state, "engine", None), settings.policy_check_seconds,
        app.state.metrics.observe_retrain if app.state.metrics is not None else None,
        compact=({"keep_days": settings.compact_keep_days,
                  "keep_events": settings.compact_keep_events}
                 if settings.auto_compact else None),
        on_compact=(app.state.metrics.observe_compaction
                    if app.state.metrics is not None else None))

    errors.install(app)
    app.include_router(recommendations.router)
    app.include_router(events.router)
    app.include_router(catalog.router)
    app.include_router(users.router)
    app.include_router(operations.router)
    app.include_router(policy.router)
    app.include_router(backup.router)
    app.include_router(compact.router)
    app.include_router(versions.router)
    if app.state.metrics is not None:
        app.include_router(operations.metrics_router)

    app.add_middleware(JsonBodyMiddleware)  # inside the body limit: sees bounded bodies
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if app.state.metrics is not None:
        app.add_middleware(app.state.metrics.middleware)
    return app


def open_default_engine(db_path: Optional[str] = None, seed_demo: bool = True,
                        options: Optional[dict] = None) -> sako.Engine:
    """Open ``db_path`` (default ``./var/sako.db``); a new file is seeded with the demo
    catalog and a simulated history when ``seed_demo``."""
    path = db_path or DEFAULT_DB
    fresh = path != ":memory:" and not os.path.exists(path)
    if fresh and os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    e = sako.Engine(path, **(options or {}))
    if (fresh or path == ":memory:") and seed_demo and e.stats().n_items == 0:
        from ..demo import seed_engine

        log.info("seeding %s with the demo catalog", path)
        seed_engine(e)
    return e
