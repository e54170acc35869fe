"""The catalog: PUT /v1/categories and /v1/items (admin), GET an item or a prior."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

import sako

from ..dependencies import Admin, Client, EngineDep
from ..errors import ApiError
from ..schemas import (ADMIN_RESPONSES, NOT_FOUND_RESPONSES, CategoriesRequest, ItemOut,
                       ItemsRequest, PriorOut, UpsertResponse, item_out)

router = APIRouter(tags=["catalog"])


def _not_found(exc: sako.NotFound, field: str) -> ApiError:
    """An id named in a body that the engine does not know: the request is invalid."""
    return ApiError(422, "not_found", str(exc), [{"field": field, "reason": str(exc)}])


@router.put("/v1/categories", response_model=UpsertResponse, responses=ADMIN_RESPONSES,
            dependencies=[Admin], summary="Insert or update categories (admin)")
def put_categories(req: CategoriesRequest, e: EngineDep) -> Any:
    cats = req.categories
    try:
        e.upsert_categories_arrays([c.id for c in cats], [c.parent_id or 0 for c in cats],
                                   [c.name for c in cats])
    except sako.NotFound as exc:
        raise _not_found(exc, "parent_id") from None
    return {"upserted": len(cats)}


@router.put("/v1/items", response_model=UpsertResponse, responses=ADMIN_RESPONSES,
            dependencies=[Admin], summary="Insert or update items (admin)")
def put_items(req: ItemsRequest, e: EngineDep) -> Any:
    its = req.items
    try:
        e.upsert_items_arrays([i.id for i in its], [i.category_id or 0 for i in its],
                              [1 if i.active else 0 for i in its], [i.added_at for i in its])
    except sako.NotFound as exc:
        raise _not_found(exc, "category_id") from None
    return {"upserted": len(its)}


@router.get("/v1/items/{item_id}", response_model=ItemOut, responses=NOT_FOUND_RESPONSES,
            dependencies=[Client], summary="An item's evidence and posterior")
def get_item(item_id: Annotated[int, Path(ge=1, le=sako.ID_MAX)], e: EngineDep) -> Any:
    return item_out(e.item(item_id))


@router.get("/v1/categories/{category_id}/prior", response_model=PriorOut,
            responses=NOT_FOUND_RESPONSES, dependencies=[Client],
            summary="A category's prior mean")
def get_prior(category_id: Annotated[int, Path(ge=0, le=sako.ID_MAX)], e: EngineDep) -> Any:
    return {"category_id": category_id, "prior_mean": e.category_prior(category_id)}
