"""The retrain policy: read it with its status and the service's last retrain, change it
(admin)."""
from __future__ import annotations

from typing import Any, Dict

from fastapi import APIRouter, Request

import sako

from ..dependencies import Admin, EngineDep
from ..errors import ApiError
from ..schemas import ADMIN_RESPONSES, PolicyIn, PolicyResponse

router = APIRouter(tags=["model"])


def policy_response(request: Request, e: sako.Engine) -> Dict[str, Any]:
    snap = request.app.state.retrainer.snapshot()
    return {
        "policy": e.policy.as_dict(),
        "status": e.retrain_due().as_dict(),
        "last_retrain": snap["last_retrain"],
        "running": snap["running"],
        "background": {"enabled": snap["background"], "check_seconds": snap["check_seconds"],
                       "checks": snap["checks"], "last_check_at": snap["last_check_at"],
                       "last_check_error": snap["last_check_error"],
                       "auto_compact": snap["auto_compact"],
                       "last_compaction": snap["last_compaction"]},
    }


@router.get("/v1/policy", response_model=PolicyResponse, responses=ADMIN_RESPONSES,
            dependencies=[Admin], summary="The retrain policy, whether a retrain is due, and "
                                          "the last retrain (admin)")
def get_policy(request: Request, e: EngineDep) -> Any:
    return policy_response(request, e)


@router.put("/v1/policy", response_model=PolicyResponse, responses=ADMIN_RESPONSES,
            dependencies=[Admin], summary="Change the retrain policy (admin)")
def put_policy(body: PolicyIn, request: Request, e: EngineDep) -> Any:
    # the engine validates the merged policy whole and stores it
    try:
        e.policy = body.model_dump(exclude_none=True)
    except sako.InvalidArgument as exc:
        # "policy: <field> <value> is not in ...": name the field like a validation error
        words = str(exc).split()
        field = words[1] if len(words) > 1 and words[1] in PolicyIn.model_fields else None
        raise ApiError(422, "invalid_policy", str(exc),
                       [{"index": None, "field": field, "reason": str(exc)}]) from None
    return policy_response(request, e)
