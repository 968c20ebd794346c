"""The hub's layers: every query lives in hub/store/ (and the SQLite connection, its migrations
and damage checks in hub/db.py); no handler, page or service module holds SQL."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HUB = Path(__file__).resolve().parent.parent / "hub"
#: Where SQL may be written.
ALLOWED = ("store/", "db.py")

SQL = [
    re.compile(p)
    for p in (
        r"\bSELECT\b[\s\S]*\bFROM\b",
        r"\bINSERT\s+(OR\s+[A-Z]+\s+)?INTO\b",
        r"\bUPDATE\s+\w+(\s+AS\s+\w+)?\s+SET\b",
        r"\bDELETE\s+FROM\b",
        r"\b(CREATE|DROP|ALTER)\s+(TABLE|INDEX|UNIQUE\s+INDEX|TRIGGER|VIEW)\b",
        r"\bPRAGMA\s+\w+",
        r"\bBEGIN\s+IMMEDIATE\b",
        # Fragments: a condition on a named or positional parameter.
        r"\b(WHERE|AND|OR|ON)\s+[a-z_]+(\.[a-z_]+)?\s*(=|<|>|<=|>=|!=|IN\b|IS\b)",
        r"(=|<|>|\bIN)\s*\(?\s*(:[a-z_]\w*|\?)",
    )
]


def _texts(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal of a module, an f-string's parts joined with `{}` where a value
    goes in, so a statement built with f-strings is seen whole."""
    found: list[tuple[int, str]] = []
    inside_fstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                inside_fstrings.add(id(value))
                parts.append(value.value if isinstance(value, ast.Constant) else "{}")
            found.append((node.lineno, "".join(str(p) for p in parts)))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in inside_fstrings
        ):
            found.append((node.lineno, node.value))
    return found


def sql_in(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal in `source` that reads as SQL."""
    return sorted(
        (line, text)
        for line, text in _texts(ast.parse(source))
        if any(pattern.search(text) for pattern in SQL)
    )


def test_the_scan_sees_sql_however_it_is_written() -> None:
    source = """
rows = await db.fetchall("SELECT id FROM devices WHERE commune = ?", (code,))
await conn.execute(f"UPDATE devices SET last_seen = ? WHERE id IN ({marks})", ids)
await conn.execute("INSERT OR IGNORE INTO media (sha256) VALUES (?)", (sha,))
await conn.execute(
    "DELETE FROM sessions"
    " WHERE user_id = ?", (user_id,)
)
SCOPE = " AND d.commune = :commune"
cond = f"{table}.unit = :scope"
"""
    assert [line for line, _ in sql_in(source)] == [2, 3, 4, 6, 9, 10]
    assert sql_in('"""Select a commune from the list; the update sets its windows."""') == []


def test_sql_is_written_only_in_the_store() -> None:
    offenders = []
    for path in sorted(HUB.rglob("*.py")):
        relative = path.relative_to(HUB).as_posix()
        if relative.startswith(ALLOWED):
            continue
        for line, text in sql_in(path.read_text(encoding="utf-8")):
            offenders.append(f"hub/{relative}:{line}: {text.strip()[:80]!r}")
    assert offenders == [], "SQL outside hub/store/:\n" + "\n".join(offenders)
