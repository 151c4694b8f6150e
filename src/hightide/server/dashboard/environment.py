"""The Environment page: the environment's API keys, its variables (still to come, with deploys) and
the members of its project (SPEC §5, docs/dashboard.md).

Everyone who sees the environment sees its keys (their first and last characters only) and its project's
members; only admins create and revoke keys and add and remove members. A new key's secret and a new
member's login link are shown once, on the page that answers the POST that made them: never in a URL,
a redirect or the database (only their hashes are stored)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from hightide.engine.environments import ENVIRONMENTS, create_key, revoke_key
from hightide.engine.signin import SignedIn, login_url
from hightide.errors import AlreadyExistsError, NotFoundError, PermissionDeniedError, ValidationError
from hightide.server.dashboard.pages import Nav, open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession, form_fields, signin_of
from hightide.store import Store
from hightide.store.records import ApiKey
from hightide.store.users import Member

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PAGE = "/projects/{project}/env/{env}/environment"

# What a redirect after an action may say: a fixed code in the URL, never a value.
NOTICES = {
    "key-revoked": "Key revoked: requests that use it are refused (401) from now on, on every server.",
    "member-added": "Member added: they see this project the next time they open the dashboard.",
    "member-removed": "Member removed: they no longer see this project, from their next request.",
}


def _store(request: Request) -> Store:
    return signin_of(request).store


def _require_admin(signed_in: SignedIn, action: str) -> None:
    if not signed_in.user.is_admin:
        raise PermissionDeniedError(f"only an admin can {action}; ask one of the admins listed under Members")


async def _page(request: Request, signed_in: SignedIn, nav: Nav, status_code: int = 200, **extra: Any) -> Response:
    keys = await run_in_threadpool(_store(request).environments.list_api_keys, nav.env.id)
    members = await run_in_threadpool(signin_of(request).members, nav.env)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    context: dict[str, Any] = {"notice": notice, "member_error": None, "member_email": ""} | extra
    return render(
        request,
        "environment.html",
        status_code,
        signed_in=signed_in,
        nav=nav,
        keys=keys,
        key_prefix=ENVIRONMENTS.get(nav.env.kind, "ht_prev"),
        live_keys=sum(1 for k in keys if not k.revoked),
        members=members,
        admin=signed_in.user.is_admin,
        **context,
    )


def _back(nav: Nav, notice: str, anchor: str) -> Response:
    return RedirectResponse(f"{nav.url('environment')}?notice={notice}#{anchor}", status_code=303)


@router.get(PAGE)
async def environment_page(request: Request, project: str, env: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "environment")
    return await _page(request, signed_in, nav)


# -- API keys ------------------------------------------------------------------------------------
@router.post(PAGE + "/keys")
async def create_key_action(request: Request, project: str, env: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "environment")
    _require_admin(signed_in, "create a secret key")
    secret = await run_in_threadpool(create_key, _store(request), nav.env, time.time())
    return render(request, "environment_once.html", signed_in=signed_in, nav=nav, secret=secret, kind="key")


def _find_key(store: Store, nav: Nav, key_id: str) -> ApiKey:
    key = next((k for k in store.environments.list_api_keys(nav.env.id) if k.id == key_id), None)
    if key is None:
        raise NotFoundError(f"environment {nav.env.slug!r} has no key {key_id!r}")
    return key


@router.get(PAGE + "/keys/{key_id}/revoke")
async def confirm_revoke(request: Request, project: str, env: str, key_id: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "environment")
    _require_admin(signed_in, "revoke a secret key")
    key = await run_in_threadpool(_find_key, _store(request), nav, key_id)
    if key.revoked:
        return _back(nav, "key-revoked", "keys")
    return render(request, "environment_confirm.html", signed_in=signed_in, nav=nav, key=key, member=None)


@router.post(PAGE + "/keys/{key_id}/revoke")
async def revoke_key_action(request: Request, project: str, env: str, key_id: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "environment")
    _require_admin(signed_in, "revoke a secret key")
    await run_in_threadpool(revoke_key, _store(request), nav.env, key_id, time.time())
    return _back(nav, "key-revoked", "keys")


# -- members -------------------------------------------------------------------------------------
@router.post(PAGE + "/members")
async def add_member_action(request: Request, project: str, env: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "environment")
    _require_admin(signed_in, "add a member")
    email = (await form_fields(request)).get("email", "").strip()
    signin = signin_of(request)
    try:
        user, created = await run_in_threadpool(signin.add_member, email, nav.env)
    except (ValidationError, AlreadyExistsError) as exc:  # shown next to the form, with what was typed
        status = 409 if isinstance(exc, AlreadyExistsError) else 422
        return await _page(request, signed_in, nav, status, member_error=exc.message, member_email=email)
    if not created:
        return _back(nav, "member-added", "members")
    token = await run_in_threadpool(signin.login_link, user)
    # The server's public URL when it was given one (behind a proxy the request's host is internal).
    link = login_url(request.app.state.public_url or str(request.base_url), token)
    return render(request, "environment_once.html", signed_in=signed_in, nav=nav, secret=link, kind="link", user=user)


def _find_member(request: Request, nav: Nav, user_id: str) -> Member:
    member = next((m for m in signin_of(request).members(nav.env) if m.user.id == user_id), None)
    if member is None:
        raise NotFoundError(f"no member {user_id!r} of project {nav.env.project_slug!r}")
    return member


@router.get(PAGE + "/members/{user_id}/remove")
async def confirm_remove(request: Request, project: str, env: str, user_id: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "environment")
    _require_admin(signed_in, "remove a member")
    member = await run_in_threadpool(_find_member, request, nav, user_id)
    if member.user.is_admin:
        raise PermissionDeniedError(
            f"{member.user.email} is an admin and sees every project: there is nothing to remove"
        )
    return render(request, "environment_confirm.html", signed_in=signed_in, nav=nav, key=None, member=member)


@router.post(PAGE + "/members/{user_id}/remove")
async def remove_member_action(
    request: Request, project: str, env: str, user_id: str, signed_in: PageSession
) -> Response:
    nav = await open_environment(request, signed_in, project, env, "environment")
    _require_admin(signed_in, "remove a member")
    await run_in_threadpool(signin_of(request).remove_member, user_id, nav.env)
    return _back(nav, "member-removed", "members")
