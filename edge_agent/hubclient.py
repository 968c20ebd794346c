"""The agent's one HTTP client to the hub, with the agent's one retry policy.

Policy: exponential back-off with full jitter (so a thousand devices coming back after an
outage spread out instead of arriving in the same second), retrying connection errors,
timeouts and 5xx answers, never 4xx (the hub has decided; asking again changes nothing),
with a bounded number of attempts per call. Callers that run their own loop (the WebSocket
reconnect loop, the cache's resumable download) pass `retrying=False` or drive `retrier()`.

Trust: TLS is always verified, host name included. A device enrolled with `--ca FILE` trusts
only that CA (the province's own, pinned at enrollment), not the system's store: a
certificate any public CA would sign for the hub's name is not enough. A certificate that
fails is `HubUntrusted`, never retried by the policy: asking again changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from loa_contract import (
    EnrollRequest,
    EnrollResponse,
    KeyChain,
    ReportAck,
    ReportBatch,
    UpdateOffer,
    UpdateReport,
)

if TYPE_CHECKING:
    from tenacity import AsyncRetrying

API = "/api/v1"
T = TypeVar("T")


class HubError(Exception):
    """Base of what HubClient raises."""


class HubUnavailable(HubError):
    """The hub could not be reached or failed (network error, timeout, 5xx) after retries."""


class HubUntrusted(HubUnavailable):
    """Something answered at the hub's address but its certificate did not verify against the
    trusted CAs (or not for the hub's name): as far as the device knows, the hub is not there."""


class HubRejected(HubError):
    """The hub answered 4xx: the request itself is wrong or not allowed."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"hub refused with {status}: {body[:300]}")
        self.status = status
        self.body = body


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The TLS trust for the hub: only the CA in `ca_file` when given, else the system store.

    Certificates and host names are checked either way. OSError or ssl.SSLError when the file
    cannot be read or holds no certificate.
    """
    if ca_file is None:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=ca_file)
    return context


def _unreachable(what: str, exc: BaseException) -> HubUnavailable:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return HubUntrusted(f"{what}: certificate not trusted: {exc.certificate_error}")
    return HubUnavailable(f"{what}: {type(exc).__name__}: {exc}")


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, HubUnavailable) and not isinstance(exc, HubUntrusted)


@dataclass(frozen=True)
class ManifestFetch:
    """A manifest answer. No time comes with it: the HTTP `Date` header is not signed (a proxy
    may rewrite it), so the agent takes the time only from what the hub signed."""

    envelope: bytes | None  # None when the hub answered 304 Not Modified
    etag: str | None


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date, for diagnostics only (`doctor` shows it): never a source of trust."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@functools.cache  # reading package metadata costs ~0.6 ms: once per process is enough
def agent_version() -> str:
    try:
        return metadata.version("loa")
    except metadata.PackageNotFoundError:
        return "unknown"


