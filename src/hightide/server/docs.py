"""The API's documentation page, with Swagger UI served by the server itself (it works offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/api/docs"
OPENAPI_URL = "/api/openapi.json"
ASSETS_URL = f"{DOCS_URL}/assets"
ASSETS = Path(__file__).parent / "static" / "swagger"


def install(app: FastAPI) -> None:
    """Serve ``/api/docs`` and its assets; the app itself serves the schema at ``OPENAPI_URL``."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="swagger-assets")

    @app.get(DOCS_URL, include_in_schema=False, response_class=HTMLResponse)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title="Hightide API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # the default badge calls an online validator
        )
