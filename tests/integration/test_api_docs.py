"""``/api/docs`` works with no network: the page and every asset it loads come from the server."""

from __future__ import annotations

import re

import httpx

from tests.integration.conftest import Stack


def test_the_docs_page_needs_nothing_but_the_server(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as anonymous:
        page = anonymous.get("/api/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
        urls += re.findall(r"""url:\s*["']([^"']+)["']""", page.text)
        assert len(urls) >= 4, urls  # the script, the style sheet, the icon and the schema
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), f"{url} is not served by the server"
            asset = anonymous.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
        assert not re.search(r"https?://", page.text), "the page refers to another host"
        assert "/api/v1/tasks/{task_id}/trigger" in anonymous.get("/api/openapi.json").json()["paths"]
