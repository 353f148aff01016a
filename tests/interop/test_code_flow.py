"""The authorization code flow (draft-ietf-oauth-v2-1 §4.1) driven by authlib.

authlib plays the client: OAuth2Session (requests) for confidential
clients, AsyncOAuth2Client (httpx) for a public one, both with
code_challenge_method='S256'; they build the authorization URL, check
`state` in the redirect, redeem the code and refresh. httpx plays the
person's browser (browser.py). The server's answers are then checked the way
a resource server would (PyJWT against the JWKS, introspection).

authlib 1.9.6 implements RFC 9207 for servers only (IssuerParameter) and
validates `authorization_response_iss_parameter_supported` in metadata; its
client does not compare `iss`, so `assert_iss` does, as RFC 9207 §2.4 asks
of a client. (oauth4webapi, in oauth4webapi/interop.mjs, checks it itself.)
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2 import rfc8414, rfc9207
from authlib.oauth2.rfc6749 import MismatchingStateException, MissingCodeException
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from browser import PASSWORD, Browser, create_person, forms, query
from conftest import _note_httpx, authlib_session
from test_authlib import assert_error, basic, cc_client, secret_session, verify_access_token

AC = "authorization_code"
RT = "refresh_token"
REDIRECT = "https://app.interop.example/cb?tenant=a%20b"  # RFC 6749 §3.1.2: its query is kept
LOOPBACK = "http://127.0.0.1/callback"  # RFC 8252 §7.3: any port at request time
LOOPBACK_AT_PORT = "http://127.0.0.1:49152/callback"
# authlib URL-encodes state; the server must hand back exactly this.
ODD_STATE = "st@te/ü +&=%"
# run.sh says which database the server uses (sqlite or postgres).
ENGINE = os.environ.get("CUSTOS_TEST_ENGINE", "")


# ---------------------------------------------------------------- helpers


def oauth_error(excinfo) -> str:
    return excinfo.value.error


def assert_iss(location: str, metadata: dict) -> dict:
    """RFC 9207 §2: every authorization response carries `iss`, the issuer
    identifier exactly (§2.4: the client compares by simple string
    comparison)."""
    params = query(location)
    assert params.get("iss") == metadata["issuer"], location
    return params


@pytest.fixture(scope="module")
def person(admin) -> str:
    return create_person(admin)


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="module")
def resource_server(register, metadata):
    """A client_credentials client used only to introspect tokens."""
    return secret_session(metadata, cc_client(register, scope="read"))


def introspect(resource_server, metadata, token: str) -> dict:
    response = resource_server.introspect_token(metadata["introspection_endpoint"], token=token)
    assert response.status_code == 200, response.text
    return response.json()


def code_client(register, method: str, redirect_uris=(REDIRECT,), **extra) -> dict:
    reg = register(
        grant_types=[AC, RT],
        token_endpoint_auth_method=method,
        redirect_uris=list(redirect_uris),
        scope="read write",
        **extra,
    )
    assert reg["token_endpoint_auth_method"] == method
    assert ("client_secret" in reg) == (method != "none")
    return reg


def code_session(metadata, reg, redirect_uri=REDIRECT, scope="read", **kwargs):
    """authlib's OAuth2Session for a code-flow client, PKCE S256 on."""
    return authlib_session(
        metadata,
        reg["client_id"],
        reg.get("client_secret"),
        reg["token_endpoint_auth_method"],
        redirect_uri=redirect_uri,
        scope=scope,
        code_challenge_method="S256",
        **kwargs,
    )


def capture(session, hook_type: str = "access_token_response") -> list:
    seen: list = []

    def hook(response):
        seen.append(response)
        return response

    session.register_compliance_hook(hook_type, hook)
    return seen


def start(session, metadata, **kwargs) -> tuple[str, str, str]:
    """authlib builds the authorization URL; returns (url, state, verifier)."""
    verifier = generate_token(48)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, **kwargs
    )
    parsed = query(url)
    assert parsed["code_challenge_method"] == "S256"
    assert parsed["code_challenge"] == create_s256_code_challenge(verifier)
    return url, state, verifier


