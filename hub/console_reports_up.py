"""The reports page's part in reports that go up (hub/reports.py `submit_report`): a
commune's staff submit their finished month, the province submits its own and sees which
communes have submitted."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from . import reports
from .appkeys import CLOCK
from .auth import Permission, User
from .console import PageHandler, api, page, render, see_other
from .web_session import check_csrf, page_user


async def submission_context(
    request: web.Request,
    user: User,
    report: reports.MonthlyReport | None,
    query: reports.ReportQuery | None,
) -> dict[str, Any]:
    """What the page shows of submissions: whether this report may be submitted now, and for
    a province account, which communes submitted the period."""
    if report is None or query is None:
        return {"may_submit": False, "submissions": None}
    today = reports.local_day(request.app[CLOCK]())
    own_scope = report.commune == user.commune
    may_submit = (
        user.may(Permission.REPORTS_SUBMIT)
        and own_scope
        and report.submitted_by is None
        and report.last_day < today
        and (user.commune is not None or user.province_wide)
    )
    submissions = None
    if user.province_wide:
        submissions = await api(
            request,
            user,
            reports.report_submissions,
            query=query.model_copy(update={"commune": None}),
        )
    return {"may_submit": may_submit, "submissions": submissions}


@page
async def report_submit(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    month = str(form.get("month", ""))
    try:
        query = reports.ReportQuery.model_validate({"month": month})
    except ValidationError:
        return await render(request, "error.html", status=422, message_key="err.generic")
    await api(request, user, reports.submit_report, query=query)
    return see_other(f"/reports?month={month}")


PAGES: list[tuple[str, str, PageHandler]] = [("POST", "/reports/submit", report_submit)]
