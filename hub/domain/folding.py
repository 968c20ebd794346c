"""Vietnamese text folded for search: "Tiêm phòng" and "tiem phong" are the same words.

Folding is done here, in Python, and stored next to the text (bulletins.search_text), so
the search is a plain LIKE on any database: no SQLite-only function, no extension."""

from __future__ import annotations

import unicodedata

#: Letters whose diacritic is not a combining mark (NFD leaves them whole).
_SEPARATE = str.maketrans({"đ": "d", "Đ": "d"})


def fold(text: str) -> str:
    """Lower case, without diacritics (tones and vowel marks), đ as d, spaces collapsed."""
    decomposed = unicodedata.normalize("NFD", text.translate(_SEPARATE))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def search_terms(query: str) -> list[str]:
    """The words of a search, folded; a bulletin matches when it holds every one."""
    return fold(query).split()


def like_pattern(term: str) -> str:
    """`term` as a LIKE pattern matching it anywhere, its own % and _ taken literally
    (with ESCAPE '\\')."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
