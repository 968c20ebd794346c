"""Console pages for bulletins: the list with filters, create with upload progress and preview,
the detail page with its history and actions, and the reviewers' queue (hàng chờ thẩm định).

Every read and every change goes through the JSON API's own handlers (`console.api`), so a
page shows and does exactly what the API allows the same account, with the same audit. Form
problems come back as the form again (4xx) naming each field; nothing is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from loa_contract import BulletinKind, Priority
from loa_contract.models import VN_TZ

from . import airings, bulletins, communes, media, preview_api
from .appkeys import CLOCK, DB
from .auth import Permission, User, require
from .categories import CATEGORIES
from .console import (
    STATES,
    PageHandler,
    api,
    api_all,
    declared_permission,
    page,
    page_cursor,
    pager_links,
    render,
    request_lang,
    see_other,
)
from .console_devices import Fmt
from .domain.lifecycle import Action, BulletinState, allows
from .domain.waiting import waited
from .errors import ApiError, loc_to_field
from .form_errors import limits_of
from .i18n import CATALOGUE, Lang, translate
from .paging import Page
from .routing import Ctx, HandlerFn
from .store import media as media_store
from .web_session import check_csrf, current_session, page_user

KINDS: tuple[str, ...] = tuple(k.value for k in BulletinKind)
#: Bulletins on one page of the list; "older" links to the next.
PAGE_ROWS = 50
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
#: What a bulletin form may propose; an emergency goes through the emergency page.
FORM_PRIORITIES: tuple[str, ...] = (Priority.NORMAL.value, Priority.PRIORITY.value)
MEDIA_KINDS: tuple[str, ...] = ("document", "audio", "image", "video")
#: The HTML `accept` list of the upload, by kind (the hub sniffs the bytes regardless).
ACCEPT = {
    "document": "application/pdf,text/plain,.pdf,.txt,.docx,.odt,"
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document,"
    "application/vnd.oasis.opendocument.text",
    "audio": "audio/*",
    "image": "image/*",
    "video": "video/*",
}
_LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
_TIMES_SPLIT = re.compile(r"[\s,;]+")
_INDEX = re.compile(r"\[\d+\]")
DEFAULT_DAYS = 7

W = Permission.BULLETINS_WRITE


# ---------------------------------------------------------------- field problems

_FIELD_LABELS = {
    "title": "bn.f.title",
    "kind": "bn.f.kind",
    "text": "bn.f.text",
    "media": "bn.f.media",
    "priority": "bn.f.priority",
    "category": "bn.f.category",
    "targets": "bn.f.targets",
    "schedule": "bn.f.schedule",
    "schedule.valid_from": "bn.f.valid_from",
    "schedule.valid_until": "bn.f.valid_until",
    "schedule.times": "bn.f.times",
    "schedule.repeats": "bn.f.repeats",
    "display_seconds": "bn.f.display_seconds",
    "comment": "bn.f.comment",
}


@dataclass(frozen=True)
class Problem:
    """One form field the hub refused: the field's label and a message (catalogued or the
    API's own words when no label fits)."""

    field: str
    label_key: str
    message_key: str | None
    #: The API's own words (English): for logs and tests, never shown on a page.
    message: str
    #: Pydantic's error type and limits, said in words by `form_errors.explain`.
    problem: str | None = None
    limits: tuple[tuple[str, Any], ...] = ()
    #: A sentence the API wrote for people in each language (a detail with "message" in
    #: Vietnamese and "message_en": a file refused once decoded, a document with no words,
    #: a recording of the wrong length), shown in the page's language.
    said: tuple[tuple[Lang, str], ...] = ()

    def words(self, lang: Lang) -> str | None:
        """The API's own sentence in `lang`, when it wrote one."""
        return dict(self.said).get(lang)

    @property
    def top(self) -> str:
        """The form field it belongs to ("schedule.times[1]" → "times")."""
        return _INDEX.sub("", self.field).rsplit(".", 1)[-1]


def _label_key(field: str) -> str:
    base = _INDEX.sub("", field)
    while base:
        if base in _FIELD_LABELS:
            return _FIELD_LABELS[base]
        base = base.rpartition(".")[0]
    return "bn.f.other"


