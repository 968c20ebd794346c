"""Messages for commune staff and technicians: Vietnamese by default, English on request.

The messages live in gettext catalogues, `edge_agent/locale/<lang>/LC_MESSAGES/agent.po`, the
format translators' tools read; a message's msgid is its key ("page_title"). The agent reads
the compiled `agent.mo` beside each .po with the standard library's gettext: Babel would cost
a Pi some 6 MB of memory and 40 ms to read the .po at start (the agent's memory is budgeted
against a bare cvlc's), and the .mo files are committed so that a checkout, `pip install` on
a Pi and a release wheel all carry them with no build step. After editing a .po, compile:
`pybabel compile -d edge_agent/locale -D agent`; tests/test_i18n.py fails while a .mo and its
.po differ.
"""

from __future__ import annotations

import gettext
import os
from pathlib import Path

LANGS = ("vi", "en")
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "agent"


class _Catalogue(gettext.GNUTranslations):
    #: Filled by GNUTranslations as it parses the .mo (typeshed does not declare it): msgid →
    #: msgstr, "" → the header, (msgid, n) → form n of a counted message.
    _catalog: dict[str | tuple[str, int], str]

    def messages(self) -> dict[str, str]:
        return {key: text for key, text in self._catalog.items() if isinstance(key, str) and key}


def load(locale_dir: Path = LOCALE_DIR) -> dict[str, dict[str, str]]:
    """Every message by key, then language, from the compiled catalogues."""
    messages: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        with (locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as mo:
            for key, text in _Catalogue(mo).messages().items():
                messages.setdefault(key, {})[lang] = text
    return messages


MESSAGES = load()


def default_lang() -> str:
    lang = os.environ.get("LOA_LANG", "vi")
    return lang if lang in ("vi", "en") else "vi"


def t(key: str, lang: str, **values: object) -> str:
    return MESSAGES[key][lang].format(**values)


def page_labels(lang: str) -> dict[str, str]:
    """The local page's labels in one language (embedded for its script)."""
    return {key: text[lang] for key, text in MESSAGES.items() if key.startswith("page_")}
