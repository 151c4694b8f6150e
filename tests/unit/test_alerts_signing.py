"""How a delivery is signed and checked, which events and URLs a webhook takes, and when a failed
delivery is tried again."""

from __future__ import annotations

import pytest

from hightide.core.alerts import MAX_TRIES, check_events, check_url, retry_delay, signature, verify
from hightide.errors import ValidationError

SECRET = "whsec_test"
BODY = b'{"type":"run.failed"}'


def test_a_signature_checks_out_only_for_its_body_secret_and_time() -> None:
    header = signature(SECRET, 1_700_000_000, BODY)
    assert header.startswith("t=1700000000,v1=") and len(header.rpartition("v1=")[2]) == 64
    assert verify(BODY, header, SECRET, now=1_700_000_100)
    assert not verify(BODY + b" ", header, SECRET, now=1_700_000_100)  # a changed body
    assert not verify(BODY, header, "whsec_other", now=1_700_000_100)
    assert not verify(BODY, header, SECRET, now=1_700_000_301)  # replayed after the 300 s tolerance
    assert verify(BODY, header, SECRET, now=1_700_000_900, tolerance=1000)
    # a forged timestamp breaks the signature, which covers it
    forged = header.replace("t=1700000000", "t=1700000500")
    assert not verify(BODY, forged, SECRET, now=1_700_000_500)


def test_while_a_secret_changes_any_v1_may_match_and_junk_is_refused() -> None:
    good = signature(SECRET, 100, BODY).rpartition("v1=")[2]
    assert verify(BODY, f"t=100,v1={'0' * 64},v1={good}", SECRET, now=100)
    for junk in [None, "", "t=abc,v1=00", "v1=" + good, "t=100", "nonsense"]:
        assert not verify(BODY, junk, SECRET, now=100)


def test_failed_deliveries_back_off_and_stop_after_the_last_try() -> None:
    delays = [retry_delay(n) for n in range(1, MAX_TRIES)]
    assert delays[0] == 2.0 and delays == sorted(delays)
    assert 1.5 * 86400 < sum(d for d in delays if d) < 3 * 86400  # about two days of trying
    assert retry_delay(MAX_TRIES) is None and retry_delay(0) is None


def test_webhooks_take_http_urls_and_the_events_that_exist() -> None:
    assert check_url("https://example.com/hooks") == "https://example.com/hooks"
    assert check_events(["run.failed", "run.failed"]) == ["run.failed"]
    bad = ["example.com/hooks", "ftp://example.com", "https://", "https://x/\x00", "h" * 3000, 42]
    bad += ["http://[bad", "http://exa mple.com/x", "http://host:port/x"]
    for url in bad:
        with pytest.raises(ValidationError, match="url"):
            check_url(url)
    for events, says in [
        ([], "non-empty"),
        ("run.failed", "non-empty list"),
        (["deployment.promoted"], "comes with deploys"),
        (["run.done"], "unknown event"),
    ]:
        with pytest.raises(ValidationError, match=says):
            check_events(events)
