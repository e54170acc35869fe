"""Docs that cannot drift: every table of option defaults and limits in docs/ is
compared with the values of the linked library."""
from __future__ import annotations

import os
import re

import pytest

import sako
from sako import _sako
from sako._engine import _ENUM_OPTIONS

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs")


def read(name: str) -> str:
    with open(os.path.join(DOCS, name), encoding="utf-8") as f:
        return f.read()


def table(text: str, header: str) -> list:
    """The rows (lists of cells) of the markdown table whose header row starts with
    `header`."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    return rows


def number(cell: str) -> float:
    """The first number of a cell: "1,000", "0 (clock)", "20.0", "2^53 − 1"."""
    m = re.match(r"\s*(\d[\d,]*(?:\.\d+)?)(?:\^(\d+)\s*[−-]\s*1)?", cell)
    assert m, f"no number in {cell!r}"
    if m.group(2):
        return int(m.group(1)) ** int(m.group(2)) - 1
    return float(m.group(1).replace(",", ""))


def enum_value(option: str, cell: str) -> int:
    """`"category"` (python.md) or `SAKO_PRIOR_CATEGORY` (c-api.md) as a number."""
    word = cell.strip("`\"").split("`")[0].strip('"')
    if word.startswith("SAKO_"):
        return getattr(_sako, word)
    return _ENUM_OPTIONS[option][word]


def check_defaults(rows: list, doc: str) -> set:
    defaults = sako.default_options()
    seen = set()
    for row in rows:
        names = re.findall(r"`(\w+)`", row[0])
        values = [v.strip() for v in row[1].split(",")] if len(names) > 1 else [row[1]]
        assert len(values) == len(names), f"{doc}: row {row[0]} has {len(values)} defaults"
        for name, cell in zip(names, values):
            assert name in defaults, f"{doc}: {name} is not an option of the library"
            want = defaults[name]
            got = enum_value(name, cell) if name in _ENUM_OPTIONS else number(cell)
            assert got == want, f"{doc}: {name} default documented as {cell}, library has {want}"
            seen.add(name)
    return seen


def test_python_md_option_defaults():
    seen = check_defaults(table(read("python.md"), "| option | default |"), "python.md")
    assert seen == set(sako.default_options()), "python.md: options missing from the table"


def test_c_api_md_option_defaults():
    seen = check_defaults(table(read("c-api.md"), "| field | default |"), "c-api.md")
    assert seen == set(sako.default_options()), "c-api.md: options missing from the table"


def test_c_api_md_limits():
    rows = table(read("c-api.md"), "| macro | value |")
    seen = {}
    for name, cell in rows:
        const = name.strip("`")
        seen[const] = number(cell)
        assert seen[const] == getattr(_sako, const), f"c-api.md: {const} documented as {cell}"
    assert {k for k in vars(_sako) if k.startswith(("SAKO_MAX_", "SAKO_ID_MAX", "SAKO_TIME_MAX"))} == set(seen)


def test_python_md_limits():
    text = read("python.md")
    section = text[text.index("## Limits"):]
    found = dict(re.findall(r"`sako\.(\w+)` \(([\d,]+)", section))
    found["ID_MAX"] = re.search(r"sako\.ID_MAX = ([^`\]]+)", section).group(1)
    assert set(found) == {"MAX_K", "MAX_BATCH", "MAX_EXCLUDE", "MAX_NAME", "ID_MAX"}
    for name, cell in found.items():
        got = number(cell.replace("**", "^"))
        assert got == getattr(sako, name), f"python.md: {name} documented as {cell}"


@pytest.mark.parametrize("phrase,const", [("k >", "SAKO_MAX_K"), ("lists >", "SAKO_MAX_EXCLUDE"),
                                          ("batches >", "SAKO_MAX_BATCH")])
def test_architecture_md_limits(phrase, const):
    m = re.search(re.escape(phrase) + r" ([\d,]+)", read("architecture.md"))
    assert m, f"architecture.md: no '{phrase} N'"
    assert number(m.group(1)) == getattr(_sako, const)
