"""A refused form field, explained in the reader's language: one function for every form.

Pydantic describes a refusal by a type ("string_too_short") and its limits ({"min_length":
2}); its English sentence is for programmers and never reaches a page. The console keeps the
type and the limits and says them here, in Vietnamese by default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .i18n import CATALOGUE, Lang, translate

#: Pydantic's error types that say the same thing to a person.
_SAME = {
    "int_type": "int_parsing",
    "int_from_float": "int_parsing",
    "float_type": "float_parsing",
    "finite_number": "float_parsing",
    "string_type": "invalid",
    "enum": "literal_error",
    "datetime_type": "datetime_parsing",
    "datetime_from_date_parsing": "datetime_parsing",
    "date_type": "date_parsing",
    "date_from_datetime_parsing": "date_parsing",
    "time_type": "time_parsing",
    "list_type": "invalid",
    "bool_type": "bool_parsing",
    "extra_forbidden": "invalid",
}


def _number(value: Any, lang: Lang) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    return text.replace(".", ",") if lang == "vi" else text


def explain(problem: str | None, limits: Mapping[str, Any], lang: Lang) -> str:
    """What is wrong with a field and what it needs, from the refusal's type and limits; a
    type it does not know reads "not a valid value" rather than pydantic's English."""
    kind = _SAME.get(problem or "", problem or "invalid")
    key = f"fe.{kind}"
    if key not in CATALOGUE:
        key = "fe.invalid"
    values = {name: _number(value, lang) for name, value in limits.items()}
    try:
        return translate(key, lang).format(**values)
    except (KeyError, IndexError):
        # A type whose limits are not all known: say it without them.
        return translate("fe.invalid", lang)


def limits_of(ctx: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """The limits of a pydantic error (its ctx) worth saying: lengths and bounds."""
    wanted = ("min_length", "max_length", "ge", "le", "gt", "lt")
    return tuple((name, (ctx or {})[name]) for name in wanted if name in (ctx or {}))
