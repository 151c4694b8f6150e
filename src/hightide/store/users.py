"""``store.users``: dashboard users, project members, one-time login links and sessions.

Tokens never reach the database: callers pass their SHA-256 (``token_hash``). A login link is
redeemed by one conditional update (``... WHERE used_at IS NULL AND expires_at > now``) in the same
transaction that creates the session, so a link signs in one browser, once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from hightide.core.ids import new_id
from hightide.store import schema as t
from hightide.store.records import Environment
from hightide.store.seam import Seam


@dataclass(frozen=True)
class User:
    id: str
    email: str
    is_admin: bool
    created_at: float


@dataclass(frozen=True)
class Session:
    """A signed-in browser: whose, and until when."""

    user: User
    created_at: float
    expires_at: float
    last_seen_at: float


@dataclass(frozen=True)
class Member:
    """Someone who sees a project: a member since ``since`` (``None``: an admin who is not a
    member, and sees it as they see every project)."""

    user: User
    since: float | None


def _user(row: Any) -> User:
    return User(id=row.id, email=row.email, is_admin=bool(row.is_admin), created_at=row.created_at)


class UserOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    # -- users and members -----------------------------------------------------------------
    def create_user(self, email: str, is_admin: bool, now: float, project_ids: Sequence[str] = ()) -> User:
        """Insert a user (``email`` already normalised) and make them a member of ``project_ids``;
        ``AlreadyExistsError`` if the email is taken."""
        user = User(id=new_id("usr", now), email=email, is_admin=is_admin, created_at=now)
        with self._seam.write() as conn:
            conn.execute(insert(t.users).values(id=user.id, email=email, is_admin=is_admin, created_at=now))
            for project_id in project_ids:
                conn.execute(insert(t.project_members).values(project_id=project_id, user_id=user.id, created_at=now))
        return user

    def add_member(self, user_id: str, project_id: str, now: float) -> bool:
        """Make the user a member of the project; ``False`` if they were one already."""
        m = t.project_members
        with self._seam.write() as conn:
            found = conn.execute(
                select(m.c.user_id).where(m.c.user_id == user_id, m.c.project_id == project_id)
            ).first()
            if found is not None:
                return False
            conn.execute(insert(m).values(project_id=project_id, user_id=user_id, created_at=now))
        return True

    def remove_member(self, user_id: str, project_id: str) -> bool:
        """End the user's membership of the project; ``False`` if they were not a member."""
        m = t.project_members
        with self._seam.write() as conn:
            gone = conn.execute(delete(m).where(m.c.user_id == user_id, m.c.project_id == project_id)).rowcount
        return bool(gone)

    def members(self, project_id: str) -> list[Member]:
        """Everyone who sees the project, by email: its members and every admin."""
        u, m = t.users, t.project_members
        stmt = (
            select(u.c.id, u.c.email, u.c.is_admin, u.c.created_at, m.c.created_at.label("since"))
            .outerjoin(m, (m.c.user_id == u.c.id) & (m.c.project_id == project_id))
            .where(u.c.is_admin.is_(True) | m.c.user_id.is_not(None))
            .order_by(u.c.email)
        )
        with self._seam.read() as conn:
            return [Member(_user(row), row.since) for row in conn.execute(stmt)]

    def get_user(self, user_id: str) -> User | None:
        with self._seam.read() as conn:
            row = conn.execute(select(t.users).where(t.users.c.id == user_id)).first()
        return _user(row) if row else None

    def get_user_by_email(self, email: str) -> User | None:
        with self._seam.read() as conn:
            row = conn.execute(select(t.users).where(t.users.c.email == email)).first()
        return _user(row) if row else None

    def project_ids(self, slugs: Sequence[str]) -> dict[str, str]:
        """The ids of the projects named, by slug (those that exist)."""
        if not slugs:
            return {}
        p = t.projects
        with self._seam.read() as conn:
            rows = conn.execute(select(p.c.slug, p.c.id).where(p.c.slug.in_(list(slugs))))
            return {row.slug: row.id for row in rows}

    def count_users(self) -> int:
        with self._seam.read() as conn:
            return int(conn.execute(select(func.count()).select_from(t.users)).scalar_one())

    def environments_for(self, user: User) -> list[Environment]:
        """The environments the user may see, by project slug then creation: an admin's are all of
        them, a member's those of their projects."""
        e, p, m = t.environments, t.projects, t.project_members
        stmt = select(
            e.c.id, e.c.project_id, p.c.slug.label("project_slug"), e.c.slug, e.c.kind, e.c.concurrency_limit
        ).join(p, p.c.id == e.c.project_id)
        if not user.is_admin:
            stmt = stmt.join(m, m.c.project_id == e.c.project_id).where(m.c.user_id == user.id)
        stmt = stmt.order_by(p.c.slug, e.c.created_at, e.c.id)
        with self._seam.read() as conn:
            return [Environment(**dict(row._mapping)) for row in conn.execute(stmt)]

    # -- login links and sessions ----------------------------------------------------------
    def add_login_link(self, user_id: str, token_hash: str, now: float, expires_at: float) -> None:
        with self._seam.write() as conn:
            conn.execute(
                insert(t.login_links).values(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )

    def redeem_login_link(
        self, token_hash: str, session_hash: str, now: float, session_expires_at: float
    ) -> User | None:
        """Use the link (if unused and unexpired) and open a session for its user, in one
        transaction; ``None`` if the link is unknown, used or expired."""
        link = t.login_links
        with self._seam.write() as conn:
            row = conn.execute(
                update(link)
                .where(link.c.token_hash == token_hash, link.c.used_at.is_(None), link.c.expires_at > now)
                .values(used_at=now)
                .returning(link.c.user_id)
            ).first()
            if row is None:
                return None
            user = conn.execute(select(t.users).where(t.users.c.id == row.user_id)).first()
            conn.execute(
                insert(t.dashboard_sessions).values(
                    token_hash=session_hash,
                    user_id=row.user_id,
                    created_at=now,
                    expires_at=session_expires_at,
                    last_seen_at=now,
                )
            )
        return _user(user)

    def get_session(self, session_hash: str, now: float, idle_since: float) -> Session | None:
        """The session if it has not expired and was last seen after ``idle_since``."""
        s, u = t.dashboard_sessions, t.users
        stmt = (
            select(
                s.c.created_at,
                s.c.expires_at,
                s.c.last_seen_at,
                u.c.id,
                u.c.email,
                u.c.is_admin,
                u.c.created_at.label("user_created_at"),
            )
            .join(u, u.c.id == s.c.user_id)
            .where(s.c.token_hash == session_hash, s.c.expires_at > now, s.c.last_seen_at > idle_since)
        )
        with self._seam.read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        user = User(id=row.id, email=row.email, is_admin=bool(row.is_admin), created_at=row.user_created_at)
        return Session(user=user, created_at=row.created_at, expires_at=row.expires_at, last_seen_at=row.last_seen_at)

    def touch_session(self, session_hash: str, now: float) -> None:
        s = t.dashboard_sessions
        with self._seam.write() as conn:
            conn.execute(update(s).where(s.c.token_hash == session_hash).values(last_seen_at=now))

    def end_session(self, session_hash: str) -> bool:
        """Delete the session; ``False`` if there was none."""
        s = t.dashboard_sessions
        with self._seam.write() as conn:
            return conn.execute(delete(s).where(s.c.token_hash == session_hash)).rowcount > 0

    def forget_expired(self, now: float, idle_since: float) -> int:
        """Delete expired sessions and links; the number of rows deleted."""
        s, link = t.dashboard_sessions, t.login_links
        with self._seam.write() as conn:
            gone = conn.execute(delete(s).where((s.c.expires_at <= now) | (s.c.last_seen_at <= idle_since))).rowcount
            gone += conn.execute(delete(link).where(link.c.expires_at <= now)).rowcount
        return int(gone)