def _message_key(field: str, message: str, kind: str | None = None) -> str | None:
    base = _INDEX.sub("", field)
    if kind in ("missing", "string_too_short") or message == "Field required":
        return "bn.err.required"
    if base == "category" and "choose" in message:
        return "bn.err.category"
    if base == "text" and "words" in message:
        return "bn.err.words"
    if base == "text" and "needs text" in message:
        return "bn.err.required"
    if base == "schedule.times" and "propose" in message:
        return "bn.err.air_time"
    if base.startswith("targets") and ("at least one" in message or "choose" in message):
        return "bn.err.targets"
    if base.startswith("targets") and "unknown" in message:
        return "bn.err.unknown_target"
    if base == "schedule.valid_until" and "past" in message:
        return "bn.err.past"
    if base.startswith("schedule") and "must be after" in message:
        return "bn.err.order"
    if base == "media" and "needs" in message and "media" in message:
        return "bn.err.media_missing"
    if base == "media" and "no uploaded media" in message:
        return "bn.err.media_missing"
    return None


def problem(
    field: str, message: str, kind: str | None = None, limits: tuple[tuple[str, Any], ...] = ()
) -> Problem:
    return Problem(
        field, _label_key(field), _message_key(field, message, kind), message, kind, limits
    )


def _from_validation(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"].removeprefix("Value error, ")
        field = loc_to_field(tuple(err["loc"]), prefix)
        out.append(problem(field, message, err["type"], limits_of(err.get("ctx"))))
    return out


def _from_api(exc: ApiError) -> list[Problem] | None:
    """The API's field errors as problems; None when the error is not about fields."""
    if exc.status != 422 or not isinstance(exc.detail, list):
        return None
    out = []
    for d in exc.detail:
        if not isinstance(d, dict):
            continue
        found = problem(str(d.get("field", "body")), str(d.get("message", "")))
        if d.get("message") and d.get("message_en"):
            said: tuple[tuple[Lang, str], ...] = (
                ("vi", str(d["message"])),
                ("en", str(d["message_en"])),
            )
            found = replace(found, said=said)
        out.append(found)
    return out


def _dedupe(problems: Iterable[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if p.field not in seen:
            seen.add(p.field)
            out.append(p)
    return out


# ---------------------------------------------------------------- API calls at another id


class _AtCtx(Ctx):
    """A Ctx naming its own path parameters: for an API call about a resource other than
    the one the page's URL names (save-and-submit acts on the bulletin it just created)."""

    def __init__(
        self,
        request: web.Request,
        body: BaseModel | None,
        user: User,
        params: Mapping[str, str],
    ) -> None:
        super().__init__(request, body, None, user, None)
        self._params = dict(params)

    def path(self, name: str) -> str:
        return self._params[name]


async def api_at(
    request: web.Request,
    user: User,
    handler: HandlerFn,
    params: Mapping[str, str],
    *,
    body: BaseModel | None = None,
) -> Any:
    """`console.api`, with the path parameters given instead of taken from the page's URL."""
    permission = declared_permission(request.app, handler)
    if permission is not None:
        require(user, permission)
    return await handler(_AtCtx(request, body, user, params))


# ---------------------------------------------------------------- shared pieces


def _local(value: datetime) -> str:
    return value.astimezone(VN_TZ).strftime(_LOCAL_FORMAT)


def _parse_local(value: str) -> datetime:
    for fmt in (_LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=VN_TZ)
        except ValueError:
            continue
    raise ValueError(value)


def _words(text: str | None) -> int:
    return len((text or "").split())


def _category_names(lang: Lang) -> dict[str, str]:
    return {c.code: c.name(lang) for c in CATEGORIES}


async def _communes(request: web.Request, user: User) -> list[communes.CommuneOut]:
    result: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    return result


def _schedule_part(
    form: Mapping[str, Any], problems: list[Problem]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The schedule from the form (local times in Vietnam), and the raw strings to re-show."""
    raw = {
        "valid_from": str(form.get("valid_from", "")).strip(),
        "valid_until": str(form.get("valid_until", "")).strip(),
        "times": str(form.get("times", "")).strip(),
        "repeats": str(form.get("repeats", "")).strip() or "1",
    }
    schedule: dict[str, Any] = {}
    for name in ("valid_from", "valid_until"):
        if not raw[name]:
            problems.append(problem(f"schedule.{name}", "Field required", "missing"))
            continue
        try:
            schedule[name] = _parse_local(raw[name]).isoformat()
        except ValueError:
            problems.append(problem(f"schedule.{name}", f"not a date and time: {raw[name]!r}"))
    schedule["times"] = [t for t in _TIMES_SPLIT.split(raw["times"]) if t]
    schedule["repeats"] = raw["repeats"]
    return schedule, raw


def _checked(form: Any, name: str) -> list[str]:
    return [str(v).strip() for v in form.getall(name, []) if str(v).strip()]


# ---------------------------------------------------------------- list and queue


@page
async def bulletins_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    state = request.query.get("state")
    priority = request.query.get("priority")
    kind = request.query.get("kind")
    chosen = {
        "state": state if state in STATES else "",
        "priority": priority if priority in PRIORITIES else "",
        "kind": kind if kind in KINDS else "",
        # The API refuses a longer one (422): a typed search is cut, not an error page.
        "q": request.query.get("q", "").strip()[:200],
    }
    found: Page[list[bulletins.BulletinOut]] = await api(
        request,
        user,
        bulletins.list_bulletins,
        query=bulletins.BulletinQuery(
            state=chosen["state"] or None,  # type: ignore[arg-type]
            priority=Priority(chosen["priority"]) if chosen["priority"] else None,
            kind=BulletinKind(chosen["kind"]) if chosen["kind"] else None,
            q=chosen["q"] or None,
            before=page_cursor(request),
            limit=PAGE_ROWS,
        ),
    )
    return await render(
        request,
        "bulletins.html",
        deleted=request.query.get("deleted") == "1",
        rows=found.body,
        states=STATES,
        priorities=PRIORITIES,
        kinds=KINDS,
        chosen=chosen,
        **pager_links(request, found.next_before),
    )


async def queued_since(
    request: web.Request, user: User, rows: list[bulletins.BulletinOut]
) -> dict[str, datetime]:
    """When each queued bulletin (last) entered the review queue, from its history."""
    since: dict[str, datetime] = {}
    for b in rows:
        history: list[bulletins.EventOut] = await api_at(
            request, user, bulletins.bulletin_history, {"id": b.id}
        )
        submits = [e.at for e in history if e.action == "submit"]
        since[b.id] = max(submits, default=b.created_at)
    return since


@page
async def review_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.BULLETINS_REVIEW)
    rows: list[bulletins.BulletinOut] = await api_all(
        request,
        user,
        bulletins.list_bulletins,
        query=bulletins.BulletinQuery(state="submitted"),
    )
    # The longest waiting first: by when it (last) entered the queue.
    submitted_at = await queued_since(request, user, rows)
    rows.sort(key=lambda b: submitted_at[b.id])
    return await render(
        request,
        "review.html",
        rows=rows,
        submitted_at=submitted_at,
        waiting={b.id: waited(submitted_at[b.id], request.app[CLOCK]()) for b in rows},
        category_names=_category_names(request_lang(request)),
        words={b.id: _words(b.text) for b in rows},
    )


# ---------------------------------------------------------------- create and edit


def _blank_values(user: User, now: datetime) -> dict[str, Any]:
    return {
        "title": "",
        "kind": BulletinKind.TEXT.value,
        "text": "",
        "media": "",
        "media_mime": "",
        "priority": Priority.NORMAL.value,
        "category": "",
        "communes": [user.commune] if user.commune else [],
        "devices": [],
        "display_seconds": "",
        "valid_from": _local(now),
        "valid_until": _local(now + timedelta(days=DEFAULT_DAYS)),
        "times": "",
        "repeats": "1",
    }


def _values_of(b: bulletins.BulletinOut) -> dict[str, Any]:
    return {
        "title": b.title,
        "kind": b.kind.value,
        "text": b.text or "",
        "media": b.media.sha256 if b.media else "",
        "media_mime": b.media.mime if b.media else "",
        "priority": b.priority.value,
        "category": b.category or "",
        "communes": list(b.targets.communes),
        "devices": list(b.targets.devices),
        "display_seconds": f"{b.display_seconds:g}",
        "valid_from": _local(b.schedule.valid_from),
        "valid_until": _local(b.schedule.valid_until),
        "times": ", ".join(b.schedule.times),
        "repeats": str(b.schedule.repeats),
    }


def _parse_bulletin(
    form: Any,
) -> tuple[bulletins.BulletinCreate | None, dict[str, Any], list[Problem]]:
    """The form as the API's create/edit body, the values to re-show, and what is wrong."""
    problems: list[Problem] = []
    kind = str(form.get("kind", "")).strip()
    priority = str(form.get("priority", "")).strip() or Priority.NORMAL.value
    text = str(form.get("text", ""))
    sha = str(form.get("media", "")).strip()
    schedule, raw_schedule = _schedule_part(form, problems)
    values: dict[str, Any] = {
        "title": str(form.get("title", "")).strip(),
        "kind": kind,
        "text": text,
        "media": sha,
        "media_mime": str(form.get("media_mime", "")).strip(),
        "priority": priority,
        "category": str(form.get("category", "")).strip(),
        "communes": _checked(form, "communes"),
        "devices": _checked(form, "devices"),
        "display_seconds": str(form.get("display_seconds", "")).strip(),
        **raw_schedule,
    }
    if priority not in FORM_PRIORITIES:
        problems.append(problem("priority", f"{priority!r} is not normal or priority"))
        priority = Priority.NORMAL.value
    data: dict[str, Any] = {
        "title": values["title"],
        "kind": kind,
        "priority": priority,
        # Text is the content of text and document bulletins; media carries the others.
        "text": text.strip() if kind in ("text", "document") and text.strip() else None,
        "media": sha if kind != "text" and sha else None,
        "targets": {"communes": values["communes"], "devices": values["devices"]},
        "schedule": schedule,
        "category": values["category"] or None,
        "display_seconds": values["display_seconds"] or None,
    }
    try:
        body = bulletins.BulletinCreate.model_validate(data)
    except ValidationError as exc:
        problems += _from_validation(exc)
        body = None
    problems = _dedupe(problems)
    return (None if problems else body), values, problems


def _form_submit_problems(values: dict[str, Any]) -> list[Problem]:
    """What review would refuse of the form as typed (kinds and priorities it cannot name
    are the parse's problems already)."""
    if values["kind"] not in KINDS or values["priority"] not in FORM_PRIORITIES:
        return []
    return _submit_problems(
        BulletinKind(values["kind"]),
        Priority(values["priority"]),
        values["text"] if values["kind"] in ("text", "document") else None,
        values["category"] or None,
        [t for t in _TIMES_SPLIT.split(values.get("times", "")) if t],
    )


async def _form(
    request: web.Request,
    user: User,
    values: dict[str, Any],
    *,
    bulletin: bulletins.BulletinOut | None = None,
    status: int = 200,
    problems: list[Problem] | None = None,
    notice_key: str | None = None,
) -> web.Response:
    lang = request_lang(request)
    return await render(
        request,
        "bulletin_form.html",
        status=status,
        bulletin=bulletin,
        values=values,
        problems=problems or [],
        bad={p.top for p in problems or []},
        notice_key=notice_key,
        kinds=KINDS,
        media_kinds=MEDIA_KINDS,
        accept=ACCEPT,
        priorities=FORM_PRIORITIES,
        categories=[(c.code, c.name(lang)) for c in CATEGORIES],
        communes=await _communes(request, user),
        words=_words(values["text"]),
        word_range=bulletins.SUBMIT_WORDS,
        proposes_only=not user.may(Permission.BULLETINS_PUBLISH),
    )


@page
async def new_form(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, W)
    return await _form(request, user, _blank_values(user, request.app[CLOCK]()))


#: The edit form's query after a save whose submit was refused: it shows why (PRG).
NOT_SUBMITTED = "not_submitted"


def _submit_problems(
    kind: BulletinKind, priority: Priority, text: str | None, category: str | None, times: Any
) -> list[Problem]:
    return [
        problem(e["field"], e["message"])
        for e in bulletins.submit_problems(
            kind=kind, priority=priority, text=text, category=category, times=times
        )
    ]


async def _submit_after_save(
    request: web.Request, user: User, saved: bulletins.BulletinOut
) -> web.StreamResponse:
    """The second half of "save and submit": on refusal the saved draft's edit form, at its
    own address (post/redirect/get: a reload re-posts nothing), says it was saved but not
    submitted and why."""
    try:
        await api_at(request, user, bulletins.submit_bulletin, {"id": saved.id})
    except ApiError as exc:
        if _from_api(exc) is None:
            raise
        return see_other(f"/bulletins/{saved.id}/edit?{NOT_SUBMITTED}=1")
    return see_other(f"/bulletins/{saved.id}")


@page
async def new_submit(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, W)
    body, values, problems = _parse_bulletin(form)
    if form.get("action") == "submit":
        # Every problem at once: the draft's and review's, before anything is saved.
        # "Save and submit" of a new bulletin is one step: what the review would refuse
        # creates no draft, so a failed attempt and its reload leave nothing behind.
        problems = _dedupe([*problems, *_form_submit_problems(values)])
        body = body if not problems else None
    if body is None:
        return await _form(request, user, values, status=422, problems=problems)
    try:
        created: bulletins.BulletinOut = await api(
            request, user, bulletins.create_bulletin, body=body
        )
    except ApiError as exc:
        found = _from_api(exc)
        if found is None:
            raise
        return await _form(request, user, values, status=exc.status, problems=found)
    if form.get("action") == "submit":
        return await _submit_after_save(request, user, created)
    return see_other(f"/bulletins/{created.id}")


@page
async def edit_form(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, W)
    b: bulletins.BulletinOut = await api(request, user, bulletins.get_bulletin)
    if not _actions(user, b)["edit"]:
        raise ApiError(409, "illegal_transition", f"this bulletin is {b.state}")
    if request.query.get(NOT_SUBMITTED):
        problems = _submit_problems(b.kind, b.priority, b.text, b.category, b.schedule.times)
        if problems:
            return await _form(
                request,
                user,
                _values_of(b),
                bulletin=b,
                problems=problems,
                notice_key="bn.saved_not_submitted",
            )
    return await _form(request, user, _values_of(b), bulletin=b)


@page
async def edit_submit(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, W)
    current: bulletins.BulletinOut = await api(request, user, bulletins.get_bulletin)
    body, values, problems = _parse_bulletin(form)
    if body is None:
        return await _form(request, user, values, bulletin=current, status=422, problems=problems)
    try:
        saved: bulletins.BulletinOut = await api(request, user, bulletins.edit_bulletin, body=body)
    except ApiError as exc:
        found = _from_api(exc)
        if found is None:
            raise
        return await _form(
            request, user, values, bulletin=current, status=exc.status, problems=found
        )
    if form.get("action") == "submit" and saved.state in ("draft", "returned"):
        return await _submit_after_save(request, user, saved)
    return see_other(f"/bulletins/{saved.id}")


# ---------------------------------------------------------------- detail and actions


def _actions(user: User, b: bulletins.BulletinOut) -> dict[str, bool]:
    """What `user` may do to `b` now: the API decides (the route's permission, then the life
    cycle's table); this only chooses which forms to show."""
    actor = bulletins.as_actor(user)
    state = BulletinState(b.state)

    def may(permission: Permission, action: Action) -> bool:
        return user.may(permission) and allows(state, action, actor, b.unit)

    return {
        "edit": may(W, Action.EDIT),
        "submit": may(W, Action.SUBMIT),
        "review": may(Permission.BULLETINS_REVIEW, Action.APPROVE),
        "publish": may(Permission.BULLETINS_PUBLISH, Action.PUBLISH),
        "cancel": may(Permission.BULLETINS_PUBLISH, Action.CANCEL),
        "delete": may(W, Action.DELETE),
    }


def _approve_values(b: bulletins.BulletinOut) -> dict[str, Any]:
    return {
        "priority": b.priority.value,
        "category": b.category or "",
        "communes": list(b.targets.communes),
        "devices": list(b.targets.devices),
        "valid_from": _local(b.schedule.valid_from),
        "valid_until": _local(b.schedule.valid_until),
        "times": ", ".join(b.schedule.times),
        "repeats": str(b.schedule.repeats),
        "comment": "",
    }


async def _detail(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    problems: list[Problem] | None = None,
    approve: dict[str, Any] | None = None,
    return_comment: str = "",
) -> web.Response:
    b: bulletins.BulletinOut = await api(request, user, bulletins.get_bulletin)
    history: list[bulletins.EventOut] = await api(request, user, bulletins.bulletin_history)
    aired: airings.BulletinAirings = await api(request, user, airings.bulletin_airings)
    lang = request_lang(request)
    known = await _communes(request, user)
    names = {c.code: c.name for c in known}
    events = []
    for e in history:
        key = f"bn.action.{e.action}"
        events.append((e, translate(key, lang) if key in CATALOGUE else e.action))
    actions = _actions(user, b)
    # A priority bulletin is ordered ahead of normal ones; an emergency keeps its own page.
    approve_priorities = PRIORITIES if b.priority is Priority.EMERGENCY else FORM_PRIORITIES
    return await render(
        request,
        "bulletin_detail.html",
        status=status,
        b=b,
        events=events,
        actions=actions,
        any_action=any(actions.values()),
        problems=problems or [],
        bad={p.top for p in problems or []},
        approve=approve or _approve_values(b),
        return_comment=return_comment,
        commune_names=names,
        communes=known,
        aired=aired,
        category_names=_category_names(lang),
        categories=[(c.code, c.name(lang)) for c in CATEGORIES],
        approve_priorities=approve_priorities,
        words=_words(b.text),
        word_range=bulletins.SUBMIT_WORDS,
    )


@page
async def detail_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    return await _detail(request, user)


async def _posted(request: web.Request) -> tuple[User, Any]:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    return user, form


def _back(request: web.Request) -> web.Response:
    return see_other(f"/bulletins/{request.match_info['id']}")


async def _refused(
    request: web.Request, user: User, exc: ApiError, **keep: Any
) -> web.StreamResponse:
    problems = _from_api(exc)
    if problems is None:
        raise exc
    return await _detail(request, user, status=exc.status, problems=problems, **keep)


@page
async def submit_action(request: web.Request) -> web.StreamResponse:
    user, _form_data = await _posted(request)
    try:
        await api(request, user, bulletins.submit_bulletin)
    except ApiError as exc:
        return await _refused(request, user, exc)
    return _back(request)


@page
async def return_action(request: web.Request) -> web.StreamResponse:
    user, form = await _posted(request)
    comment = str(form.get("comment", ""))
    try:
        body = bulletins.ReturnIn(comment=comment)
    except ValidationError as exc:
        require(user, Permission.BULLETINS_REVIEW)
        return await _detail(
            request, user, status=422, problems=_from_validation(exc), return_comment=comment
        )
    try:
        await api(request, user, bulletins.return_bulletin, body=body)
    except ApiError as exc:
        return await _refused(request, user, exc, return_comment=comment)
    return _back(request)


def _parse_approve(form: Any) -> tuple[bulletins.ApproveIn | None, dict[str, Any], list[Problem]]:
    problems: list[Problem] = []
    schedule, raw_schedule = _schedule_part(form, problems)
    values: dict[str, Any] = {
        "priority": str(form.get("priority", "")).strip(),
        "category": str(form.get("category", "")).strip(),
        "communes": _checked(form, "communes"),
        "devices": _checked(form, "devices"),
        "comment": str(form.get("comment", "")),
        **raw_schedule,
    }
    data: dict[str, Any] = {
        "priority": values["priority"] or None,
        "category": values["category"] or None,
        "targets": {"communes": values["communes"], "devices": values["devices"]},
        "schedule": schedule,
        "comment": values["comment"].strip() or None,
    }
    try:
        body = bulletins.ApproveIn.model_validate(data)
    except ValidationError as exc:
        problems += _from_validation(exc)
        body = None
    problems = _dedupe(problems)
    return (None if problems else body), values, problems


@page
async def approve_action(request: web.Request) -> web.StreamResponse:
    user, form = await _posted(request)
    require(user, Permission.BULLETINS_REVIEW)
    body, values, problems = _parse_approve(form)
    if body is None:
        return await _detail(request, user, status=422, problems=problems, approve=values)
    try:
        await api(request, user, bulletins.approve_bulletin, body=body)
    except ApiError as exc:
        return await _refused(request, user, exc, approve=values)
    return _back(request)


@page
async def publish_action(request: web.Request) -> web.StreamResponse:
    user, _form_data = await _posted(request)
    try:
        await api(request, user, bulletins.publish_bulletin)
    except ApiError as exc:
        return await _refused(request, user, exc)
    return _back(request)


@page
async def cancel_action(request: web.Request) -> web.StreamResponse:
    user, _form_data = await _posted(request)
    await api(request, user, bulletins.cancel_bulletin)
    return _back(request)


# ---------------------------------------------------------------- media: upload and play

_UPLOAD_MESSAGES = {
    "csrf": "err.csrf",
    "forbidden": "err.forbidden",
    "too_large": "bn.upload.too_large",
    "unsupported_media_type": "bn.upload.bad_type",
    "empty": "bn.upload.empty",
    "unauthorized": "bn.upload.login",
}


def _upload_error(request: web.Request, status: int, error: str, detail: Any) -> web.Response:
    lang = request_lang(request)
    message = translate(_UPLOAD_MESSAGES.get(error, "bn.upload.failed"), lang)
    said = detail[0] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else {}
    if error not in _UPLOAD_MESSAGES and said.get("message"):
        # A file refused once decoded (hub/probe.py): the hub names the problem itself.
        message = str(said.get("message_en") if lang == "en" else said["message"])
    return web.json_response(
        {"error": error, "field": "media", "message": message, "detail": detail}, status=status
    )


async def upload(request: web.Request) -> web.StreamResponse:
    """The form's upload (XMLHttpRequest, raw body): the CSRF token comes in a header, the
    account from the cookie session; the API's own upload stores and audits it. JSON out."""
    session = await current_session(request)
    if session is None or session.user.must_change_password:
        return _upload_error(request, 401, "unauthorized", "log in again")
    try:
        check_csrf(request, {})
        stored: media.MediaOut = await api(request, session.user, media.upload_media)
    except ApiError as exc:
        return _upload_error(request, exc.status, exc.error, exc.detail)
    kind = bulletins.kind_for_mime(stored.mime)
    return web.json_response(
        {
            **stored.model_dump(),
            "kind": kind.value if kind else None,
            "url": f"/bulletins/media/{stored.sha256}",
        },
        status=201,
    )


@page
async def media_file(request: web.Request) -> web.StreamResponse:
    """A stored file for the preview players (Range works: the API answers a FileResponse)."""
    user = await page_user(request)
    response: web.StreamResponse = await api(request, user, media.get_media)
    return response


# ---------------------------------------------------------------- preview before approval


@page
async def preview_page(request: web.Request) -> web.StreamResponse:
    """What the bulletin will be on the air (hub/previews.py): the speech, each board's
    frames, and the length of one airing on each, before anyone approves it."""
    user = await page_user(request)
    b: bulletins.BulletinOut = await api(request, user, bulletins.get_bulletin)
    preview: preview_api.PreviewOut = await api(request, user, preview_api.get_preview)
    fmt = Fmt(request_lang(request), request.app[CLOCK]())

    def console_url(url: str) -> str:
        # The API's file URL, served to the console by its cookie session.
        return "/bulletins/" + url.removeprefix("/api/v1/bulletins/")

    return await render(
        request,
        "bulletin_preview.html",
        b=b,
        preview=preview,
        speech=console_url(preview.speech) if preview.speech else None,
        speaker_length=(
            fmt.duration(preview.speaker_seconds) if preview.speaker_seconds is not None else None
        ),
        boards=[
            (board, fmt.duration(board.seconds), [console_url(f) for f in board.frames])
            for board in preview.boards
        ],
    )


@page
async def preview_file(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    response: web.StreamResponse = await api(request, user, preview_api.get_preview_file)
    return response


# ---------------------------------------------------------------- deletion


@page
async def delete_form(request: web.Request) -> web.StreamResponse:
    """The confirmation step before a never-published bulletin is deleted."""
    user = await page_user(request)
    require(user, W)
    b: bulletins.BulletinOut = await api(request, user, bulletins.get_bulletin)
    if not _actions(user, b)["delete"]:
        raise ApiError(409, "illegal_transition", f"this bulletin is {b.state}")
    return await render(request, "confirm_delete.html", what="bulletin", b=b)


@page
async def delete_action(request: web.Request) -> web.StreamResponse:
    user, _ = await _posted(request)
    await api(request, user, bulletins.delete_bulletin)
    return see_other("/bulletins?deleted=1")


@page
async def media_library(request: web.Request) -> web.StreamResponse:
    """The unit's uploaded files (everything for the province), how many bulletins use each,
    and a delete for the unused ones."""
    user = await page_user(request)
    require(user, Permission.MEDIA_WRITE)
    files: list[media.MediaOut] = await api(request, user, media.list_media)
    uses = await media_store.uses(request.app[DB], [f.sha256 for f in files])
    return await render(
        request,
        "media_library.html",
        files=files,
        uses=uses,
        fmt=Fmt(request_lang(request), request.app[CLOCK]()),
        deleted=request.query.get("deleted") == "1",
    )


async def _own_file(request: web.Request, user: User) -> media.MediaOut:
    sha = request.match_info["sha256"]
    files: list[media.MediaOut] = await api(request, user, media.list_media)
    found = next((f for f in files if f.sha256 == sha), None)
    if found is None:
        raise ApiError(404, "not_found", "no such media")
    return found


@page
async def media_delete_form(request: web.Request) -> web.StreamResponse:
    """The confirmation step before an unused file is deleted."""
    user = await page_user(request)
    require(user, Permission.MEDIA_WRITE)
    file = await _own_file(request, user)
    used = (await media_store.uses(request.app[DB], [file.sha256])).get(file.sha256, 0)
    return await render(
        request,
        "confirm_delete.html",
        what="media",
        file=file,
        used=used,
        fmt=Fmt(request_lang(request), request.app[CLOCK]()),
    )


@page
async def media_delete_action(request: web.Request) -> web.StreamResponse:
    user, _ = await _posted(request)
    await api(request, user, media.delete_media)
    return see_other("/bulletins/media?deleted=1")


PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/bulletins", bulletins_page),
    ("GET", "/bulletins/new", new_form),
    ("POST", "/bulletins/new", new_submit),
    ("POST", "/bulletins/media", upload),
    ("GET", "/bulletins/media", media_library),
    ("GET", "/bulletins/media/{sha256}", media_file),
    ("GET", "/bulletins/media/{sha256}/delete", media_delete_form),
    ("POST", "/bulletins/media/{sha256}/delete", media_delete_action),
    ("GET", "/bulletins/{id}", detail_page),
    ("GET", "/bulletins/{id}/preview", preview_page),
    ("GET", "/bulletins/{id}/preview/{file}", preview_file),
    ("GET", "/bulletins/{id}/edit", edit_form),
    ("POST", "/bulletins/{id}/edit", edit_submit),
    ("POST", "/bulletins/{id}/submit", submit_action),
    ("POST", "/bulletins/{id}/return", return_action),
    ("POST", "/bulletins/{id}/approve", approve_action),
    ("POST", "/bulletins/{id}/publish", publish_action),
    ("POST", "/bulletins/{id}/cancel", cancel_action),
    ("GET", "/bulletins/{id}/delete", delete_form),
    ("POST", "/bulletins/{id}/delete", delete_action),
    ("GET", "/review", review_page),
]
