"""Console pages for communes (windows, order of priority bulletins), users, the audit log and
reports with their charts."""

from __future__ import annotations

from .console import PageHandler

PAGES: list[tuple[str, str, PageHandler]] = []
