"""What routes depend on: the engine (from ``app.state``) and the caller's role from
the ``X-API-Key`` header. All ``async``: a dependency that is a plain ``def`` would cost
a threadpool hop per request."""
from __future__ import annotations

from typing import Annotated, Optional

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

import sako

from .errors import ApiError
from .keys import ADMIN

api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="client or admin key")


async def get_engine(request: Request) -> sako.Engine:
    """The engine the app serves; Misuse (503) while none is open."""
    e = request.app.state.engine
    if e is None:
        raise sako.Misuse("engine is not open")
    return e


def _role(request: Request, key: Optional[str]) -> str:
    state = request.app.state
    if state.dev and not len(state.keys):
        return ADMIN
    role = state.keys.role(key)
    if role is None:
        raise ApiError(401, "unauthorized", "missing or unknown API key (X-API-Key)",
                       headers={"WWW-Authenticate": "ApiKey"})
    return role


async def require_client(request: Request, key: Annotated[Optional[str], Depends(api_key)]) -> str:
    """A client or admin key; 401 otherwise."""
    return _role(request, key)


async def require_admin(request: Request, key: Annotated[Optional[str], Depends(api_key)]) -> str:
    """An admin key; 401 without a valid key, 403 with a client key."""
    role = _role(request, key)
    if role != ADMIN:
        raise ApiError(403, "forbidden", "this route needs an admin key")
    return role


EngineDep = Annotated[sako.Engine, Depends(get_engine)]
Client = Depends(require_client)
Admin = Depends(require_admin)
