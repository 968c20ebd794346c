"""Every label of the hub console, in Vietnamese (the default) and English.

The labels live in gettext catalogues, `hub/locale/<lang>/LC_MESSAGES/hub.po`, the format
translators' tools read (Poedit, Weblate, Lokalize). A message's msgid is the label's key
("nav.devices"), so templates and code name labels by stable ids and a reworded label changes
one msgstr. The hub reads the .po files with Babel when this module is imported (about 10 ms
for a thousand labels): the catalogues are the only copy, and there is nothing to compile or
to let go stale. Tests check that both languages hold every key, non-empty, with the same
placeholders, and that templates use only known keys (tests/test_i18n.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from gettext import c2py
from pathlib import Path
from typing import Literal

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")
DEFAULT_LANG: Lang = "vi"

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "hub"


def catalogue_path(lang: Lang, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(path: Path) -> Catalog:
    """One .po file; a line Babel cannot read fails here, at start-up, not on some page."""
    with path.open("rb") as po:
        return read_po(po, abort_invalid=True)


@dataclass(frozen=True)
class Catalogues:
    """The labels of every language by key; counted labels ("{} bulletins") apart, with each
    language's rule for which form a number takes."""

    labels: dict[str, dict[Lang, str]]
    plurals: dict[str, dict[Lang, tuple[str, ...]]]
    plural_rules: dict[Lang, Callable[[int], int]]


def load(locale_dir: Path = LOCALE_DIR) -> Catalogues:
    """The catalogues as `pybabel compile` would see them: fuzzy entries (a translator's
    unconfirmed guess) are left out, so such a key reads as missing and the tests say so."""
    labels: dict[str, dict[Lang, str]] = {}
    plurals: dict[str, dict[Lang, tuple[str, ...]]] = {}
    rules: dict[Lang, Callable[[int], int]] = {}
    for lang in LANGS:
        catalogue = read_catalogue(catalogue_path(lang, locale_dir))
        rules[lang] = c2py(catalogue.plural_expr)
        for message in catalogue:
            if not message.id or message.fuzzy:
                continue  # the header, or not confirmed
            if isinstance(message.id, str) and isinstance(message.string, str):
                labels.setdefault(message.id, {})[lang] = message.string
            elif isinstance(message.id, tuple | list) and isinstance(message.string, tuple | list):
                plurals.setdefault(message.id[0], {})[lang] = tuple(message.string)
            else:
                raise RuntimeError(f"{message.id!r}: a plural msgid needs plural msgstr[n]")
    return Catalogues(labels, plurals, rules)


CATALOGUES = load()
#: Every label by key, then language.
CATALOGUE: dict[str, dict[Lang, str]] = CATALOGUES.labels
#: Counted labels by key, then language: each language's forms, in its Plural-Forms order.
PLURALS: dict[str, dict[Lang, tuple[str, ...]]] = CATALOGUES.plurals


def translate(key: str, lang: Lang) -> str:
    """The label in `lang`; an unknown key raises, so a typo fails the page tests."""
    return CATALOGUE[key][lang]


def translate_plural(key: str, n: int, lang: Lang) -> str:
    """The form of a counted label for `n` ("1 bulletin", "2 bulletins"); Vietnamese has one
    form. Unformatted, like `translate`: the caller puts the number in."""
    return PLURALS[key][lang][CATALOGUES.plural_rules[lang](n)]


def pick_lang(value: str | None) -> Lang:
    return "en" if value == "en" else DEFAULT_LANG
