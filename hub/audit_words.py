"""The audit log read by people: an action code and the hub's terse detail, in words.

The codes stay what the log stores and the filter takes (`user.lock`); the page shows the
sentence, and the code small beside it for whoever searches by it."""

from __future__ import annotations

import re

from .i18n import CATALOGUE, PLURALS, Lang, translate, translate_plural

#: Details with a number inside, said with the number kept (a count takes its plural form).
_COUNTED = {
    re.compile(r"^wrong password \((\d+)\)$"): "aw.detail.wrong_password",
    re.compile(r"^(\d+) failed logins$"): "aw.detail.failed_logins",
    re.compile(r"^(\d+) devices$"): "aw.detail.devices",
    re.compile(r"^(\d+) sessions ended$"): "aw.detail.sessions_ended",
}


def action_words(action: str, lang: Lang) -> str:
    """The action as a sentence; an action this hub has no words for, as its code."""
    key = f"aw.{action}"
    return translate(key, lang) if key in CATALOGUE else action


def detail_words(detail: str | None, lang: Lang) -> str:
    """A detail the hub writes as a code (`cookie`, `delivered=True`), said plainly; any
    other detail (a title, a comment) as written."""
    if not detail:
        return "—"
    key = f"aw.detail.{detail}"
    if key in CATALOGUE:
        return translate(key, lang)
    for pattern, counted in _COUNTED.items():
        found = pattern.match(detail)
        if found:
            n = found[1]
            if counted in PLURALS:
                return translate_plural(counted, int(n), lang).format(n=n)
            return translate(counted, lang).format(n=n)
    return detail
