"""The pure parts of signing in: addresses, where a sign-in may lead, CSRF tokens."""

from __future__ import annotations

import pytest

from hightide.engine.signin import csrf_token, login_url, normalise_email
from hightide.errors import ValidationError
from hightide.server.dashboard.session import safe_next


@pytest.mark.parametrize(
    ("given", "stored"),
    [("Ada@Example.com", "ada@example.com"), ("  admin@localhost ", "admin@localhost"), ("a.b+c@x.io", "a.b+c@x.io")],
)
def test_addresses_are_stored_lower_case(given: str, stored: str) -> None:
    assert normalise_email(given) == stored


@pytest.mark.parametrize("bad", ["", "ada", "ada@", "@example.com", "a b@example.com", "a@b@c", "<a@b>", "a@b."])
def test_what_is_not_an_address_is_refused_saying_what_is_expected(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"not an email address: .* \(expected name@host"):
        normalise_email(bad)


@pytest.mark.parametrize(
    ("target", "goes_to"),
    [
        (None, "/"),
        ("/projects/default/env/dev/runs?status=FAILED", "/projects/default/env/dev/runs?status=FAILED"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ],
)
def test_a_sign_in_leads_only_to_a_page_of_this_site(target: str | None, goes_to: str) -> None:
    assert safe_next(target) == goes_to


def test_csrf_tokens_are_per_session_and_do_not_reveal_it() -> None:
    first, second = csrf_token("hts_one"), csrf_token("hts_two")
    assert first != second and len(first) == 64
    assert "hts_one" not in first
    assert csrf_token("hts_one") == first


def test_a_login_url_is_the_login_page_with_the_token() -> None:
    assert login_url("http://127.0.0.1:3030/", "htl_x") == "http://127.0.0.1:3030/login?token=htl_x"
