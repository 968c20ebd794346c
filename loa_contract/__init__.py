"""The one place that owns the hub–agent wire contract."""

from .faults import Fault, known_fault
from .models import *  # noqa: F403
from .models import __all__ as _models_all
from .releases import *  # noqa: F403
from .releases import __all__ as _releases_all
from .signing import HubSigner, SignatureError, TrustedKeys, UnknownKey, key_id_for

__all__ = [
    *_models_all,
    *_releases_all,
    "Fault",
    "HubSigner",
    "SignatureError",
    "UnknownKey",
    "TrustedKeys",
    "key_id_for",
    "known_fault",
]
