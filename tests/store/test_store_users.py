"""``store.users`` on SQLite and PostgreSQL: users, members, one-time links and sessions."""

from __future__ import annotations

import pytest

from hightide.errors import AlreadyExistsError
from hightide.store import Store

NOW = 1_800_000_000.0
DAY = 86400.0


def test_an_email_belongs_to_one_user(store: Store) -> None:
    ada = store.users.create_user("ada@example.com", False, NOW)
    assert store.users.get_user_by_email("ada@example.com") == ada
    assert store.users.count_users() == 1
    with pytest.raises(AlreadyExistsError):
        store.users.create_user("ada@example.com", True, NOW)
    assert store.users.get_user_by_email("nobody@example.com") is None


def test_a_link_opens_one_session_once_and_not_after_it_expired(store: Store) -> None:
    ada = store.users.create_user("ada@example.com", False, NOW)
    store.users.add_login_link(ada.id, "link-1", NOW, NOW + DAY)
    store.users.add_login_link(ada.id, "link-2", NOW, NOW + DAY)

    assert store.users.redeem_login_link("link-1", "session-1", NOW + 1, NOW + 30 * DAY) == ada
    assert store.users.redeem_login_link("link-1", "session-2", NOW + 2, NOW + 30 * DAY) is None  # used
    assert store.users.redeem_login_link("unknown", "session-3", NOW + 2, NOW + 30 * DAY) is None
    assert store.users.redeem_login_link("link-2", "session-4", NOW + DAY, NOW + 30 * DAY) is None  # expired

    session = store.users.get_session("session-1", NOW + 2, NOW + 2 - 7 * DAY)
    assert session is not None and session.user == ada
    for refused in ("session-2", "session-3", "session-4"):
        assert store.users.get_session(refused, NOW + 2, NOW - 7 * DAY) is None


def test_a_session_ends_at_its_expiry_when_idle_and_when_signed_out(store: Store) -> None:
    ada = store.users.create_user("ada@example.com", True, NOW)
    store.users.add_login_link(ada.id, "link", NOW, NOW + DAY)
    store.users.redeem_login_link("link", "session", NOW, NOW + 30 * DAY)

    assert store.users.get_session("session", NOW + 31 * DAY, NOW) is None  # expired
    assert store.users.get_session("session", NOW + 8 * DAY, NOW + DAY) is None  # idle since NOW
    store.users.touch_session("session", NOW + 2 * DAY)
    assert store.users.get_session("session", NOW + 8 * DAY, NOW + DAY) is not None  # seen since

    assert store.users.end_session("session") is True
    assert store.users.get_session("session", NOW + 8 * DAY, NOW) is None
    assert store.users.end_session("session") is False


def test_expired_sessions_and_links_are_forgotten(store: Store) -> None:
    ada = store.users.create_user("ada@example.com", True, NOW)
    store.users.add_login_link(ada.id, "old-link", NOW - 2 * DAY, NOW - DAY)
    store.users.add_login_link(ada.id, "link", NOW, NOW + DAY)
    store.users.redeem_login_link("link", "session", NOW, NOW + 30 * DAY)
    assert store.users.forget_expired(NOW, NOW - 7 * DAY) == 1
    assert store.users.get_session("session", NOW, NOW - 7 * DAY) is not None


def test_admins_see_every_environment_members_those_of_their_projects(store: Store) -> None:
    default = store.environments.ensure_project("default", NOW)
    other = store.environments.ensure_project("other", NOW)
    for project in (default, other):
        for slug in ("dev", "prod"):
            store.environments.ensure_environment(project, slug, slug, 10, NOW)
    admin = store.users.create_user("root@example.com", True, NOW)
    member = store.users.create_user("ada@example.com", False, NOW, [default])
    outsider = store.users.create_user("bob@example.com", False, NOW)

    assert [(e.project_slug, e.slug) for e in store.users.environments_for(admin)] == [
        ("default", "dev"),
        ("default", "prod"),
        ("other", "dev"),
        ("other", "prod"),
    ]
    assert [(e.project_slug, e.slug) for e in store.users.environments_for(member)] == [
        ("default", "dev"),
        ("default", "prod"),
    ]
    assert store.users.environments_for(outsider) == []
    assert store.users.add_member(outsider.id, other, NOW) is True
    assert store.users.add_member(outsider.id, other, NOW) is False
    assert {e.project_slug for e in store.users.environments_for(outsider)} == {"other"}
    assert store.users.project_ids(["default", "missing"]) == {"default": default}


def test_a_projects_members_are_listed_with_every_admin_and_can_be_removed(store: Store) -> None:
    default = store.environments.ensure_project("default", NOW)
    other = store.environments.ensure_project("other", NOW)
    root = store.users.create_user("root@example.com", True, NOW)
    ada = store.users.create_user("ada@example.com", False, NOW + 1, [default])
    store.users.create_user("bob@example.com", False, NOW + 2, [other])
    store.users.create_user("ops@example.com", True, NOW + 3, [default])

    members = store.users.members(default)
    assert [(m.user.email, m.user.is_admin, m.since) for m in members] == [
        ("ada@example.com", False, NOW + 1),
        ("ops@example.com", True, NOW + 3),
        ("root@example.com", True, None),  # an admin sees every project without being a member
    ]
    assert store.users.get_user(ada.id) == ada and store.users.get_user("usr_missing") is None

    assert store.users.remove_member(ada.id, default) is True
    assert store.users.remove_member(ada.id, default) is False
    assert store.users.environments_for(ada) == []
    assert [m.user.email for m in store.users.members(default)] == ["ops@example.com", "root@example.com"]
    assert [m.user.email for m in store.users.members(other)] == [
        "bob@example.com",
        "ops@example.com",
        "root@example.com",
    ]
    assert root.is_admin
