"""The HTTP adapter and composition root: API routes, auth, services' lifecycle."""

from hightide.server.app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
