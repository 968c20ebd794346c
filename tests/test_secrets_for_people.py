"""Secrets the hub hands to people go after command-line flags; none may look like a flag."""

from hub.security import new_device_secret, new_token


def test_tokens_and_device_secrets_never_start_with_a_dash() -> None:
    # A broken generator starts 1 in 64 with "-": 2,000 draws miss that with odds below 1e-13.
    drawn = [new_token() for _ in range(1000)] + [new_device_secret() for _ in range(1000)]
    assert not [secret for secret in drawn if secret.startswith("-")]
    assert len(set(drawn)) == len(drawn)
    assert all(len(secret) == 43 for secret in drawn)  # 32 bytes, base64url without padding
