from __future__ import annotations

import hashlib
import hmac

import desk.demo_ai
from desk.demo_ai import brain, signatures


def test_public_surface() -> None:
    assert desk.demo_ai.__all__ == ["build_demo_ai"]
    for module in (desk.demo_ai, brain, signatures):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_signature_is_the_contracts_format() -> None:
    body = b'{"type":"turn"}'
    mac = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signatures.sign("secret", 1700000000, body) == f"v1={mac}"
    assert signatures.verify("secret", "1700000000", f"v1={mac}", body, now=1700000000 + 300)
    assert not signatures.verify("secret", "1700000000", f"v1={mac}", body, now=1700000000 + 301)
    assert not signatures.verify("secret", "\u00b2", f"v1={mac}", body)
