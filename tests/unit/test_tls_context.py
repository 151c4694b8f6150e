"""Every client a process makes shares one verifying TLS context, built once."""

from __future__ import annotations

import ssl

from hightide.sdk.http import ApiSession, tls_context


async def test_clients_share_one_verifying_tls_context() -> None:
    context = tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded
    sessions = [ApiSession("https://127.0.0.1:9", "tr_dev_unit") for _ in range(2)]
    try:
        # httpx keeps the context on the connection pool of each client's transport.
        assert all(s._client._transport._pool._ssl_context is context for s in sessions)  # type: ignore[attr-defined]
    finally:
        for session in sessions:
            await session.aclose()
