"""The one place that owns the hub–agent wire contract."""

from .models import *  # noqa: F403
from .models import __all__ as _models_all
from .signing import HubSigner, SignatureError, TrustedKeys, key_id_for

__all__ = [*_models_all, "HubSigner", "SignatureError", "TrustedKeys", "key_id_for"]
