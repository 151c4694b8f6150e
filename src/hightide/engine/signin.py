"""Signing in to the dashboard: users, one-time login links and sessions.

A login link carries a random token (``htl_...``) that works once, for 24 hours; redeeming it opens
a session whose token (``hts_...``) lives in an HttpOnly cookie. Only SHA-256 hashes of either are
stored. Each session has a CSRF token derived from its own token (an HMAC), so it needs no storage
and cannot be computed by a page that cannot read the cookie. See docs/dashboard.md."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hightide.engine.environments import DEFAULT_PROJECT, hash_key
from hightide.errors import AlreadyExistsError, NotFoundError, PermissionDeniedError, ValidationError
from hightide.store import Store
from hightide.store.records import Environment
from hightide.store.users import Member, Session, User

LINK_SECONDS = 24 * 3600
SESSION_SECONDS = 30 * 24 * 3600  # a session ends 30 days after sign-in ...
SESSION_IDLE_SECONDS = 7 * 24 * 3600  # ... or after a week unused
TOUCH_EVERY_SECONDS = 60.0  # how stale `last_seen_at` may get: not a write per request
FIRST_ADMIN = "admin@localhost"
LINK_PREFIX, SESSION_PREFIX = "htl_", "hts_"
MAX_EMAIL = 320

# Deliberately loose: a name, an @, a host (``admin@localhost`` is an address here). No spaces, one @.
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+$")


def normalise_email(email: str) -> str:
    """The address as stored (trimmed, lower case); ``ValidationError`` if it is not one."""
    value = email.strip().lower()
    if len(value) > MAX_EMAIL or not _EMAIL.match(value) or value.startswith(".") or value.endswith("."):
        raise ValidationError(
            f"not an email address: {email!r} (expected name@host, e.g. ada@example.com)", details={"field": "email"}
        )
    return value


def login_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/login?token={token}"


def csrf_token(session_token: str) -> str:
    """The session's CSRF token: an HMAC keyed by the session's own secret token."""
    return hmac.new(session_token.encode(), b"hightide-dashboard-csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    """A request's session: ``token`` is the cookie's value (never stored), ``csrf`` its CSRF token."""

    session: Session
    token: str

    @property
    def user(self) -> User:
        return self.session.user

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class SignIn:
    """Users, login links and sessions over ``store.users``."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # -- users -----------------------------------------------------------------------------
    def create_user(self, email: str, *, admin: bool = False, projects: Sequence[str] = (DEFAULT_PROJECT,)) -> User:
        """A new user; a member (``admin=False``) belongs to ``projects`` (slugs), an admin sees all."""
        address = normalise_email(email)
        if self.store.users.get_user_by_email(address) is not None:
            raise AlreadyExistsError(
                f"user {address} already exists; `hightide users login-link {address}` prints a new link for them",
                details={"email": address},
            )
        ids = self.store.users.project_ids(projects)
        missing = [slug for slug in projects if slug not in ids]
        if missing:
            raise NotFoundError(f"no project {missing[0]!r}; projects: see `hightide keys create --help`")
        return self.store.users.create_user(address, admin, self.clock(), [ids[slug] for slug in projects])

    def user(self, email: str) -> User:
        found = self.store.users.get_user_by_email(normalise_email(email))
        if found is None:
            raise NotFoundError(
                f"no user {email.strip()!r}; create one with `hightide users create {email.strip()}`",
                details={"email": email.strip()},
            )
        return found

    # -- the members of a project ----------------------------------------------------------
    def members(self, env: Environment) -> list[Member]:
        """Everyone who sees ``env``'s project: its members and every admin."""
        return self.store.users.members(env.project_id)

    def add_member(self, email: str, env: Environment) -> tuple[User, bool]:
        """Make ``email`` a member of ``env``'s project, creating the user if there is none; the user
        and whether they were created. ``AlreadyExistsError`` if they see the project already."""
        address = normalise_email(email)
        found = self.store.users.get_user_by_email(address)
        if found is None:
            try:
                return self.create_user(address, projects=(env.project_slug,)), True
            except AlreadyExistsError:  # created meanwhile: add them as below
                found = self.user(address)
        if found.is_admin:
            raise AlreadyExistsError(f"{address} is an admin: admins see every project", details={"email": address})
        if not self.store.users.add_member(found.id, env.project_id, self.clock()):
            raise AlreadyExistsError(
                f"{address} is a member of project {env.project_slug} already", details={"email": address}
            )
        return found, False

    def remove_member(self, user_id: str, env: Environment) -> User:
        """End a member's membership of ``env``'s project: they stop seeing it at their next request.
        An admin cannot be removed (they see every project), so no one can remove the last admin."""
        user = self.store.users.get_user(user_id)
        if user is not None and user.is_admin:
            raise PermissionDeniedError(
                f"{user.email} is an admin and sees every project: there is no membership to remove"
            )
        if user is None or not self.store.users.remove_member(user.id, env.project_id):
            raise NotFoundError(f"no member {user_id!r} of project {env.project_slug!r}: removed already?")
        return user

    def first_admin_link(self) -> str | None:
        """On a database with no users: create the admin ``admin@localhost`` and return a login token
        for them. ``None`` when there are users (or another server just created the admin)."""
        if self.store.users.count_users() > 0:
            return None
        try:
            admin = self.store.users.create_user(FIRST_ADMIN, True, self.clock())
        except AlreadyExistsError:
            return None
        return self.login_link(admin)

    def local_admin_link(self) -> str:
        """A login token for ``admin@localhost``, created if missing (``hightide dev``'s own user)."""
        admin = self.store.users.get_user_by_email(FIRST_ADMIN)
        if admin is None:
            try:
                admin = self.store.users.create_user(FIRST_ADMIN, True, self.clock())
            except AlreadyExistsError:
                admin = self.user(FIRST_ADMIN)
        return self.login_link(admin)

    # -- links and sessions ----------------------------------------------------------------
    def login_link(self, user: User) -> str:
        """A new one-time login token for ``user`` (valid 24 h); only its hash is stored."""
        token = LINK_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        self.store.users.add_login_link(user.id, hash_key(token), now, now + LINK_SECONDS)
        self.store.users.forget_expired(now, now - SESSION_IDLE_SECONDS)  # links are rare: tidy up here
        return token

    def redeem(self, token: str) -> SignedIn | None:
        """Exchange a login token for a new session; ``None`` if it is unknown, used or expired."""
        token = token.strip()
        if not token.startswith(LINK_PREFIX) or len(token) > 200:
            return None
        session_token = SESSION_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        user = self.store.users.redeem_login_link(hash_key(token), hash_key(session_token), now, now + SESSION_SECONDS)
        if user is None:
            return None
        return SignedIn(Session(user, now, now + SESSION_SECONDS, now), session_token)

    def session(self, token: str | None, *, touch: bool = True) -> SignedIn | None:
        """The live session of a cookie's value, or ``None``. ``touch=False``: a check that is not a
        use (a live stream re-checking its session does not keep it from going idle)."""
        if not token or not token.startswith(SESSION_PREFIX) or len(token) > 200:
            return None
        now = self.clock()
        digest = hash_key(token)
        found = self.store.users.get_session(digest, now, now - SESSION_IDLE_SECONDS)
        if found is None:
            return None
        if touch and now - found.last_seen_at > TOUCH_EVERY_SECONDS:
            self.store.users.touch_session(digest, now)
        return SignedIn(found, token)

    def sign_out(self, token: str) -> None:
        self.store.users.end_session(hash_key(token))

    def environments(self, user: User) -> list[Environment]:
        return self.store.users.environments_for(user)
