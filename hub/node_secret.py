"""How hub nodes recognise each other: a secret derived from the signing key they share.

Nodes of one hub hold the same Ed25519 signing key (`hub key export/import`). From it each
derives the same node secret with HKDF-SHA256 (its own `info`, so the secret says nothing about
the key and the key is never sent), and a node's request to another carries
`Authorization: LoaNode <unix seconds>.<HMAC-SHA256 of that time>`. The other node accepts it
within `SKEW` of its own clock: a captured header (TLS makes that hard) opens the node routes
for minutes, and they only read what every node holds anyway (content-addressed objects). A
device's or an operator's credentials never open a node route, nor a node's header any other.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from loa_contract import HubSigner

SCHEME = "LoaNode"
#: Clock difference between two nodes a request may show.
SKEW = timedelta(minutes=5)
_INFO = b"loa hub node-to-node requests v1"


def node_secret(signer: HubSigner) -> bytes:
    """The 32-byte secret every node holding `signer`'s key derives alike."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(signer.to_pem())


def _mac(secret: bytes, at: int) -> str:
    return hmac.new(secret, f"loa node {at}".encode(), hashlib.sha256).hexdigest()


def authorization(secret: bytes, now: datetime) -> str:
    """The Authorization header value of a node's request made `now`."""
    at = int(now.timestamp())
    return f"{SCHEME} {at}.{_mac(secret, at)}"


def verify(secret: bytes, header: str | None, now: datetime) -> bool:
    """Whether `header` is another node's, made recently enough."""
    if not header or not header.startswith(f"{SCHEME} "):
        return False
    at_text, _, mac = header[len(SCHEME) + 1 :].partition(".")
    if not at_text.isdigit() or len(at_text) > 12:
        return False
    at = int(at_text)
    if abs(now.timestamp() - at) > SKEW.total_seconds():
        return False
    return hmac.compare_digest(mac, _mac(secret, at))
