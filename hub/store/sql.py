"""The handle every store function is given: a transaction (`Tx`) or a reader (`Reader`).

Statements use `?` (positional) or `:name` (named) parameters and the SQL both SQLite and
PostgreSQL speak where that costs nothing; a backend translates the rest. Rows come back as
`Row`: by column name or by position (sqlite3.Row today, asyncpg's Record alike).

`hub.db.Database` is a `Reader` (on its own read connection, which sees committed data) and
opens a `Tx` with `async with db.transaction() as tx:`, which commits at the end of the block
and rolls back if it raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

Params = Sequence[Any] | Mapping[str, Any]


class Row(Protocol):
    """One result row: `row["column"]` or `row[0]`."""

    def __getitem__(self, key: int | str, /) -> Any: ...


class Reader(Protocol):
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row, or None."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> Sequence[Row]: ...

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row; None when there is no row."""
        ...


class Tx(Reader, Protocol):
    """Reads and writes inside one transaction: each read sees the writes before it."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement once per parameter set; returns the rows changed in all."""
        ...


def after_key(columns: tuple[str, ...], *, descending: bool) -> str:
    """The condition 'comes after the cursor row in this order', on named parameters
    :before0, :before1, … (`key_params`): a row-value comparison, served from the index."""
    names = ", ".join(f":before{i}" for i in range(len(columns)))
    return f"({', '.join(columns)}) {'<' if descending else '>'} ({names})"


def key_params(key: Sequence[Any]) -> dict[str, Any]:
    return {f"before{i}": value for i, value in enumerate(key)}


def marks(count: int) -> str:
    """`?, ?, …` for an `IN (…)` list of `count` positional parameters."""
    return ", ".join("?" * count)


#: How many values one `IN (…)` list binds at most (SQLite caps the parameters of a statement).
CHUNK = 500


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
