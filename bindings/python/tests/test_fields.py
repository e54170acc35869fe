"""The one field table (sako._engine.FIELDS) against the C structs of include/sako.h:
a field added to, removed from or retyped in a struct fails here, by name."""
from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
import pytest

import sako
from sako._engine import DTYPES, FIELDS

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "include",
                      "sako.h")
C_TYPES = {"int64_t": "i8", "uint64_t": "u8", "double": "f8", "int": "i4", "unsigned": "u4",
           "uint32_t": "u4",
           "const char *": np.dtype(np.uintp).str[1:]}


def header_structs() -> dict:
    """{struct: [(field, numpy type)]} parsed from the typedef'd structs of sako.h."""
    with open(HEADER, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    out = {}
    for name, body, alias in re.findall(r"typedef struct (\w+) \{(.*?)\} (\w+);", text, re.S):
        fields = []
        for decl in filter(None, (d.strip() for d in body.split(";"))):
            m = re.match(r"((?:const )?\w+(?: \*)?)\s*(.*)", decl)
            ctype, names = m.group(1), m.group(2)
            if names.startswith("*"):
                ctype, names = ctype + " *", names[1:]
            for n in names.split(","):
                n = n.strip()
                arr = re.match(r"(\w+)\[(\w+)\]$", n)
                if arr and ctype == "char":  # a char array: numpy bytes of its length
                    size = arr.group(2)
                    size = int(size) if size.isdigit() else int(getattr(sako._sako, size))
                    fields.append((arr.group(1), f"S{size}"))
                elif ctype in out:  # a struct of sako.h nested by value
                    fields.append((n, np.dtype([f for f in out[ctype]], align=True).str[1:]))
                else:
                    fields.append((n, C_TYPES.get(ctype, ctype)))
        out[alias] = fields
    return out


STRUCTS = header_structs()


@pytest.mark.parametrize("struct", sorted(FIELDS))
def test_table_matches_header(struct):
    want = STRUCTS[struct]
    got = [(f[0], np.dtype(f[1]).str[1:]) for f in FIELDS[struct]]
    missing = [n for n, _ in want if n not in dict(got)]
    extra = [n for n, _ in got if n not in dict(want)]
    assert not missing, f"{struct}: add {missing} to sako._engine.FIELDS"
    assert not extra, f"{struct}: {extra} no longer in sako.h"
    assert got == want, f"{struct}: order or types differ from sako.h"


def test_every_struct_the_binding_moves_is_in_the_table():
    # sako_query crosses as sakopy_recommend()'s arguments, sako_csr as sakopy_mf_fit()'s
    # arrays; sako_engine is opaque
    assert set(STRUCTS) - set(FIELDS) == {"sako_query", "sako_csr"}


def test_records_follow_the_table():
    for cls, struct in ((sako.ItemInfo, "sako_item_info"), (sako.Stats, "sako_stats"),
                        (sako.UserInfo, "sako_user_info"), (sako.UserItem, "sako_user_item")):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
        assert [f.name for f in dataclasses.fields(cls)] == [f[0] for f in FIELDS[struct]]
    assert set(sako.default_options()) == {f[0] for f in FIELDS["sako_options"]} - {"version"}


def test_structs_round_trip(engine):
    """Layouts agree with C: what goes in as structs comes back through other structs."""
    engine.upsert_items_arrays([900], [3], [False], [1_700_000_000_123])
    engine.update_arrays([4], [900], ["cart"], [1_700_000_000_456], recommendation_ids=[77])
    info = engine.item(900)
    assert (info.id, info.category_id, info.active, info.added_at) == (900, 3, False,
                                                                         1_700_000_000_123)
    assert (info.carts, info.last_event_at) == (1, 1_700_000_000_456)
    assert DTYPES["sako_rec"].itemsize == 24 and DTYPES["sako_event"].itemsize == 40


def test_recommendation_id_is_the_one_name(engine):
    ev = sako.Event(1, 100, "click", 0, recommendation_id=5)
    assert ev.recommendation_id == 5
    assert "recommendation_id" in ev._fields and "rec_id" not in ev._fields
    engine.update([ev, {"user_id": 2, "item_id": 101, "type": "click", "recommendation_id": 6}])
    engine.update_arrays([3], [102], [1], recommendation_ids=[7])
    assert engine.stats().n_events == 3


def test_rec_id_is_deprecated(engine):
    with pytest.warns(DeprecationWarning, match="recommendation_id"):
        ev = sako.Event(1, 100, "click", rec_id=5)
    assert ev.recommendation_id == 5
    with pytest.warns(DeprecationWarning):
        assert ev.rec_id == 5
    with pytest.warns(DeprecationWarning):
        engine.update([{"user_id": 2, "item_id": 101, "type": "click", "rec_id": 6}])
    with pytest.warns(DeprecationWarning):
        engine.update_arrays([3], [102], [1], rec_ids=[7])
    with pytest.raises(sako.InvalidArgument), pytest.warns(DeprecationWarning):
        engine.update_arrays([3], [102], [1], [0], [7], rec_ids=[7])
    assert engine.stats().n_events == 2
