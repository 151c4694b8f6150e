"""Alerts: the events a webhook may subscribe to, how a delivery is signed, and when a failed
delivery is tried again. Pure: the server sends (``server/alert_delivery.py``), the store keeps the
webhooks and their delivery log (``store/alerts.py``).

A delivery is a JSON ``POST`` with the header ``Hightide-Signature: t=<unix seconds>,v1=<hex>``,
where ``v1`` is HMAC-SHA256 over ``"<t>.<body>"`` with the webhook's secret. The timestamp is
signed with the body, so a receiver that checks it (``verify``) refuses an old request replayed.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from hightide.core.states import RunStatus
from hightide.errors import ValidationError

RUN_FAILED = "run.failed"
ALERT_TEST = "alert.test"  # what ``alerts.test`` sends; not an event a webhook subscribes to
EVENTS = (RUN_FAILED,)
"""The events a webhook may subscribe to."""
LATER_EVENTS = ("deployment.promoted", "deployment.failed", "deployment.succeeded")
"""Events named in the documentation that come with deploys: refused until they exist, not ignored."""

FAILED_FOR_ALERTS = frozenset({RunStatus.FAILED, RunStatus.CRASHED, RunStatus.TIMED_OUT, RunStatus.SYSTEM_FAILURE})
"""A run that ends in one of these is a ``run.failed`` event (a cancelled or expired one is not)."""

SIGNATURE_HEADER = "Hightide-Signature"
EVENT_HEADER = "Hightide-Event"
DELIVERY_HEADER = "Hightide-Delivery"
SECRET_PREFIX = "whsec"
MAX_URL_LENGTH = 2048
SIGNATURE_TOLERANCE = 300.0  # seconds a receiver accepts a signature's timestamp either side of its clock

RETRY_DELAYS = (2.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0, 24 * 3600.0)
"""Seconds before each retry of a delivery that failed: 11 tries over about two days, then it fails."""
MAX_TRIES = len(RETRY_DELAYS) + 1
REQUEST_TIMEOUT = 10.0  # seconds a receiver has to answer one try
MAX_TRIES_KEPT = 20  # tries recorded in a delivery's log


def check_url(url: object) -> str:
    """``url`` if it is an absolute http(s) URL a webhook can be sent to."""
    if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL_LENGTH or "\x00" in url:
        raise ValidationError(
            f"url: expected an http(s) URL of at most {MAX_URL_LENGTH} characters", details={"field": "url"}
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # reading it checks it is a number
        hostname = parts.hostname
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        hostname = None
    if hostname is None or parts.scheme not in ("http", "https") or any(c.isspace() for c in url):
        raise ValidationError(
            f"url: {url!r} is not an absolute http(s) URL (e.g. https://example.com/hooks/hightide)",
            details={"field": "url"},
        )
    return url


def check_events(events: object) -> list[str]:
    """The distinct events of ``events`` in the order given, each one a webhook can subscribe to."""
    if isinstance(events, str) or not isinstance(events, list | tuple) or not events:
        raise ValidationError(
            f"events: expected a non-empty list of events, some of {list(EVENTS)}", details={"field": "events"}
        )
    found: list[str] = []
    for event in events:
        if event in LATER_EVENTS:
            raise ValidationError(
                f"events: {event!r} comes with deploys, which this server does not have yet; "
                f"subscribe to {list(EVENTS)}",
                details={"field": "events"},
            )
        if event not in EVENTS:
            raise ValidationError(
                f"events: unknown event {event!r}; expected some of {list(EVENTS)}", details={"field": "events"}
            )
        if event not in found:
            found.append(event)
    return found


def retry_delay(tries: int) -> float | None:
    """Seconds before the next try of a delivery that failed ``tries`` times, or None: no more."""
    return RETRY_DELAYS[tries - 1] if 1 <= tries <= len(RETRY_DELAYS) else None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Hightide-Signature`` header of ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(body: bytes, header: str | None, secret: str, now: float, tolerance: float = SIGNATURE_TOLERANCE) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance`` of ``now``."""
    if not header:
        return False
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields.get("t", [""])[0])
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).rpartition("v1=")[2]
    # Several v1 values may come while a secret is being changed: any one matching will do.
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
