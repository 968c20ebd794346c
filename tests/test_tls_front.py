"""The hub behind Debian's nginx with deploy/nginx/loa-hub.conf, over TLS with a CA made here.

One real hub node (`hub serve`, as the README runs it) and a second upstream entry that is
down: the hub is one SQLite file today and several nodes need the shared database of issue
#10, so the second node shows nginx's passive fail-over instead of serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import ipaddress
import json
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.agent import Agent
from edge_agent.cli import main as agent_cli
from edge_agent.doctor import DoctorOptions, _Context, check_hub
from edge_agent.hubclient import tls_context
from edge_agent.identity import HUB_CA_FILE, IDENTITY_FILE, Identity, IdentityError, pin_hub_ca
from edge_agent.players.base import PlayItem
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from loa_contract import Priority, utcnow
from tests.e2e import fast_config, schedule, tone_bytes, window_around

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx" / "loa-hub.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAVE_NGINX = os.access(NGINX, os.X_OK)
TIMEOUT = 20.0
ADMIN, PASSWORD = "nguyenvana", "Mat-khau-9!"

needs_nginx = pytest.mark.skipif(
    not HAVE_NGINX and not os.environ.get("CI"),
    reason="needs nginx (Debian package nginx-light); under CI it is required",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(folder: Path, label: str) -> Pki:
    """A CA of its own and a server certificate it signs for 127.0.0.1 and localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Loa test CA {label}"))
        .issuer_name(_name(f"Loa test CA {label}"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("loa hub"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "hub-ca.pem", folder / "loa-hub.crt", folder / "loa-hub.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(_pem_key(server_key))
    pki.key.chmod(0o600)
    return pki


# ---------------------------------------------------------------- nginx with the deploy file


def site_config(*, https_port: int, http_port: int, nodes: list[int], pki: Pki, logs: Path) -> str:
    """deploy/nginx/loa-hub.conf with its SITE: lines pointed at this test's ports and files;
    each must be found exactly once, so the test follows the file as it changes."""
    text = SITE.read_text(encoding="utf-8")
    changes = {
        "listen 80;  # SITE: port": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl;  # SITE: port": f"listen 127.0.0.1:{https_port} ssl;",
        "listen [::]:443 ssl;": "",
        "server 10.0.0.11:8443 ": f"server 127.0.0.1:{nodes[0]} ",
        "server 10.0.0.12:8443 ": f"server 127.0.0.1:{nodes[1]} ",
        "/etc/nginx/tls/loa-hub.crt": str(pki.cert),
        "/etc/nginx/tls/loa-hub.key": str(pki.key),
        "/var/log/nginx/loa-hub.access.log": str(logs / "access.log"),
        "/var/log/nginx/loa-hub.error.log": str(logs / "error.log"),
    }
    for old, new in changes.items():
        assert text.count(old) == 1, f"{SITE.name} no longer has exactly one {old!r}"
        text = text.replace(old, new)
    return text


def main_config(prefix: Path, site: Path) -> str:
    """What /etc/nginx/nginx.conf gives the site on Debian, with everything in `prefix`."""
    # As root the workers would otherwise become `nobody`, who cannot enter pytest's folders.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        "error_log stderr notice;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n{temp}\n    include {site};\n}}\n"
    )


def write_nginx_files(prefix: Path, site_text: str) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    site = prefix / "loa-hub.conf"
    site.write_text(site_text, encoding="utf-8")
    conf = prefix / "nginx.conf"
    conf.write_text(main_config(prefix, site), encoding="utf-8")
    return conf


@contextlib.asynccontextmanager
async def running_nginx(prefix: Path, site_text: str) -> AsyncIterator[Path]:
    """nginx in the foreground on this test's config; yields the site's error log."""
    assert HAVE_NGINX, f"{NGINX} is missing: install Debian's nginx-light"
    conf = write_nginx_files(prefix, site_text)
    proc = await asyncio.create_subprocess_exec(
        NGINX, "-p", f"{prefix}/", "-c", str(conf),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    said: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        # The master logs this once its sockets listen and it forks the worker.
        async with asyncio.timeout(TIMEOUT):
            while not any("start worker process " in line for line in said):
                line = (await proc.stderr.readline()).decode(errors="replace")
                assert line, "nginx stopped:\n" + "".join(said)
                said.append(line)
        drain = asyncio.create_task(_drain(proc.stderr))
        yield prefix / "error.log"
    finally:
        if proc.returncode is None:
            proc.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                await asyncio.wait_for(proc.wait(), TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            await drain


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


# ---------------------------------------------------------------- the hub node


async def _run(*args: str, stdin: bytes = b"") -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=_env(),
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT)
    assert proc.returncode == 0, f"{args}: {out.decode(errors='replace')}"
    return out.decode()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@contextlib.asynccontextmanager
async def hub_node(data: Path, port: int, public_url: str) -> AsyncIterator[None]:
    """`hub serve` behind the proxy, as the README runs it (the account made by `hub user add`).

    Without --cookie-secure, so that a `Secure` cookie can only come from nginx's
    X-Forwarded-Proto.
    """
    await _run(
        "-m", "hub.cli", "user", "add", ADMIN, "--role", "admin", "--unit", "province",
        "--password-stdin", "--data", str(data),
        stdin=f"{PASSWORD}\n".encode(),
    )  # fmt: skip
    log = (data / "hub.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "serve", "--data", str(data),
        "--host", "127.0.0.1", "--port", str(port),
        "--public-url", public_url, "--trusted-proxy", "127.0.0.1",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        env=_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:  # aiohttp's run_app prints this once the socket listens
                line = (await proc.stdout.readline()).decode(errors="replace")
                assert line, "hub serve stopped: " + (data / "hub.log").read_text()
                if "Running on" in line:
                    break
        drain = asyncio.create_task(_drain(proc.stdout))
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            await drain
        log.close()


# ---------------------------------------------------------------- a console user over TLS


class Operator:
    """An admin using the JSON API through the proxy, trusting only the test's CA."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self.token: str | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        expect: int = 200,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        async with self.session.request(
            method, self.url + path, json=json_body, data=data, headers=sent
        ) as response:
            body = await response.json(content_type=None)
            assert response.status == expect, f"{method} {path}: {response.status} {body}"
            return body

    async def login(self) -> None:
        body = await self.call(
            "POST", "/api/v1/auth/login", json_body={"username": ADMIN, "password": PASSWORD}
        )
        self.token = body["token"]


async def console_login(session: aiohttp.ClientSession, url: str) -> dict[str, bool]:
    """Log in with the console's form, as a browser does; the session cookie's flags."""
    async with session.get(url + "/login") as page:
        assert page.status == 200
        csrf = page.cookies["loa_csrf"].value
    async with session.post(
        url + "/login",
        data={"csrf": csrf, "username": ADMIN, "password": PASSWORD, "next": "/"},
        headers={"Cookie": f"loa_csrf={csrf}"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()
        cookie = response.cookies["loa_session"]
        return {"secure": bool(cookie["secure"]), "httponly": bool(cookie["httponly"])}


async def _enroll(data: Path, url: str, code: str, ca: Path) -> int:
    return await asyncio.to_thread(
        agent_cli,
        ["enroll", "--hub", url, "--code", code, "--data", str(data), "--ca", str(ca)],
    )


async def _next_play_of(agent: Agent, bulletin_id: str) -> PlayItem:
    """The next start of `bulletin_id` (the normal bulletin may air again before it)."""
    async with asyncio.timeout(TIMEOUT):
        while (item := await agent.play_started.get()).bulletin_id != bulletin_id:
            pass
    return item


# ---------------------------------------------------------------- the tests


@needs_nginx
async def test_an_agent_enrolls_and_plays_through_nginx_pinning_the_hub_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOA_LANG", raising=False)  # the CLI's default language: Vietnamese
    pki = make_pki(tmp_path / "pki", "province")
    stranger = make_pki(tmp_path / "other-pki", "someone else")
    https_port, http_port, live, dead = (_free_port() for _ in range(4))
    url = f"https://127.0.0.1:{https_port}"
    site = site_config(
        https_port=https_port,
        http_port=http_port,
        nodes=[dead, live],  # the dead node first: least_conn tries it while it is idle
        pki=pki,
        logs=tmp_path / "nginx",
    )
    trusted = aiohttp.TCPConnector(ssl=tls_context(pki.ca))
    async with (
        hub_node(tmp_path / "hub", live, url),
        running_nginx(tmp_path / "nginx", site) as error_log,
        aiohttp.ClientSession(connector=trusted) as session,
    ):
        operator = Operator(url, session)
        await operator.login()

        # TLS in front: HSTS on every answer, plain HTTP sent to HTTPS.
        async with session.get(url + "/healthz") as response:
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"] == "max-age=63072000"
            assert response.version == aiohttp.HttpVersion11
        async with session.get(
            f"http://127.0.0.1:{http_port}/login", allow_redirects=False
        ) as response:
            assert response.status == 301
            assert response.headers["Location"] == "https://127.0.0.1/login"

        # The console's login cookie is Secure through nginx (X-Forwarded-Proto from the
        # proxy), and not when the same node is asked directly over plain HTTP.
        assert await console_login(session, url) == {"secure": True, "httponly": True}
        direct = f"http://127.0.0.1:{live}"
        assert await console_login(session, direct) == {"secure": False, "httponly": True}

        # nginx replaces whatever X-Forwarded-For a client sends: the audit log keeps the
        # address nginx saw, never one a client claims.
        await operator.call(
            "POST",
            "/api/v1/auth/login",
            expect=401,
            json_body={"username": ADMIN, "password": "Sai-mat-khau-1!"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        failed = await operator.call("GET", "/api/v1/audit?action=auth.login_failed")
        assert failed["items"][0]["address"] == "127.0.0.1"

        # A body over the hub's JSON limit is refused by nginx, in JSON.
        big = json.dumps({"title": "x" * (1024 * 1024 + 100)}).encode()
        refused = await operator.call(
            "POST",
            "/api/v1/bulletins",
            expect=413,
            data=big,
            headers={"Content-Type": "application/json"},
        )
        assert refused["error"] == "too_large"

        now = utcnow()
        await operator.call(
            "POST",
            "/api/v1/communes",
            expect=201,
            json_body={
                "code": "xa-tls",
                "name": "Xã TLS",
                "windows": {"speaker": [window_around(now)], "board": [window_around(now)]},
            },
        )
        slot = await operator.call(
            "POST",
            "/api/v1/devices",
            expect=201,
            json_body={
                "commune": "xa-tls",
                "name": "Cụm loa thôn 1",
                "kind": "speaker",
                "profile": "speaker-cluster",
            },
        )
        code = slot["enrollment_code"]

        # Pinned to someone else's CA: refused before a byte of HTTP, in Vietnamese, nothing
        # saved, and the one-time code still unused.
        capsys.readouterr()
        wrong = tmp_path / "agent-wrong"
        assert await _enroll(wrong, url, code, stranger.ca) == 4
        said = capsys.readouterr().err
        assert f"Không tin được hub {url}" in said
        assert str(stranger.ca) in said and "CERTIFICATE_VERIFY_FAILED" in said
        assert not (wrong / IDENTITY_FILE).exists() and not (wrong / HUB_CA_FILE).exists()

        data = tmp_path / "agent"
        assert await _enroll(data, url, code, pki.ca) == 0
        assert "Đã đăng ký thiết bị" in capsys.readouterr().out
        identity = Identity.load(data)
        assert identity.hub_url == url and identity.hub_ca == HUB_CA_FILE
        assert (data / HUB_CA_FILE).read_bytes() == pki.ca.read_bytes()

        # `doctor` checks the hub with the same pinned trust.
        hub_check = await asyncio.to_thread(
            check_hub, _Context(DoctorOptions(data_dir=data), identity=identity)
        )
        assert hub_check.status == "pass", hub_check
        assert "TLSv1.3" in hub_check.detail

        agent = Agent(
            fast_config(data),
            identity,
            load_profile(identity.profile),
            NullPlayer(default_duration_s=0.5),
        )
        await agent.start()
        try:
            # The push channel is up through nginx (the only way to the hub the agent has).
            await agent.wait_until(agent.status_connected, TIMEOUT)

            tone = tone_bytes(tmp_path, "ban-tin", 0.5)
            audio = await operator.call(
                "POST",
                "/api/v1/media",
                expect=201,
                data=tone,
                headers={"Content-Type": "audio/wav"},
            )
            # Media downloads pass Range through.
            async with session.get(
                f"{url}/api/v1/media/{audio['sha256']}",
                headers={"Authorization": f"Bearer {operator.token}", "Range": "bytes=100-"},
            ) as response:
                assert response.status == 206
                assert await response.read() == tone[100:]

            created = await operator.call(
                "POST",
                "/api/v1/bulletins",
                expect=201,
                json_body={
                    "title": "Lịch tiêm phòng",
                    "kind": "audio",
                    "priority": "normal",
                    "media": audio["sha256"],
                    "targets": {"communes": ["xa-tls"]},
                    "schedule": schedule(now),
                },
            )
            await operator.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
            played = await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
            assert played.bulletin_id == created["id"]
            assert agent.cache.has(audio["sha256"])

            emergency = await operator.call(
                "POST",
                "/api/v1/emergencies",
                expect=201,
                json_body={
                    "title": "Cảnh báo lũ",
                    "media": audio["sha256"],
                    "targets": {"communes": ["xa-tls"]},
                    "repeats": 1,
                },
            )
            aired = await _next_play_of(agent, emergency["id"])
            assert aired.priority is Priority.EMERGENCY
            assert agent.status_connected()
        finally:
            await agent.stop()

    # Passive health checks: the dead node was tried, failed over from, and set aside.
    log = error_log.read_text(errors="replace")
    assert f'upstream: "http://127.0.0.1:{dead}/' in log
    assert "Connection refused" in log
    assert "upstream server temporarily disabled" in log


async def test_enroll_refuses_a_ca_it_cannot_use_before_contacting_the_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOA_LANG", raising=False)
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("không phải chứng chỉ\n", encoding="utf-8")
    data = tmp_path / "agent"
    # No hub listens at this address: refusing here means nothing was attempted.
    url = f"https://127.0.0.1:{_free_port()}"
    assert await _enroll(data, url, "123456", not_pem) == 2
    assert f"Tệp CA {not_pem} không dùng được" in capsys.readouterr().err
    assert await _enroll(data, url, "123456", tmp_path / "missing.pem") == 2
    assert "Tệp CA" in capsys.readouterr().err
    plain = f"http://127.0.0.1:{_free_port()}"
    assert await _enroll(data, plain, "123456", not_pem) == 2
    assert "--ca chỉ dùng với địa chỉ hub https://" in capsys.readouterr().err
    assert not data.exists() or not any(data.iterdir())


def test_a_pinned_ca_that_went_missing_fails_closed(tmp_path: Path) -> None:
    """Falling back to the system's CA store would trust more than enrollment pinned."""
    pki = make_pki(tmp_path / "pki", "province")
    data = tmp_path / "agent"
    identity = Identity(
        hub_url="https://127.0.0.1:1",
        device_id="dev-1",
        device_secret="s3cret",
        device_kind="speaker",
        commune="xa-tls",
        profile="speaker-cluster",
        hub_keys=[],
        hub_ca=pin_hub_ca(data, pki.ca.read_bytes()),
    )
    identity.save(data)
    assert Identity.load(data).ca_file(data) == data / HUB_CA_FILE
    (data / HUB_CA_FILE).unlink()
    with pytest.raises(IdentityError, match="pinned at enrollment"):
        Identity.load(data)