def code_for(session, metadata, browser, person, **kwargs) -> tuple[str, str]:
    """Runs the front channel; returns (callback URL, verifier)."""
    url, state, verifier = start(session, metadata, **kwargs)
    location = browser.authorize(url, person)
    params = assert_iss(location, metadata)
    assert params["state"] == state
    assert "code" in params, location
    return location, verifier


# -------------------------------------------------------------- discovery


def test_rfc8414_metadata_passes_authlibs_validation(metadata):
    """authlib's RFC 8414 validator, with its RFC 9207 extension."""
    document = rfc8414.AuthorizationServerMetadata(metadata)
    document.validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "code" in metadata["response_types_supported"]
    assert {AC, RT} <= set(metadata["grant_types_supported"])


def test_rfc8414_public_clients_are_advertised(metadata, register):
    reg = code_client(register, "none", redirect_uris=[LOOPBACK])
    assert reg["token_endpoint_auth_method"] == "none"
    assert "none" in metadata["token_endpoint_auth_methods_supported"]


# --------------------------------------------------------------- the flow


def assert_rotating_refresh(session, http, metadata, resource_server, tokens: dict) -> None:
    """authlib's refresh_token() twice (each rotates), then the first
    refresh token again: invalid_grant, and its whole family is revoked
    (RFC 9700 §4.14.2; OAuth 2.1 §4.3.1)."""
    first = tokens["refresh_token"]
    second_tokens = dict(session.refresh_token(metadata["token_endpoint"], refresh_token=first))
    second = second_tokens["refresh_token"]
    assert second != first
    assert second_tokens["scope"] == tokens["scope"]
    third_tokens = dict(session.refresh_token(metadata["token_endpoint"]))  # session.token's
    third = third_tokens["refresh_token"]
    assert len({first, second, third}) == 3
    _, claims = verify_access_token(http, metadata, third_tokens["access_token"])
    assert claims["sub"] == verify_access_token(http, metadata, tokens["access_token"])[1]["sub"]
    assert introspect(resource_server, metadata, third_tokens["access_token"])["active"] is True

    with pytest.raises(OAuthError) as excinfo:
        session.refresh_token(metadata["token_endpoint"], refresh_token=first)
    assert oauth_error(excinfo) == "invalid_grant"
    with pytest.raises(OAuthError) as excinfo:
        session.refresh_token(metadata["token_endpoint"], refresh_token=third)
    assert oauth_error(excinfo) == "invalid_grant", "the newest refresh token is revoked too"
    for token in (tokens, second_tokens, third_tokens):
        assert introspect(resource_server, metadata, token["access_token"]) == {"active": False}


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_oauth21_4_1_confidential_client_code_flow(
    http, metadata, register, person, browser, resource_server, method
):
    reg = code_client(register, method, client_name="Interop Confidential")
    session = code_session(metadata, reg)
    seen = capture(session)
    location, verifier = code_for(session, metadata, browser, person)
    assert location.startswith("https://app.interop.example/cb?tenant=a%20b&") or location.startswith(
        "https://app.interop.example/cb?tenant=a+b&"
    ), location

    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    request = seen[0].request
    form = dict(urllib.parse.parse_qsl(request.body))
    assert form["grant_type"] == AC and form["redirect_uri"] == REDIRECT
    assert form["code_verifier"] == verifier
    if method == "client_secret_basic":
        assert request.headers["Authorization"].startswith("Basic ")
        assert "client_secret" not in form
    else:
        assert "Authorization" not in request.headers and form["client_secret"]
    # OAuth 2.1 §3.2.3, RFC 6749 §5.1
    assert seen[0].headers["cache-control"] == "no-store"
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "read"
    assert tokens["expires_in"] == 300
    assert tokens["refresh_token"]
    _, claims = verify_access_token(http, metadata, tokens["access_token"])
    assert claims["sub"] == person
    assert claims["client_id"] == reg["client_id"]
    assert claims["scope"] == "read"
    info = introspect(resource_server, metadata, tokens["access_token"])
    assert info["active"] is True and info["sub"] == person

    assert_rotating_refresh(session, http, metadata, resource_server, tokens)