class HubClient:
    def __init__(
        self,
        base_url: str,
        device_id: str | None = None,
        secret: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retrying: bool = True,
        ca_file: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Without a pinned CA, aiohttp's own default context (the system store) is shared by
        # every client: a fleet simulator builds thousands of clients and must not load the
        # store thousands of times.
        self._tls: ssl.SSLContext | bool = tls_context(ca_file) if ca_file is not None else True
        self.device_id = device_id
        self._secret = secret
        self._session = session
        self._own_session = session is None
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retrying = retrying
        #: When the hub last answered at all (any status below 500).
        self.last_ok_at: datetime | None = None
        self.last_ok_monotonic: float | None = None
        #: Called after each answered request with (method, path, status, seconds): the
        #: fleet simulator times health reports with it. None costs nothing.
        self.on_reply: Callable[[str, str, int, float], None] | None = None

    def switch_to(self, base_url: str) -> None:
        """Talk to another hub node from the next request on (WebSocket, manifest, media and
        reports alike). Requests under way finish where they started; a cut download's next
        attempt resumes on the new node, for media is named by its sha256 on every node."""
        self.base_url = base_url.rstrip("/")

    async def answers(self, base_url: str) -> bool:
        """Whether the hub node at `base_url` is up and reads its database (its /healthz), in
        one attempt: the agent asks its enrolled hub this while another node serves it."""
        try:
            async with self._http().get(
                base_url.rstrip("/") + "/healthz",
                # A public route: the device's secret is not sent with it.
                headers={"User-Agent": f"loa-edge-agent/{agent_version()}"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                # The pinned CA holds here too, or a device behind the province's own CA
                # could never tell its home hub is back.
                ssl=self._tls,
            ) as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None if self._own_session else self._session

    def _http(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be born inside the running event loop.
        if self._session is None or self._session.closed:
            if not self._own_session:
                raise RuntimeError("the session given to HubClient is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": f"loa-edge-agent/{agent_version()}"}
        if self.device_id is not None and self._secret is not None:
            headers["Authorization"] = f"Device {self.device_id}:{self._secret}"
        if extra:
            headers.update(extra)
        return headers

    # ------------------------------------------------------------------ the policy

    def retrier(self, retrying: bool | None = None) -> AsyncRetrying:
        """The retry policy, for callers that drive their own attempts (`async for`)."""
        # tenacity is imported at the first failure, not with the agent: an agent whose hub
        # answers never needs it (issue #8, a light agent).
        from tenacity import (
            AsyncRetrying,
            retry_if_exception,
            stop_after_attempt,
            wait_random_exponential,
        )

        on = self.retrying if retrying is None else retrying
        return AsyncRetrying(
            retry=retry_if_exception(_worth_retrying),
            stop=stop_after_attempt(self.attempts if on else 1),
            wait=wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_max),
            reraise=True,
        )

    async def _with_policy(self, attempt: Callable[[], Awaitable[T]], retrying: bool | None) -> T:
        """`attempt()` under the retry policy. The first attempt runs bare and the policy's
        machinery is built only once it has failed: tenacity's objects hold reference
        cycles, garbage for the collector at every call, and calls mostly succeed (a
        simulator process of hundreds of agents paused on collecting them). The first
        failure then counts as the policy's first attempt, so attempts and back-off are the
        policy's own."""
        try:
            return await attempt()
        except HubUnavailable as exc:
            first: HubUnavailable | None = exc
        async for retry in self.retrier(retrying):
            with retry:
                if first is not None:
                    failed, first = first, None
                    raise failed
                return await attempt()
        raise AssertionError("unreachable: the retrier re-raises the last error")

    def _observe(self, status: int) -> None:
        if status < 500:
            self.last_ok_at = datetime.now(UTC)
            self.last_ok_monotonic = time.monotonic()

    def _check(self, status: int, body: bytes | str, ok: tuple[int, ...]) -> None:
        if status in ok:
            return
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if status >= 500:
            raise HubUnavailable(f"hub answered {status}: {text[:300]}")
        raise HubRejected(status, text)

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...],
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> _Reply:
        started = time.perf_counter()
        try:
            async with self._http().request(
                method,
                self.base_url + path,
                headers=self._headers(headers),
                data=data,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                ssl=self._tls,
            ) as resp:
                # The body is read inside the attempt so a connection cut mid-body is retried.
                body = await resp.read()
                self._observe(resp.status)
                if self.on_reply is not None:
                    self.on_reply(method, path, resp.status, time.perf_counter() - started)
                self._check(resp.status, body, ok)
                return _Reply(resp.status, resp.headers, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(f"{method} {path}", exc) from exc

    async def _call(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        retrying: bool | None = None,
    ) -> _Reply:
        return await self._with_policy(
            functools.partial(self._attempt, method, path, ok=ok, headers=headers, data=data),
            retrying,
        )

    # ------------------------------------------------------------------ endpoints

    async def enroll(
        self, code: str, hostname: str | None, *, retrying: bool | None = None
    ) -> EnrollResponse:
        request = EnrollRequest(code=code, agent_version=agent_version(), hostname=hostname)
        reply = await self._call(
            "POST",
            f"{API}/enroll",
            ok=(200, 201),
            headers={"Content-Type": "application/json"},
            data=request.model_dump_json().encode(),
            retrying=retrying,
        )
        return EnrollResponse.model_validate_json(reply.body)

    async def fetch_manifest(
        self, etag: str | None, *, retrying: bool | None = None
    ) -> ManifestFetch:
        headers = {"If-None-Match": etag} if etag else None
        reply = await self._call(
            "GET", f"{API}/device/manifest", ok=(200, 304), headers=headers, retrying=retrying
        )
        if reply.status == 304:
            return ManifestFetch(None, reply.headers.get("ETag", etag))
        return ManifestFetch(reply.body, reply.headers.get("ETag"))

    async def fetch_key_chain(self, *, retrying: bool | None = None) -> KeyChain:
        """The hub's key endorsements (each is checked by the caller, against keys it trusts)."""
        reply = await self._call("GET", f"{API}/device/keys", retrying=retrying)
        return KeyChain.model_validate_json(reply.body, extra="ignore")

    @asynccontextmanager
    async def open_media(
        self, sha256: str, offset: int = 0, *, retrying: bool | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The media response with its body unread: 200, 206 (for a Range) or 416.

        Only reaching the hub and getting the status is retried here; a cut while the caller
        streams the body surfaces as aiohttp.ClientError, for the caller to resume.
        """
        headers = self._headers({"Range": f"bytes={offset}-"} if offset > 0 else None)
        # No total timeout: a large file on 3G takes minutes. A stalled read still ends.
        limits = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.timeout
        )
        path = f"{API}/device/media/{sha256}"
        response = await self._with_policy(
            functools.partial(self._open_media_once, path, headers, limits), retrying
        )
        try:
            yield response
        finally:
            response.release()

    async def _open_media_once(
        self, path: str, headers: dict[str, str], limits: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        response: aiohttp.ClientResponse | None = None
        try:
            response = await self._http().get(
                self.base_url + path, headers=headers, timeout=limits, ssl=self._tls
            )
            self._observe(response.status)
            if response.status in (200, 206, 416):
                return response
            body = await response.text(errors="replace")
            self._check(response.status, body, ())
            raise AssertionError("unreachable: _check raises for any status not allowed")
        except BaseException as exc:
            if response is not None:
                response.release()
            if isinstance(exc, (aiohttp.ClientError, TimeoutError)):
                raise _unreachable(f"GET {path}", exc) from exc
            raise

    async def post_reports(
        self, reports: list[Any], *, stream: str = "", retrying: bool | None = None
    ) -> ReportAck:
        # Safe to retry: the hub stores each report once by (device, stream, seq).
        batch = ReportBatch(stream=stream, reports=reports)
        reply = await self._call(
            "POST",
            f"{API}/device/reports",
            ok=(200, 201),
            headers={"Content-Type": "application/json"},
            data=batch.model_dump_json().encode(),
            retrying=retrying,
        )
        return ReportAck.model_validate_json(reply.body)

    async def check_update(
        self, report: UpdateReport, *, retrying: bool | None = None
    ) -> UpdateOffer:
        """Say what this device runs and how its last update went; hear what it should run
        (a signed release descriptor, checked by the caller) and when to ask again."""
        reply = await self._call(
            "POST",
            f"{API}/device/update",
            headers={"Content-Type": "application/json"},
            data=report.model_dump_json().encode(),
            retrying=retrying,
        )
        return UpdateOffer.model_validate_json(reply.body, extra="ignore")

    async def post_frame(self, picture: bytes, mime: str) -> None:
        """A picture of the board's screen; tried once (the next one replaces a lost one)."""
        await self._call(
            "POST",
            f"{API}/device/frame",
            ok=(201,),
            headers={"Content-Type": mime},
            data=picture,
            retrying=False,
        )

    async def connect_ws(
        self, heartbeat: float = 20.0, *, retrying: bool | None = False
    ) -> aiohttp.ClientWebSocketResponse:
        """Open the push channel. aiohttp's heartbeat is off by default; here it is always on,
        so a dead link is noticed in seconds rather than when the OS gives up on TCP."""
        path = f"{API}/device/ws"

        async def connect() -> aiohttp.ClientWebSocketResponse:
            try:
                # The handshake would otherwise get the session's default 5 minutes.
                async with asyncio.timeout(self.timeout):
                    return await self._http().ws_connect(
                        self.base_url + path,
                        headers=self._headers(),
                        heartbeat=heartbeat,
                        timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout),
                        ssl=self._tls,
                    )
            except aiohttp.WSServerHandshakeError as exc:
                self._observe(exc.status)
                self._check(exc.status, exc.message, ())
                raise HubUnavailable(f"websocket handshake failed: {exc}") from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _unreachable(f"GET {path}", exc) from exc

        ws = await self._with_policy(connect, retrying)
        self._observe(101)
        return ws
