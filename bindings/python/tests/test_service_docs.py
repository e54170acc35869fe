"""docs/service.md cannot drift: its tables of settings, limits and engine-error statuses
are compared with the values the service really uses."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from typing import Dict, List

import pytest

import sako

pytest.importorskip("pydantic_settings")
from sako.service import errors, schemas  # noqa: E402
from sako.service.settings import Settings  # noqa: E402

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "service.md")


def table(header: str) -> List[List[str]]:
    """The rows (cells, stripped) of the markdown table whose header row starts with
    ``header``."""
    lines = open(DOC, encoding="utf-8").read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def code(cell: str) -> str:
    m = re.fullmatch(r"`([^`]*)`", cell)
    assert m, f"expected a `code` cell, got {cell!r}"
    return m.group(1)


def shown(value: object) -> str:
    """A default as the docs write it: strings bare, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def test_settings_table_matches_settings():
    rows = {code(r[0]): r for r in table("| environment | flag | default |")}
    fields = Settings.model_fields
    assert set(rows) == {f"SAKO_{name.upper()}" for name in fields}
    for name, field in fields.items():
        env, flag, default = rows[f"SAKO_{name.upper()}"][:3]
        default_value = field.get_default(call_default_factory=True)
        assert code(default) == shown(default_value), name
        if flag == "—":
            assert name in ("client_keys", "admin_keys"), f"{name} should be a flag"
        else:
            assert code(flag) == "--" + name.replace("_", "-"), name


def test_settings_flags_exist_on_the_command_line():
    from sako import cli

    serve = cli.build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore
    flags = {o for a in serve._actions for o in a.option_strings}
    for row in table("| environment | flag | default |"):
        if row[1] != "—":
            assert code(row[1]) in flags
    assert "--client-keys" not in flags and "--admin-keys" not in flags
    assert "--no-demo" in flags


def test_limits_table_matches_the_library():
    assert sako.ID_MAX == 2**53 - 1
    last = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=schemas.TIME_MAX_MS)
    mib = Settings.model_fields["max_body_bytes"].default
    assert mib % 2**20 == 0
    expected: Dict[str, str] = {
        "request body": f"{mib // 2**20} MiB",
        "entries per batch (events, categories, items)": f"{schemas.MAX_BATCH_HTTP:,}",
        "`k`": f"0..{sako.MAX_K}",
        "`exclude`, `recent`": f"{sako.MAX_EXCLUDE:,} ids each",
        "ids": "[1, 2^53−1]",
        "category name": f"{sako.MAX_NAME} UTF-8 bytes",
        "time, added_at": f"0..{last:%Y-%m-%dT%H:%M:%S}.{last.microsecond // 1000:03d} in unix ms",
    }
    got = {r[0]: r[1] for r in table("| limit | value | over it |")}
    assert got == expected


def test_engine_error_table_matches_errors_py():
    rows = {code(r[0]): (int(r[1]), code(r[2])) for r in table("| engine error | status | `error` |")}
    assert set(rows) == {cls.__name__ for cls in sako.ERRORS.values()}
    for name, (status, error) in rows.items():
        cls = getattr(sako, name)
        assert errors.STATUS_OF_CODE[cls.code] == (status, error), name