def test_oauth21_4_1_public_client_code_flow_with_async_client(
    http, metadata, register, person, browser, resource_server
):
    """A native app: public client (`none`), loopback redirect registered
    without a port and used with one (RFC 8252 §7.3), authlib's
    AsyncOAuth2Client over httpx."""
    reg = code_client(register, "none", redirect_uris=[LOOPBACK])

    sent_bodies: list = []

    async def front_and_back():
        async def on_request(request):
            if request.method == "POST":
                sent_bodies.append(request.content.decode())

        async def on_response(response):
            await response.aread()
            _note_httpx(response)

        async with AsyncOAuth2Client(
            client_id=reg["client_id"],
            token_endpoint_auth_method="none",
            redirect_uri=LOOPBACK_AT_PORT,
            scope="read write",
            code_challenge_method="S256",
            token_endpoint=metadata["token_endpoint"],
            event_hooks={"request": [on_request], "response": [on_response]},
        ) as client:
            verifier = generate_token(64)
            url, state = client.create_authorization_url(
                metadata["authorization_endpoint"], code_verifier=verifier, state=ODD_STATE
            )
            assert state == ODD_STATE
            location = browser.authorize(url, person)
            assert location.startswith(LOOPBACK_AT_PORT + "?"), location
            params = assert_iss(location, metadata)
            assert params["state"] == ODD_STATE  # RFC 6749 §4.1.2: exactly as sent
            # authlib checks state itself, and refuses a response to another request.
            with pytest.raises(MismatchingStateException):
                await client.fetch_token(
                    authorization_response=location, code_verifier=verifier, state="other"
                )
            tokens = await client.fetch_token(
                authorization_response=location, code_verifier=verifier, state=state
            )
            sent = dict(urllib.parse.parse_qsl(sent_bodies[-1]))
            assert sent["client_id"] == reg["client_id"] and "client_secret" not in sent
            assert sent["redirect_uri"] == LOOPBACK_AT_PORT
            assert sent["code_verifier"] == verifier
            assert tokens["token_type"] == "Bearer"
            assert set(tokens["scope"].split()) == {"read", "write"}
            _, claims = verify_access_token(http, metadata, tokens["access_token"])
            assert claims["sub"] == person and claims["client_id"] == reg["client_id"]

            first = tokens["refresh_token"]
            second = (await client.refresh_token(metadata["token_endpoint"]))["refresh_token"]
            third_tokens = dict(await client.refresh_token(metadata["token_endpoint"]))
            third = third_tokens["refresh_token"]
            assert len({first, second, third}) == 3
            with pytest.raises(OAuthError) as excinfo:
                await client.refresh_token(metadata["token_endpoint"], refresh_token=first)
            assert oauth_error(excinfo) == "invalid_grant"
            with pytest.raises(OAuthError) as excinfo:
                await client.refresh_token(metadata["token_endpoint"], refresh_token=third)
            assert oauth_error(excinfo) == "invalid_grant", "the newest is revoked too"
            return third_tokens

    third_tokens = asyncio.run(front_and_back())
    assert introspect(resource_server, metadata, third_tokens["access_token"]) == {"active": False}


def test_refresh_may_narrow_scope_never_widen(http, metadata, register, person, browser):
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg, scope="read write")
    location, verifier = code_for(session, metadata, browser, person)
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert set(tokens["scope"].split()) == {"read", "write"}
    with pytest.raises(OAuthError) as excinfo:
        session.refresh_token(metadata["token_endpoint"], scope="read write admin")
    assert oauth_error(excinfo) == "invalid_scope"
    # The refused refresh did not use the token up.
    narrowed = session.refresh_token(metadata["token_endpoint"], scope="read")
    assert narrowed["scope"] == "read"
    _, claims = verify_access_token(http, metadata, narrowed["access_token"])
    assert claims["scope"] == "read"
    # Asking nothing after a narrowing gets the grant's scopes again (§6).
    session.scope = None
    again = session.refresh_token(metadata["token_endpoint"])
    assert set(again["scope"].split()) == {"read", "write"}


