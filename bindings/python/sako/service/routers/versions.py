"""Model versions (admin): list them, read one, activate one (roll back), pin one."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path

import sako

from ..dependencies import Admin, EngineDep
from ..errors import ApiError
from ..schemas import ADMIN_RESPONSES, ErrorBody, PinIn, VersionOut, VersionsOut

router = APIRouter(tags=["model"])

_RESPONSES = {**ADMIN_RESPONSES, 404: {"model": ErrorBody}}
VersionPath = Path(..., ge=1, le=sako.ID_MAX, description="the version number (from 1)")


def _get(e: sako.Engine, n: int) -> sako.VersionInfo:
    try:
        return e.version(n)
    except sako.NotFound:
        raise ApiError(404, "unknown_version", f"no model version {n} (GET /v1/versions lists "
                                               f"them; old ones go by keep_versions)") from None


@router.get("/v1/versions", response_model=VersionsOut, responses=ADMIN_RESPONSES,
            dependencies=[Admin], summary="The stored model versions, newest first (admin)")
def list_versions(e: EngineDep) -> Any:
    versions = e.versions()
    active = next((v.version for v in versions if v.status == "active"), None)
    return {"active": active, "versions": [v.as_dict() for v in versions]}


@router.get("/v1/versions/{n}", response_model=VersionOut, responses=_RESPONSES,
            dependencies=[Admin], summary="One model version (admin)")
def get_version(e: EngineDep, n: int = VersionPath) -> Any:
    return _get(e, n).as_dict()


@router.post("/v1/versions/{n}/activate", response_model=VersionOut,
             responses={**_RESPONSES, 409: {"model": ErrorBody}}, dependencies=[Admin],
             summary="Serve this version (a rollback, or a version a pin kept back) (admin)")
def activate_version(e: EngineDep, n: int = VersionPath) -> Any:
    info = _get(e, n)
    if info.status == "rejected":
        raise ApiError(409, "version_rejected", f"model version {n} was rejected by its gate "
                                                f"({info.verdict}): it is never activated")
    try:
        return e.activate(n).as_dict()
    except sako.Corrupt as exc:
        raise ApiError(409, "version_damaged", f"model version {n} cannot be activated: "
                                               f"{exc}") from None


@router.put("/v1/versions/{n}/pin", response_model=VersionOut, responses=_RESPONSES,
            dependencies=[Admin], summary="Pin or unpin a version (admin)")
def pin_version(body: PinIn, e: EngineDep, n: int = VersionPath) -> Any:
    _get(e, n)
    return e.pin(n, body.pinned).as_dict()
