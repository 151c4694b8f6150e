"""Every client a process makes shares one verifying TLS context, built once."""

from __future__ import annotations

import ssl

from hightide import AsyncClient
from hightide.sdk.http import tls_context


async def test_clients_share_one_verifying_tls_context() -> None:
    context = tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded
    for _ in range(2):
        client = AsyncClient(api_url="https://127.0.0.1:9", secret_key="tr_dev_unit")
        await client.aclose()
    assert tls_context() is context  # built once for the process, not once per client