@pytest.mark.parametrize("method", ["client_secret_basic", "none"])
def test_rfc7009_revoking_a_refresh_token_revokes_its_authorization(
    metadata, register, person, browser, resource_server, method
):
    """RFC 7009 §2.1: servers MUST support revoking refresh tokens, and
    SHOULD then invalidate the access tokens of the same grant. A public
    client revokes with its client_id (RFC 7009 §5)."""
    reg = code_client(register, method, redirect_uris=[LOOPBACK])
    owner = code_session(metadata, reg, redirect_uri=LOOPBACK_AT_PORT)
    location, verifier = code_for(owner, metadata, browser, person)
    tokens = owner.fetch_token(authorization_response=location, code_verifier=verifier)
    # Another client cannot revoke it (the token is not theirs).
    stranger = code_client(register, "client_secret_basic")
    response = code_session(metadata, stranger).revoke_token(
        metadata["revocation_endpoint"], token=tokens["refresh_token"], token_type_hint=RT
    )
    assert response.status_code in (200, 400), response.text
    tokens = owner.refresh_token(metadata["token_endpoint"], refresh_token=tokens["refresh_token"])
    assert introspect(resource_server, metadata, tokens["access_token"])["active"] is True

    response = owner.revoke_token(
        metadata["revocation_endpoint"], token=tokens["refresh_token"], token_type_hint=RT
    )
    assert response.status_code == 200, response.text
    with pytest.raises(OAuthError) as excinfo:
        owner.refresh_token(metadata["token_endpoint"], refresh_token=tokens["refresh_token"])
    assert oauth_error(excinfo) == "invalid_grant"
    assert introspect(resource_server, metadata, tokens["access_token"]) == {"active": False}


# ------------------------------------------------------- code redemption


def test_rfc9700_4_14_reused_code_is_invalid_grant(
    metadata, register, person, browser, resource_server
):
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg)
    location, verifier = code_for(session, metadata, browser, person)
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert oauth_error(excinfo) == "invalid_grant"
    # RFC 9700 §4.14 / OAuth 2.1 §4.1.3: the first redemption's tokens are revoked.
    assert introspect(resource_server, metadata, tokens["access_token"]) == {"active": False}
    with pytest.raises(OAuthError) as excinfo:
        session.refresh_token(metadata["token_endpoint"], refresh_token=tokens["refresh_token"])
    assert oauth_error(excinfo) == "invalid_grant"


def test_rfc7636_4_6_wrong_code_verifier_is_invalid_grant(metadata, register, person, browser):
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg)
    location, _ = code_for(session, metadata, browser, person)
    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(authorization_response=location, code_verifier=generate_token(48))
    assert oauth_error(excinfo) == "invalid_grant"

    # Without code_verifier: OAuth 2.1 §4.1.3 requires it.
    location, _ = code_for(session, metadata, browser, person)
    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(authorization_response=location)
    assert oauth_error(excinfo) in ("invalid_request", "invalid_grant")


