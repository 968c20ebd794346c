"""The handle every store function is given: a transaction (`Tx`) or a reader (`Reader`).

Statements use `?` (positional) or `:name` (named) parameters and the SQL both SQLite and
PostgreSQL speak; the PostgreSQL backend rewrites the parameters as `$n`. Where the two
dialects differ (JSON, turning stored time text into numbers), a statement takes the
fragment from its handle's `dialect` (`Dialect`), so each difference is written once, here.
Rows come back as `Row`: by column name or by position (sqlite3.Row, asyncpg's Record).

A `Database` (hub/db.py's SQLite one, hub/store/postgres.py's PostgreSQL one) is a `Reader`
that sees committed data, and opens a `Tx` with `async with db.transaction() as tx:`, which
commits at the end of the block and rolls back if it raises. Both keep times as iso() text
(the same order in both), booleans as 0/1 integers, and ids from `RETURNING`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

Params = Sequence[Any] | Mapping[str, Any]
T = TypeVar("T")


class DatabaseError(Exception):
    """The hub's database failed (either backend): what a handler or a command reports."""


class DatabaseDamaged(DatabaseError):
    """The hub's database is missing, emptied or damaged while the hub held data: the hub does
    not start (a fresh empty hub would silently forget every account and device)."""


class DatabaseUnreachable(DatabaseError):
    """The database server does not answer or refuses the hub (PostgreSQL)."""


def redacted(url: str) -> str:
    """The database URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Dialect:
    """The SQL fragments SQLite and PostgreSQL spell differently."""

    name: Literal["sqlite", "postgres"]

    def json_number(self, column: str, key: str) -> str:
        """The number at top-level `key` of the JSON text in `column` (NULL if absent)."""
        if self.name == "sqlite":
            return f"json_extract({column}, '$.{key}')"
        return f"CAST(CAST({column} AS jsonb) ->> '{key}' AS DOUBLE PRECISION)"

    def json_values(self, param: str, sql_type: Literal["TEXT", "BIGINT"]) -> str:
        """A subquery of the values of a JSON array bound as text to parameter `param`
        (`:name`): one statement whatever the list's length."""
        if self.name == "sqlite":
            return f"SELECT value FROM json_each({param})"
        return (
            f"SELECT CAST(value AS {sql_type}) FROM json_array_elements_text(CAST({param} AS json))"
        )

    def epoch_seconds(self, column: str) -> str:
        """Whole UTC seconds since the epoch of iso() text in `column`."""
        if self.name == "sqlite":
            return f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER)"
        return f"CAST(EXTRACT(EPOCH FROM CAST(substr({column}, 1, 19) AS timestamp)) AS BIGINT)"

    def iso_from_epoch_us(self, param: str) -> str:
        """iso()'s text of the epoch_us bound to `param` (a `?N` or `:name`), made by the
        database: where a statement stores many times (report ingest), SQLite writes the text
        on the writer's thread in C instead of iso() on the event loop, at under half the
        cost per time. SQLite's / and % round towards zero; seconds and fraction are floored
        here. SQLite's datetime() with its space made a T costs a fifth less than strftime()
        with a pattern (the pattern is parsed for every row). PostgreSQL's interval arithmetic
        is exact either way."""
        us = param
        if self.name == "sqlite":
            return (
                f"replace(datetime({us} / 1000000 - ({us} % 1000000 < 0), 'unixepoch'), ' ', 'T')"
                f" || printf('.%06d+00:00', ({us} % 1000000 + 1000000) % 1000000)"
            )
        big = f"CAST({us} AS BIGINT)"
        return (
            f"to_char(TIMESTAMP '1970-01-01' + ({big} / 1000000) * INTERVAL '1 second'"
            f" + ({big} % 1000000) * INTERVAL '1 microsecond', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
            " || '+00:00'"
        )


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgres")


class Row(Protocol):
    """One result row: `row["column"]` or `row[0]`."""

    def __getitem__(self, key: int | str, /) -> Any: ...


class Reader(Protocol):
    #: How this backend spells what the two do not share.
    dialect: Dialect

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

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter set, pipelined where the backend can (so it
        does not count what changed: where a count matters, `execute` each row)."""
        ...


class Database(Reader, Protocol):
    """The hub's database, whichever backend: reads see committed data."""

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction; it rolls back on any exception, so bad input changes nothing."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write statement in its own transaction; returns the changed row count."""
        ...

    async def write(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """`await work(tx)` in a transaction of its own, returning once committed; if it
        raises, its changes are rolled back and the exception is raised here. `work` awaits
        nothing but its statements: SQLite runs it on the writer's thread in one hop and
        commits it together with the writes queued behind it (group commit)."""
        ...

    async def close(self) -> None: ...


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
