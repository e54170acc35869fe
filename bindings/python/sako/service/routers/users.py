"""A user's personal state: GET /v1/users/{id} and one product of their history."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

import sako

from ..dependencies import Client, EngineDep
from ..schemas import NOT_FOUND_RESPONSES, UserItemOut, UserOut, record_out

router = APIRouter(tags=["users"])

UserId = Annotated[int, Path(ge=1, le=sako.ID_MAX)]
ItemId = Annotated[int, Path(ge=1, le=sako.ID_MAX)]


@router.get("/v1/users/{user_id}", response_model=UserOut, responses=NOT_FOUND_RESPONSES,
            dependencies=[Client], summary="A user's personal state (404: no event of the user)")
def get_user(user_id: UserId, e: EngineDep) -> Any:
    return record_out(e.user(user_id))


@router.get("/v1/users/{user_id}/items/{item_id}", response_model=UserItemOut,
            responses=NOT_FOUND_RESPONSES, dependencies=[Client],
            summary="One product of a user's purchase history (404: never bought)")
def get_user_item(user_id: UserId, item_id: ItemId, e: EngineDep) -> Any:
    return record_out(e.user_item(user_id, item_id))