def test_oauth21_4_1_1_missing_pkce_is_invalid_request_at_the_redirect(
    metadata, register, person, browser
):
    reg = code_client(register, "none", redirect_uris=[LOOPBACK])
    session = code_session(metadata, reg, redirect_uri=LOOPBACK_AT_PORT)
    # No code_verifier given: authlib sends no code_challenge.
    url, state = session.create_authorization_url(metadata["authorization_endpoint"])
    assert "code_challenge" not in query(url)
    response = browser.get(url)
    # The client and redirect URI are valid, so the error goes to the
    # client (OAuth 2.1 §4.1.2.1), before any login.
    assert response.status_code == 303, (response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location.startswith(LOOPBACK_AT_PORT + "?")
    params = assert_iss(location, metadata)  # RFC 9207 §2: in error responses too
    assert params["error"] == "invalid_request"
    assert params["state"] == state
    assert "code" not in params
    # authlib's parser finds no code in it. (Its fetch_token does not read
    # `error` from an authorization response: given this one it would guess
    # another grant type, so a client must check `error` itself.)
    with pytest.raises(MissingCodeException):
        parse_authorization_code_response(location, state=state)

    # `plain` is not S256 (OAuth 2.1 §4.1.1: S256 when the client can).
    url = url + "&code_challenge=" + "a" * 43 + "&code_challenge_method=plain"
    url = url.replace("code_challenge_method=S256", "")
    response = browser.get(url)
    assert response.status_code == 303
    params = assert_iss(response.headers["location"], metadata)
    assert params["error"] == "invalid_request"


def test_code_is_bound_to_its_client(http, metadata, register, person, browser):
    owner = code_client(register, "client_secret_basic")
    thief = code_client(register, "client_secret_basic")
    session = code_session(metadata, owner)
    location, verifier = code_for(session, metadata, browser, person)
    with pytest.raises(OAuthError) as excinfo:
        code_session(metadata, thief).fetch_token(
            authorization_response=location, code_verifier=verifier
        )
    assert oauth_error(excinfo) == "invalid_grant"
    # The wrong secret for the owner: invalid_client, 401.
    code = query(location)["code"]
    response = http.post(
        metadata["token_endpoint"],
        data={"grant_type": AC, "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT},
        headers={"Authorization": basic(owner["client_id"], "not-the-secret")},
    )
    assert_error(response, 401, "invalid_client")


def test_redirect_uri_must_match_at_the_token_endpoint(metadata, register, person, browser):
    reg = code_client(register, "none", redirect_uris=[LOOPBACK])
    session = code_session(metadata, reg, redirect_uri=LOOPBACK_AT_PORT)
    location, verifier = code_for(session, metadata, browser, person)
    # Another port of the same loopback URI was not the one the code was issued for.
    other = code_session(metadata, reg, redirect_uri="http://127.0.0.1:49153/callback")
    with pytest.raises(OAuthError) as excinfo:
        other.fetch_token(authorization_response=location, code_verifier=verifier)
    assert oauth_error(excinfo) == "invalid_grant"


def test_code_redeemed_concurrently_succeeds_once(http, metadata, register, person, browser):
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg)
    location, verifier = code_for(session, metadata, browser, person)
    code = query(location)["code"]
    auth = {"Authorization": basic(reg["client_id"], reg["client_secret"])}
    form = {"grant_type": AC, "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT}

    def redeem(_):
        response = http.post(metadata["token_endpoint"], data=form, headers=auth)
        return response.status_code, response.json().get("error")

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(redeem, range(6)))
    assert sorted(results, key=str) == sorted(
        [(200, None)] + [(400, "invalid_grant")] * 5, key=str
    ), results


# ----------------------------------------------------- the person's side


def test_deny_is_access_denied_with_iss(metadata, register, person, browser):
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg, scope="write")
    url, state, _ = start(session, metadata)
    location = browser.authorize(url, person, decision="deny")
    params = assert_iss(location, metadata)
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert "code" not in params


def test_remembered_consent_and_wrong_password(metadata, register, admin, browser):
    someone = create_person(admin)
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg)
    url, _, _ = start(session, metadata)
    page = browser.get(url)
    wrong = browser.login(page, someone, password="not the password")
    assert wrong.status_code == 200 and 'name="password"' in wrong.text, "shown the login again"
    assert "code" not in wrong.headers.get("location", "")
    location = browser.authorize(url, someone)
    assert "code" in query(location)
    # Same browser, same client and scope: no page at all (consent remembered).
    url, state, verifier = start(session, metadata)
    response = browser.get(url)
    assert response.status_code == 303, response.text[:300]
    params = assert_iss(response.headers["location"], metadata)
    assert params["state"] == state
    tokens = session.fetch_token(
        authorization_response=response.headers["location"], code_verifier=verifier
    )
    assert tokens["scope"] == "read"


def test_no_state_sent_none_returned(metadata, register, person, browser):
    """RFC 6749 §4.1.2: state is REQUIRED in the response only if it was in
    the request; OAuth 2.1 lets PKCE stand for CSRF protection."""
    reg = code_client(register, "client_secret_basic")
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": reg["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "read",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    url = metadata["authorization_endpoint"] + "?" + urllib.parse.urlencode(params)
    location = browser.authorize(url, person)
    answer = assert_iss(location, metadata)
    assert "state" not in answer and "code" in answer
    session = code_session(metadata, reg)
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert tokens["access_token"]


