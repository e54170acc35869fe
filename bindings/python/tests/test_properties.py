"""Hypothesis: whatever Python passes, the binding answers with a result or a clean
exception (SakoError / TypeError), never a crash or an OverflowError."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sako

from conftest import ITEMS, fill

_engine = fill(sako.open(None, seed=1))
N_ITEMS = len(ITEMS)
big_ints = st.one_of(st.integers(-5, 200), st.integers(-(2**70), 2**70))
dtypes = st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64,
                          np.float32, np.float64])
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(user=big_ints, k=st.one_of(st.integers(-3, 1100), big_ints),
       category=st.one_of(st.none(), big_ints),
       exclude=st.lists(big_ints, max_size=20), as_array=st.booleans(), dtype=dtypes)
def test_recommend_never_crashes(user, k, category, exclude, as_array, dtype):
    ex = exclude
    if as_array:
        with np.errstate(all="ignore"):
            try:
                ex = np.array(exclude).astype(dtype)
            except OverflowError:
                ex = np.array(exclude, dtype=object)
    try:
        recs = _engine.recommend(user, k=k, category=category, exclude=ex)
    except (sako.SakoError, TypeError):
        return
    assert len(recs) <= min(max(k, 0), N_ITEMS)
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    ids, scores = _engine.recommend_arrays(user, k=k, category=category, exclude=ex)
    assert len(ids) == len(recs) and ids.dtype == np.int64


@SETTINGS
@given(data=st.lists(st.tuples(big_ints, st.sampled_from([i for i, _ in ITEMS] + [0, 5, 2**60]),
                               st.one_of(st.integers(-2, 5), st.sampled_from(["click", "cart", "nope"])),
                               st.one_of(st.just(0), big_ints)), max_size=8),
       strided=st.booleans())
def test_update_is_all_or_nothing(data, strided):
    before = _engine.stats().n_events
    users = np.array([d[0] for d in data], dtype=object)
    items = np.array([d[1] for d in data], dtype=object)
    types = [d[2] for d in data]
    times = np.array([d[3] for d in data], dtype=object)
    try:
        n = _engine.update_arrays(users, items, np.array(types, dtype=object), times)
    except (sako.SakoError, TypeError):
        assert _engine.stats().n_events == before
        return
    assert _engine.stats().n_events == before + n == before + len(data)


@SETTINGS
@given(ids=st.lists(big_ints, max_size=6), parents=st.lists(big_ints, max_size=6),
       names=st.lists(st.one_of(st.none(), st.text(max_size=300)), max_size=6))
def test_categories_never_crash(ids, parents, names):
    m = min(len(ids), len(parents), len(names))
    try:
        _engine.upsert_categories(list(zip(ids[:m], parents[:m], names[:m])))
    except (sako.SakoError, TypeError):
        pass
    assert _engine.stats().n_items >= N_ITEMS
