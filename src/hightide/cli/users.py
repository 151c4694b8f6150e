"""``hightide users``: dashboard users and their one-time login links, on the server's database."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from hightide.cli.options import DEFAULT_SERVER_DB, DatabaseUrl, PublicUrl
from hightide.cli.output import console
from hightide.config import DEFAULT_PORT

if TYPE_CHECKING:
    from hightide.engine.signin import SignIn

T = TypeVar("T")

users_app = typer.Typer(help="Dashboard users and their login links (operators).", no_args_is_help=True)

Email = Annotated[
    str, typer.Argument(help="The user's email address (admin@localhost is one too).", show_default=False)
]


def _with_signin(database_url: str, fn: Callable[[SignIn], T]) -> T:
    from hightide.engine.environments import bootstrap
    from hightide.engine.signin import SignIn
    from hightide.store import open_store

    store = open_store(database_url)
    try:
        store.migrate()
        bootstrap(store, time.time())
        return fn(SignIn(store))
    finally:
        store.close()


def print_link(email: str, url: str) -> None:
    console.print(f"Login link for {email} (works once, for 24 hours):")
    typer.echo(url)  # on a line of its own, never wrapped: a terminal makes it clickable


def base_url(public_url: str | None) -> str:
    return (public_url or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/")


@users_app.command("create")
def create(
    email: Email,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            envvar="HIGHTIDE_ADMIN",
            help="An admin sees every project and manages users; a member sees theirs.",
        ),
    ] = False,
    project: Annotated[
        list[str] | None,
        typer.Option(
            "--project",
            envvar="HIGHTIDE_PROJECT",
            help="A project the member belongs to (repeatable; default: default).",
        ),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_SERVER_DB,
    public_url: PublicUrl = None,
) -> None:
    """Create a dashboard user and print a one-time login link for them."""
    from hightide.engine.signin import login_url

    projects = tuple(project or ("default",))

    def go(signin: SignIn) -> tuple[str, str]:
        user = signin.create_user(email, admin=admin, projects=() if admin else projects)
        return user.email, signin.login_link(user)

    address, token = _with_signin(database_url, go)
    role = "admin (sees every project)" if admin else f"member of {', '.join(projects)}"
    console.print(f"Created {address}, {role}.")
    print_link(address, login_url(base_url(public_url), token))


@users_app.command("login-link")
def login_link(email: Email, database_url: DatabaseUrl = DEFAULT_SERVER_DB, public_url: PublicUrl = None) -> None:
    """Print a new one-time login link for a user (their other links and sessions keep working)."""
    from hightide.engine.signin import login_url

    def go(signin: SignIn) -> tuple[str, str]:
        user = signin.user(email)
        return user.email, signin.login_link(user)

    address, token = _with_signin(database_url, go)
    print_link(address, login_url(base_url(public_url), token))