def test_authorization_request_by_post(metadata, register, person, browser):
    """OAuth 2.1 §4.1.1: the authorization endpoint takes POST too."""
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg)
    url, state, verifier = start(session, metadata)
    endpoint, _, encoded = url.partition("?")
    page = browser.http.post(
        endpoint,
        content=encoded.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    response = browser.consent(browser.login(page, person))
    assert response.status_code == 303
    location = response.headers["location"]
    assert assert_iss(location, metadata)["state"] == state
    assert session.fetch_token(authorization_response=location, code_verifier=verifier)


def test_refresh_token_reuse_grace(metadata, register, person, browser):
    """A client registered with refresh_token_reuse_grace may retry a
    refresh (a lost response) within the window without revoking."""
    reg = code_client(register, "client_secret_basic", refresh_token_reuse_grace=30)
    session = code_session(metadata, reg)
    location, verifier = code_for(session, metadata, browser, person)
    first = session.fetch_token(authorization_response=location, code_verifier=verifier)[
        "refresh_token"
    ]
    lost = session.refresh_token(metadata["token_endpoint"], refresh_token=first)["refresh_token"]
    retried = session.refresh_token(metadata["token_endpoint"], refresh_token=first)[
        "refresh_token"
    ]
    assert retried not in (first, lost)
    assert session.refresh_token(metadata["token_endpoint"], refresh_token=retried)


def test_pages_never_5xx_on_odd_submissions(metadata, register, person, browser):
    """Forged, missing and repeated page fields are refused, never 5xx (the
    autouse fixture fails on any 5xx)."""
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg)
    url, _, _ = start(session, metadata)
    page = browser.get(url)
    assert page.status_code == 200
    login = [f for f in forms(page.text) if f.fields.get("step") == "login"][0]
    endpoint = metadata["authorization_endpoint"]
    cases = [
        {**login.fields, "csrf": "AAAA", "username": person, "password": "x"},
        {**login.fields, "pending": login.fields["pending"][:-4] + "AAAA", "username": person, "password": "x"},
        {"step": "login"},
        {"step": "consent", "pending": login.fields["pending"], "csrf": login.fields["csrf"], "decision": "allow"},
        {"step": "nonsense", "pending": "x", "csrf": "y"},
        {**login.fields, "username": "\u0000", "password": "\uffff" * 100},
    ]
    for data in cases:
        response = browser.http.post(endpoint, data=data)
        assert 200 <= response.status_code < 500
        if response.status_code == 303:
            assert "code=" not in response.headers["location"], data
    response = browser.http.post(
        endpoint,
        content=b"step=login&step=login",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= response.status_code < 500
    # An empty or junk authorization request is shown as an error page.
    for junk in ("", "?client_id=", "?%zz", "?response_type=code&client_id=" + "x" * 5000):
        response = browser.get(endpoint + junk)
        assert 400 <= response.status_code < 500, junk
        assert "location" not in response.headers


def test_rfc6749_10_12_login_csrf_from_another_site_is_refused(metadata, register, admin):
    """Login CSRF: an attacker fetches a login form and has the victim's
    browser post it (an auto-submitting form on the attacker's site) with
    the attacker's credentials. The victim's browser must not end up logged
    in as the attacker, or the victim's next authorization through their own
    client would silently yield the attacker's account (remembered consent).
    The form's csrf token cannot tell (it is bound to the pending request,
    not to a browser); what the browser says about the post can: a
    cross-site Origin and Sec-Fetch-Site (RFC 6749 section 10.12: 'The
    authorization server MUST implement CSRF protection for its
    authorization endpoint')."""
    attacker = create_person(admin)
    reg = code_client(register, "client_secret_basic")
    session = code_session(metadata, reg)
    evil, fresh, victim = Browser(), Browser(), Browser()
    try:
        url, _, _ = start(session, metadata)
        evil.authorize(url, attacker)  # the attacker's consent is remembered
        url, _, _ = start(session, metadata)
        form_page = fresh.get(url)
        login = [f for f in forms(form_page.text) if f.fields.get("step") == "login"][0]
        cross_site = {"Origin": "https://attacker.interop.example", "Sec-Fetch-Site": "cross-site"}
        for headers in (cross_site, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
            response = victim.http.post(
                metadata["authorization_endpoint"],
                data={**login.fields, "username": attacker, "password": PASSWORD},
                headers=headers,
            )
            assert response.status_code == 400, (headers, response.status_code)
            assert "set-cookie" not in response.headers
        # The victim's application sends the victim to log in: a login page.
        url, _, _ = start(session, metadata)
        response = victim.get(url)
        assert response.status_code == 200 and 'name="password"' in response.text, (
            response.status_code,
            response.headers.get("location"),
        )
    finally:
        for b in (evil, fresh, victim):
            b.close()


def test_pages_escape_what_clients_registered(metadata, register, person, browser):
    """A client's name and URI, chosen by whoever registered it, are text on
    the person's pages, never markup."""
    name = "<img src=x onerror=alert(1)>\"'&<script>alert(2)</script>"
    uri = 'https://app.interop.example/"><script>alert(3)</script>'
    reg = code_client(register, "client_secret_basic", client_name=name, client_uri=uri)
    session = code_session(metadata, reg)
    url, _, _ = start(session, metadata)
    login = browser.get(url)
    consent = browser.login(login, person)
    for page in (login, consent):
        tags = _Tags()
        tags.feed(page.text)
        assert not {"img", "script"} & tags.seen, tags.seen
        assert name in tags.text, "the name is shown as text"
        assert uri in tags.hrefs or uri not in tags.text


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.seen: set = set()
        self.hrefs: list = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.seen.add(tag)
        self.hrefs += [value for key, value in attrs if key == "href"]

    def handle_data(self, data):
        self.text += data


# ------------------------------------------------- NUL in request strings
#
# U+0000 is a valid character in a form value (and in a JWT's JSON), but
# PostgreSQL text cannot hold it. Found by test_pages_never_5xx_on_odd_submissions
# on PostgreSQL, whose NUL username made the audit writer drop a batch.

NUL_REASON = (
    "PostgreSQL only: a U+0000 in a request string is sent to PostgreSQL as a text "
    "parameter, which it refuses ('invalid byte sequence for encoding \"UTF8\": 0x00'); "
)


def wait_for_event(admin, **query_params) -> list:
    deadline = time.time() + 10
    while True:
        response = admin.get("/events", params=query_params)
        assert response.status_code == 200, response.text
        if response.json() or time.time() > deadline:
            return response.json()
        time.sleep(0.2)


def _nul_requests(metadata, reg):
    auth = {"Authorization": basic(reg["client_id"], reg["client_secret"])}
    token = metadata["token_endpoint"]
    from test_dpop import DpopKey  # imported here: test_dpop imports this module

    return {
        "client_id in the form": ("POST", token, {"data": {"grant_type": "client_credentials", "client_id": "evil\x00id", "client_secret": "x"}}),
        "client_id in Basic": ("POST", token, {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": basic("evil\x00id", "x")}}),
        "DPoP proof jti": ("POST", token, {"data": {"grant_type": "client_credentials"}, "headers": {**auth, "DPoP": DpopKey().proof("POST", token, jti="a\x00b")}}),
        "resource": ("POST", token, {"data": {"grant_type": "client_credentials", "resource": "https://api.interop.example/\x00"}, "headers": auth}),
        "client_id at the authorization endpoint": ("GET", metadata["authorization_endpoint"], {"params": {"client_id": "a\x00b", "response_type": "code"}}),
    }




@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case)
        for case in (
            "client_id in the form",
            "client_id in Basic",
            "DPoP proof jti",
            "resource",
            "client_id at the authorization endpoint",
        )
    ],
)
def test_nul_in_request_strings_is_never_a_server_error(metadata, register, case):
    reg = cc_client(register, scope="read")
    method, url, kwargs = _nul_requests(metadata, reg)[case]
    # A client without the suite's 5xx hook: the answer is asserted here.
    with httpx.Client(timeout=15.0) as raw:
        response = raw.request(method, url, **kwargs)
    assert response.status_code < 500, (response.status_code, response.text[:200])


def test_audit_keeps_a_refusal_with_nul_and_its_neighbours(http, metadata, register, admin):
    sender = cc_client(register, scope="read")
    neighbour = cc_client(register, scope="read")
    response = http.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": "re\x00ad"},
        headers={"Authorization": basic(sender["client_id"], sender["client_secret"])},
    )
    # A NUL is refused where the form is read (invalid_request).
    assert_error(response, 400, "invalid_request")
    # An ordinary refusal right after, most likely in the same audit batch.
    response = http.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(neighbour["client_id"], "not-the-secret")},
    )
    assert_error(response, 401, "invalid_client")
    assert len(wait_for_event(admin, client_id=neighbour["client_id"], type="token.refused")) == 1, (
        "the neighbour's refusal is in the audit trail"
    )
