"""Shared fixtures: small engines and service apps."""
from __future__ import annotations

import os
import sys

import pytest

import sako

HERE = os.path.dirname(os.path.abspath(__file__))

CATEGORIES = [(1, 0, "Dairy"), (2, 1, "Yoghurt"), (3, 1, "Cheese"), (4, 0, "Bakery"), (5, 4, "Bread")]
ITEMS = [(100 + i, (2, 3, 5)[i % 3]) for i in range(30)]


def fill(engine: sako.Engine) -> sako.Engine:
    engine.upsert_categories(CATEGORIES)
    engine.upsert_items(ITEMS)
    return engine


@pytest.fixture
def engine():
    with sako.open(None, seed=7) as e:
        yield fill(e)


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "sako.db")
