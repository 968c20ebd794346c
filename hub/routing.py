"""Route declarations: one decorator says method, path, auth, permission and the pydantic
models of the request and response. The same declaration validates requests, serializes
responses and produces the OpenAPI document, so the three cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from .appkeys import CLOCK, CONFIG, CONNECTIONS, DB, KEYRING, NODE_SECRET, ROUTES
from .auth import DeviceAuth, Permission, User, authenticate_device, authenticate_operator, require
from .config import HubConfig
from .db import Database
from .errors import (
    DECLARED_ROUTE,
    ApiError,
    error_answer,
    refuse_nul,
    refuse_repeated,
    validation_detail,
)
from .keys import HubKeyring
from .node_secret import SCHEME as NODE_SCHEME
from .node_secret import verify as verify_node
from .paging import PAGE_HEADERS, Page, next_headers
from .push import Admission, Connections
from .store import audit as audit_log
from .store.sql import Tx

#: "node": another node of this hub (hub/node_secret.py), for what nodes share (media).
AuthKind = Literal["operator", "device", "node", "public"]


class Ctx:
    """What a handler gets: the request, the validated input and who is calling."""

    # A device's socket handler keeps its Ctx for months, times every device of a province.
    __slots__ = ("_admission", "_device", "_user", "body", "query", "request")

    def __init__(
        self,
        request: web.Request,
        body: Any,
        query: Any,
        user: User | None,
        device: DeviceAuth | None,
        admission: Admission | None = None,
    ) -> None:
        self.request = request
        self.body = body
        self.query = query
        self._user = user
        self._device = device
        self._admission = admission

    def admitted(self) -> None:
        """The handshake of a route declared `admission=True` is done: its place is the
        next caller's. (Given back in any case when the handler ends.)"""
        if self._admission is not None:
            self._admission.leave()
            self._admission = None

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def db(self) -> Database:
        return self.request.app[DB]

    @property
    def config(self) -> HubConfig:
        return self.request.app[CONFIG]

    @property
    def connections(self) -> Connections:
        return self.request.app[CONNECTIONS]

    @property
    def keyring(self) -> HubKeyring:
        return self.request.app[KEYRING]

    @property
    def user(self) -> User:
        if self._user is None:
            raise RuntimeError("not an operator route")
        return self._user

    @property
    def device(self) -> DeviceAuth:
        if self._device is None:
            raise RuntimeError("not a device route")
        return self._device

    def path(self, name: str) -> str:
        return self.request.match_info[name]

    @property
    def address(self) -> str | None:
        return self.request.remote

    @property
    def now(self) -> datetime:
        return self.request.app[CLOCK]()

    async def audit(
        self,
        tx: Tx,
        action: str,
        target: str | None = None,
        detail: str | None = None,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        """Audit an operator's action: who, from which unit and address, when."""
        await audit_log.append(
            tx,
            self.user.username,
            self.address,
            action,
            target,
            detail,
            unit=self.user.unit,
            before=before,
            after=after,
            at=self.now,
        )


HandlerFn = Callable[[Ctx], Awaitable[Any]]


@dataclass
class RouteSpec:
    method: str
    path: str
    handler: HandlerFn
    summary: str
    auth: AuthKind
    permission: Permission | None = None
    body: type[BaseModel] | Any | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    #: For routes whose body is not JSON: the content types it accepts (raw uploads).
    raw_body: list[str] | None = None
    #: Non-JSON responses (files, signed envelopes, WebSocket): described, not modelled.
    response_content: dict[str, Any] | None = None
    errors: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    #: Open to an account that must change its password first (everything else answers 403).
    during_password_change: bool = False
    #: An operator route's own way to find the caller (CAP sender accounts, hub/cap.py);
    #: None: an operator's session token (`authenticate_operator`).
    authenticate: Callable[[web.Request], Awaitable[User]] | None = None
    #: Callers wait for a place among the device socket handshakes under way
    #: (`Connections.admit`) before anything is done for them; the handler gives it back
    #: with `ctx.admitted()`.
    admission: bool = False

    def endpoint(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        body_adapter = TypeAdapter(self.body) if self.body is not None else None
        response_adapter = TypeAdapter(self.response) if self.response is not None else None

        async def endpoint(request: web.Request) -> web.StreamResponse:
            admission = await request.app[CONNECTIONS].admit() if self.admission else None
            try:
                user: User | None = None
                device: DeviceAuth | None = None
                # Authentication first: an anonymous caller learns nothing from validation errors.
                if self.auth == "operator":
                    user = await (self.authenticate or authenticate_operator)(request)
                    if user.must_change_password and not self.during_password_change:
                        raise ApiError(
                            403,
                            "password_change_required",
                            "change the password first: POST /api/v1/auth/password",
                        )
                    if self.permission is not None:
                        require(user, self.permission)
                elif self.auth == "device":
                    device = await authenticate_device(request)
                elif self.auth == "node" and not verify_node(
                    request.app[NODE_SECRET],
                    request.headers.get("Authorization"),
                    request.app[CLOCK](),
                ):
                    raise ApiError(401, "unauthorized", "only another node of this hub may ask")
                refuse_nul(dict(request.match_info))
                # Parsed (and kept on the request) only when there is a query: not for a socket
                # that lives for months.
                if "?" in request.raw_path:
                    refuse_nul(dict(request.query))
                body = None
                if body_adapter is not None:
                    body = _parse_body(body_adapter, await request.read())
                query = None
                if self.query is not None:
                    refuse_repeated(request.query)
                    try:
                        query = self.query.model_validate(dict(request.query))
                    except ValidationError as exc:
                        raise ApiError(422, "validation_error", validation_detail(exc)) from exc
                result = await self.handler(Ctx(request, body, query, user, device, admission))
                if isinstance(result, web.StreamResponse):
                    return result
                if response_adapter is None:
                    raise RuntimeError(f"{self.method} {self.path} returned data but declares none")
                headers: dict[str, str] = {}
                if isinstance(result, Page):
                    headers = next_headers(request, result.next_before)
                    result = result.body
                payload = response_adapter.dump_json(result)
                return web.Response(
                    body=payload,
                    status=self.status,
                    content_type="application/json",
                    headers=headers,
                )
            except Exception as exc:
                return error_answer(request, exc)
            finally:
                if admission is not None:
                    admission.leave()

        endpoint.__name__ = self.handler.__name__
        setattr(endpoint, DECLARED_ROUTE, True)
        return endpoint


def _parse_body(adapter: TypeAdapter[Any], raw: bytes) -> Any:
    """Parse and validate in one pass (pydantic's own JSON parser: a report batch of 200 is
    parsed twice as fast as json.loads then validate_python, with the same errors).

    Strict: a value must already have its documented JSON type. `false` is not a volume of 0
    nor `"5"` a count, so what the OpenAPI says a body is, is exactly what is accepted (JSON
    strings still carry dates, times and enum values; an integer is still a number)."""
    if not raw.strip() or raw.strip() == b"null":
        raise ApiError(400, "bad_json", "a JSON body is required")
    try:
        parsed = adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        bad_json = [e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
        if bad_json:
            message = bad_json[0]["msg"]
            raise ApiError(400, "bad_json", f"the body is not valid JSON: {message}") from exc
        raise ApiError(422, "validation_error", validation_detail(exc)) from exc
    if b"\\u0000" in raw:  # JSON can carry U+0000 only escaped; looked for where it is
        refuse_nul(json.loads(raw))
    return parsed


class RouteTable:
    """The routes of one module, declared next to their handlers."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.specs: list[RouteSpec] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        auth: AuthKind = "operator",
        permission: Permission | None = Permission.READ,
        **kw: Any,
    ) -> Callable[[HandlerFn], HandlerFn]:
        def decorate(handler: HandlerFn) -> HandlerFn:
            self.specs.append(
                RouteSpec(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    auth=auth,
                    permission=permission if auth == "operator" else None,
                    tags=[self.tag],
                    **kw,
                )
            )
            return handler

        return decorate

    def get(self, path: str, **kw: Any) -> Callable[[HandlerFn], HandlerFn]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[HandlerFn], HandlerFn]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[HandlerFn], HandlerFn]:
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[HandlerFn], HandlerFn]:
        return self.route("DELETE", path, **kw)

    def install(self, app: web.Application) -> None:
        for spec in self.specs:
            app.router.add_route(spec.method, spec.path, spec.endpoint())
            app[ROUTES].append(spec)


# ---------------------------------------------------------------- OpenAPI

_PATH_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{model}"


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


#: The hub's client_max_size: what aiohttp reads of a JSON body before it answers 413.
JSON_BODY_MAX_BYTES = 1024**2

_ERROR_TEXT = {
    400: "Malformed request: a body that is not JSON, or (as text/plain, before any route"
    " runs) an HTTP message the server cannot parse, such as a request line or a header over"
    " 8 KiB",
    401: "Missing or invalid credentials",
    403: "Not allowed",
    404: "Not found",
    409: "Conflicts with the current state",
    410: "Gone (expired or already used)",
    413: f"Too large (a JSON body is limited to {JSON_BODY_MAX_BYTES} bytes)",
    415: "Unsupported media type",
    422: "Validation error; detail lists {field, message}",
    429: "Too many requests; Retry-After says when to try again",
    503: "Unavailable",
}


def _error_codes(spec: RouteSpec) -> set[int]:
    """Every status the route machinery itself may answer for `spec`, and the route's own."""
    codes = {*spec.errors, 400}  # any request: the HTTP parser's refusal comes first
    if spec.auth != "public":
        codes.add(401)
    if spec.auth == "operator":
        codes.add(403)  # a missing permission, or a password that must be changed first
    if spec.body is not None:
        codes |= {413, 422}
    if spec.query is not None:
        codes.add(422)
    return codes


def _content_models(content: dict[str, Any]) -> list[type[BaseModel]]:
    """The pydantic models that `response_content` names as schemas."""
    return [
        media["schema"]
        for response in content.values()
        for media in response.get("content", {}).values()
        if isinstance(media.get("schema"), type) and issubclass(media["schema"], BaseModel)
    ]


def _resolve_models(
    content: dict[str, Any], schema_of: Callable[[type[BaseModel]], dict[str, Any]]
) -> dict[str, Any]:
    """`response_content` with each model replaced by its schema (a $ref to a component)."""
    out: dict[str, Any] = {}
    for status, response in content.items():
        if "content" in response:
            response = {
                **response,
                "content": {
                    ctype: (
                        {**media, "schema": schema_of(media["schema"])}
                        if isinstance(media.get("schema"), type)
                        else media
                    )
                    for ctype, media in response["content"].items()
                },
            }
        out[status] = response
    return out


def openapi_document(specs: list[RouteSpec], *, title: str, version: str) -> dict[str, Any]:
    inputs: list[tuple[Any, Literal["validation", "serialization"], TypeAdapter[Any]]] = []
    content_models: dict[type[BaseModel], None] = {}
    for i, spec in enumerate(specs):
        if spec.body is not None:
            inputs.append(((i, "body"), "validation", TypeAdapter(spec.body)))
        if spec.response is not None:
            inputs.append(((i, "response"), "serialization", TypeAdapter(spec.response)))
        content_models.update(dict.fromkeys(_content_models(spec.response_content or {})))
    for model in content_models:
        inputs.append(((model, "content"), "serialization", TypeAdapter(model)))
    inputs.append((("error", "body"), "serialization", TypeAdapter(ErrorBody)))
    mapping, defs = TypeAdapter.json_schemas(inputs, ref_template=_REF)
    schemas = {key[0]: value for (key, _mode), value in mapping.items()}

    def schema_of(model: type[BaseModel]) -> dict[str, Any]:
        return mapping[((model, "content"), "serialization")]

    paths: dict[str, dict[str, Any]] = {}
    for i, spec in enumerate(specs):
        op: dict[str, Any] = {
            "operationId": spec.handler.__name__,
            "summary": spec.summary,
            "tags": spec.tags,
        }
        params: list[dict[str, Any]] = [
            # Never empty: `/bulletins//submit` is no bulletin's path, and a client that
            # collapses the slashes reaches another route (`/bulletins/{id}` with id "submit").
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
            }
            for name in _PATH_PARAM.findall(spec.path)
        ]
        if spec.query is not None:
            qschema = spec.query.model_json_schema(ref_template=_REF)
            required = set(qschema.get("required", []))
            for name, prop in qschema.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": mapping[((i, "body"), "validation")]}},
            }
        elif spec.raw_body:
            op["requestBody"] = {
                "required": True,
                "content": {
                    ct: {"schema": {"type": "string", "format": "binary"}} for ct in spec.raw_body
                },
            }
        responses: dict[str, Any] = {}
        if spec.response is not None:
            responses[str(spec.status)] = {
                "description": "OK",
                "content": {
                    "application/json": {"schema": mapping[((i, "response"), "serialization")]}
                },
            }
            if spec.query is not None and "before" in spec.query.model_fields:
                responses[str(spec.status)]["headers"] = PAGE_HEADERS
        if spec.response_content is not None:
            responses.update(_resolve_models(spec.response_content, schema_of))
        if not responses:
            responses[str(spec.status)] = {"description": "OK"}
        for code in sorted(_error_codes(spec)):
            content: dict[str, Any] = {"application/json": {"schema": schemas["error"]}}
            if code == 400:
                content["text/plain"] = {"schema": {"type": "string"}}
            responses[str(code)] = {
                "description": _ERROR_TEXT.get(code, "Error"),
                "content": content,
            }
        op["responses"] = responses
        if spec.auth == "operator":
            op["security"] = [{"bearer": []}]
        elif spec.auth == "device":
            op["security"] = [{"device": []}]
        elif spec.auth == "node":
            op["security"] = [{"node": []}]
        paths.setdefault(spec.path, {})[spec.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "token from POST /api/v1/auth/login",
                },
                "device": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Device <device_id>:<device_secret>",
                },
                "node": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": f"{NODE_SCHEME} <unix time>.<HMAC-SHA256 hex>"
                    " (another node of this hub: hub/node_secret.py)",
                },
            },
        },
    }
