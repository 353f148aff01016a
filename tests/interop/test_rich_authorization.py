"""Rich Authorization Requests (RFC 9396) driven by authlib.

An operator registers an authorization details type with its resource and a
JSON Schema (admin API); every test makes its own resource and type (fresh
names: the server is shared by the whole suite). authlib plays the client:
OAuth2Session builds the authorization URL with `authorization_details` and
PKCE S256, redeems the code and refreshes (with `authorization_details` as
an extra token request parameter), sends client credentials and token
exchange requests and introspects. httpx plays the person's browser
(browser.py) and sends the one request authlib has no helper for, the PAR
push (RFC 9126). Access tokens are verified with joserfc against the JWKS
(test_token_exchange.verify).

What custos does (docs and crates/custos/tests/rich_authorization.rs):
each entry is checked against its registered type and schema and gets
`locations: [<the type's resource>]`; that resource joins the token's
`aud`; the details are shown on the consent page in words (and such consent
is never remembered); the token response (§7), the JWT claim and
introspection (§9) carry them; a token request, a refresh or a token
exchange may narrow them, never widen them (§6.1); client credentials may
ask only for types the client registered (§10.2).

Test names carry the RFC clause they check.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from browser import Browser, create_person, query
from conftest import authlib_session
from test_authlib import (
    basic,
    cc_client,
    description_is_conformant,
    management_headers,
    secret_session,
)
from test_token_exchange import party, verify

AC = "authorization_code"
RT = "refresh_token"
CC = "client_credentials"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
REDIRECT = "https://app.interop.example/rar/cb"
STATE = "st@te/ü rar"
INVALID = "invalid_authorization_details"


# ---------------------------------------------------------------- helpers


@dataclass
class Bank:
    """A resource with one registered authorization details type."""

    uri: str
    type: str

    def entry(self, actions=("initiate", "status"), **extra) -> dict:
        """A payment entry as the client sends it (RFC 9396 §2's example)."""
        entry = {
            "type": self.type,
            "actions": list(actions),
            "instructedAmount": {"currency": "EUR", "amount": "123.50"},
            "creditorName": "Merchant A",
        }
        entry.update(extra)
        return entry

    def granted(self, entry: dict) -> dict:
        """The entry as the server hands it back: `locations` made explicit."""
        return {**entry, "locations": [self.uri]}


def payment_schema(type_name: str) -> dict:
    """A JSON Schema (draft 2020-12) of one payment entry."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["type", "actions"],
        "properties": {
            "type": {"const": type_name},
            "actions": {"type": "array", "items": {"enum": ["initiate", "status", "cancel"]}},
            "instructedAmount": {
                "type": "object",
                "required": ["currency", "amount"],
                "properties": {
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "amount": {"type": "string"},
                },
            },
            "creditorName": {"type": "string", "maxLength": 70},
        },
    }


def new_bank(admin, scopes=("read",)) -> Bank:
    """Registers a fresh resource with a fresh payment type (admin API)."""
    tag = uuid.uuid4().hex[:8]
    bank = Bank(uri=f"https://bank-{tag}.example/", type=f"payment_{tag}")
    response = admin.post(
        "/resources",
        json={
            "uri": bank.uri,
            "scopes": list(scopes),
            "authorization_details_types": [
                {"type": bank.type, "schema": payment_schema(bank.type)}
            ],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [t["type"] for t in body["authorization_details_types"]] == [bank.type], body
    return bank


def details(*entries: dict) -> str:
    return json.dumps(list(entries))


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


def code_client(register, method: str = "client_secret_basic", **extra) -> dict:
    return register(
        grant_types=[AC, RT],
        token_endpoint_auth_method=method,
        redirect_uris=[REDIRECT],
        scope="read",
        client_name="Budget App",
        **extra,
    )


def code_session(metadata, reg: dict):
    """authlib's OAuth2Session for the code flow, PKCE S256 on; `seen`
    keeps the token endpoint's responses (errors included)."""
    session = authlib_session(
        metadata,
        reg["client_id"],
        reg.get("client_secret"),
        reg["token_endpoint_auth_method"],
        redirect_uri=REDIRECT,
        scope="read",
        code_challenge_method="S256",
    )
    session.seen = []

    def hook(response):
        session.seen.append(response)
        return response

    session.register_compliance_hook("access_token_response", hook)
    session.register_compliance_hook("refresh_token_response", hook)
    return session


def authorization_url(session, metadata, requested: str | None) -> tuple[str, str]:
    """authlib builds the authorization URL; returns (url, verifier)."""
    verifier = generate_token(48)
    extra = {"authorization_details": requested} if requested is not None else {}
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, state=STATE, **extra
    )
    assert state == STATE
    sent = query(url)
    assert sent["code_challenge"] == create_s256_code_challenge(verifier)
    if requested is not None:
        assert json.loads(sent["authorization_details"]) == json.loads(requested)
    return url, verifier


class _Page(HTMLParser):
    """The consent page's tags, its text, and the items of its
    `<ul class="details">` (the authorization details in words)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: set = set()
        self.text = ""
        self.details: list[str] = []
        self.terms: list[str] = []
        self._in_details = False
        self._item: list[str] | None = None
        self._term: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        if tag == "ul" and "details" in (attrs.get("class") or "").split():
            self._in_details = True
        elif tag == "li" and self._in_details:
            self._item = []
        elif tag == "dt":
            self._term = []

    def handle_endtag(self, tag):
        if tag == "li" and self._item is not None:
            self.details.append("".join(self._item).strip())
            self._item = None
        elif tag == "ul" and self._in_details:
            self._in_details = False
        elif tag == "dt" and self._term is not None:
            self.terms.append("".join(self._term).strip())
            self._term = None

    def handle_data(self, data):
        self.text += data
        if self._item is not None:
            self._item.append(data)
        if self._term is not None:
            self._term.append(data)


def consent_page(browser: Browser, url: str, person: str):
    """GET the authorization URL and log in (unless this browser is logged
    in already); returns the consent page (an httpx response) and what it
    shows."""
    consent = browser.get(url)
    assert consent.status_code == 200, (consent.status_code, consent.headers.get("location"))
    if 'name="password"' in consent.text:
        consent = browser.login(consent, person)
    assert consent.status_code == 200, (consent.status_code, consent.headers.get("location"))
    assert 'value="consent"' in consent.text, consent.text
    shown = _Page()
    shown.feed(consent.text)
    shown.close()
    return consent, shown


def assert_described(line: str, bank: Bank, actions: str) -> None:
    """One entry in words (crates/protocol/src/rar/describe.rs): the type,
    where, the common fields, then every other field (strings as they are,
    the rest as compact JSON)."""
    assert line.startswith(f"{bank.type} at {bank.uri}: actions {actions}; "), line
    assert "creditorName Merchant A" in line, line
    amount = line.split("instructedAmount ", 1)[1].split(";", 1)[0]
    assert json.loads(amount) == {"currency": "EUR", "amount": "123.50"}, line


def code_with_details(session, metadata, browser, person, requested: str) -> tuple[str, str]:
    """The front channel with `authorization_details`: the consent page
    must describe them; returns (callback URL, verifier)."""
    url, verifier = authorization_url(session, metadata, requested)
    consent, shown = consent_page(browser, url, person)
    assert "In detail" in shown.terms, shown.terms
    assert len(shown.details) == len(json.loads(requested)), shown.details
    answer = browser.consent(consent)
    assert answer.status_code == 303, answer.text[:300]
    location = answer.headers["location"]
    params = query(location)
    assert params.get("iss") == metadata["issuer"], location
    assert params.get("state") == STATE, location
    assert "code" in params, location
    return location, verifier


def audience(claims: dict) -> list:
    aud = claims["aud"]
    return [aud] if isinstance(aud, str) else list(aud)


def refused(session, call, *args, **kwargs) -> dict:
    """A token request authlib must see refused: an RFC 6749 §5.2 error
    (400, JSON, no-store). Returns the error body."""
    before = len(session.seen)
    with pytest.raises(OAuthError) as excinfo:
        call(*args, **kwargs)
    assert len(session.seen) == before + 1
    response = session.seen[-1]
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("cache-control") == "no-store"
    body = response.json()
    assert body["error"] == excinfo.value.error
    assert description_is_conformant(body.get("error_description", "")), body
    return body


# -------------------------------------------------- registration, discovery


def test_rfc9396_10_types_registered_with_their_resource_are_advertised(http, metadata, admin):
    """§10 (authorization_details_types_supported, RFC 8414 metadata): a
    type registered with a resource is listed in discovery; its name is
    unique on the server (a second resource claiming it is 409, and nothing
    of that resource is kept)."""
    bank = new_bank(admin)
    document = http.get(f"{metadata['issuer']}/.well-known/oauth-authorization-server").json()
    assert bank.type in document["authorization_details_types_supported"], document

    listed = admin.get("/resources")
    assert listed.status_code == 200, listed.text
    mine = [r for r in listed.json() if r["uri"] == bank.uri]
    assert len(mine) == 1, listed.json()
    types = mine[0]["authorization_details_types"]
    assert [t["type"] for t in types] == [bank.type]
    assert types[0]["schema"] == payment_schema(bank.type)

    thief = f"https://thief-{uuid.uuid4().hex[:8]}.example/"
    response = admin.post(
        "/resources",
        json={
            "uri": thief,
            "scopes": [],
            "authorization_details_types": [{"type": bank.type, "schema": {"type": "object"}}],
        },
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"], response.text
    assert not [r for r in admin.get("/resources").json() if r["uri"] == thief]


# --------------------------------------------- the authorization code flow


def test_rfc9396_2_code_flow_details_shown_then_in_token_response_claim_and_introspection(
    http, metadata, register, admin, person, browser, resource_server
):
    """§2 at the authorization endpoint (GET, built by authlib); §3 the
    consent page says what is asked, in words; §7 the token response, §9.1
    the JWT access token (`aud` the type's resource) and §9.2 introspection
    all carry the granted details, `locations` made explicit."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    requested = bank.entry(["initiate", "status"])
    url, verifier = authorization_url(session, metadata, details(requested))

    consent, shown = consent_page(browser, url, person)
    assert "In detail" in shown.terms, shown.terms
    assert len(shown.details) == 1, shown.details
    assert_described(shown.details[0], bank, "initiate, status")
    # RFC 8707-style: the resource the details are for is named too.
    assert bank.uri in shown.text
    answer = browser.consent(consent)
    assert answer.status_code == 303, answer.text[:300]
    location = answer.headers["location"]
    assert query(location)["iss"] == metadata["issuer"]

    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    expected = [bank.granted(requested)]
    assert session.seen[-1].headers["cache-control"] == "no-store"
    assert tokens["authorization_details"] == expected, tokens
    assert tokens["scope"] == "read"
    assert tokens["refresh_token"]

    claims = verify(http, metadata, tokens["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == expected, claims
    assert bank.uri in audience(claims)
    assert claims["client_id"] == reg["client_id"] and claims["sub"] == person

    info = introspect(resource_server, metadata, tokens["access_token"])
    assert info["active"] is True
    assert info["authorization_details"] == expected, info
    assert bank.uri in ([info["aud"]] if isinstance(info["aud"], str) else info["aud"])


def test_rfc9396_3_consent_with_details_is_asked_every_time(
    metadata, register, admin, person, browser
):
    """A consent for one transaction never silently covers the next one:
    the same browser, client and details see the consent page again."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    requested = details(bank.entry(["initiate"]))
    location, verifier = code_with_details(session, metadata, browser, person, requested)
    assert session.fetch_token(authorization_response=location, code_verifier=verifier)

    url, _ = authorization_url(session, metadata, requested)
    again = browser.get(url)  # logged in already
    assert again.status_code == 200, (again.status_code, again.headers.get("location"))
    assert 'value="allow"' in again.text and 'name="password"' not in again.text
    # Nor does it become a remembered consent for the scope alone.
    url, _ = authorization_url(session, metadata, None)
    plain = browser.get(url)
    assert plain.status_code == 200, (plain.status_code, plain.headers.get("location"))
    assert 'value="allow"' in plain.text


def test_rfc9396_3_consent_page_shows_details_as_text_never_markup(
    metadata, register, admin, person, browser
):
    """The details are chosen by the client: shown as text (escaped), no
    element of theirs on the page."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    name = "<script>alert(1)</script><img src=x onerror=alert(2)>&amp;"
    requested = details(bank.entry(["status"], creditorName=name))
    url, _ = authorization_url(session, metadata, requested)
    consent, shown = consent_page(browser, url, person)
    assert not {"script", "img"} & shown.tags, shown.tags
    assert len(shown.details) == 1
    assert f"creditorName {name}" in shown.details[0], shown.details
    assert "<script>" not in consent.text


# (why, the parameter for a given Bank, a word the error_description names)
INVALID_REQUESTS = [
    ("unknown type", lambda b: details({"type": f"wire_{uuid.uuid4().hex[:8]}"}), "wire_"),
    ("schema violation", lambda b: details({"type": b.type, "actions": ["steal"]}), "schema"),
    ("schema: required member missing", lambda b: details({"type": b.type}), "schema"),
    ("not an array", lambda b: json.dumps({"type": b.type, "actions": ["status"]}), "array"),
    ("not JSON", lambda b: "[{", "array"),
    ("no type", lambda b: details({"actions": ["initiate"]}), "type"),
    ("actions not strings", lambda b: details({"type": b.type, "actions": [1]}), "actions"),
    (
        "another resource's location",
        lambda b: details(
            {"type": b.type, "actions": ["status"], "locations": ["https://evil.example/"]}
        ),
        "location",
    ),
]


@pytest.mark.parametrize(
    "why, build, names", [pytest.param(*case, id=case[0]) for case in INVALID_REQUESTS]
)
def test_rfc9396_5_invalid_details_are_redirected_as_invalid_authorization_details(
    metadata, register, admin, browser, why, build, names
):
    """§5: a request whose authorization_details are unknown, malformed or
    refused is answered at the redirect URI with
    `invalid_authorization_details`, `state` and (RFC 9207) `iss`; no login
    page first."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    url, _ = authorization_url(session, metadata, None)
    url += "&" + urllib.parse.urlencode({"authorization_details": build(bank)})
    response = browser.get(url)
    assert response.status_code == 303, (why, response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    params = query(location)
    assert params.get("error") == INVALID, (why, location)
    assert names in params.get("error_description", ""), (why, params)
    # RFC 6749 §4.1.2.1: printable ASCII without '"' and '\\'.
    assert description_is_conformant(params["error_description"]), params
    assert params.get("state") == STATE, (why, params)
    assert params.get("iss") == metadata["issuer"], (why, params)
    assert "code" not in params


def test_rfc9396_5_invalid_details_with_unregistered_redirect_uri_are_not_redirected(
    metadata, register, admin, browser
):
    """RFC 6749 §4.1.2.1: with a redirect URI the client did not register
    the error is shown to the person, never sent there, whatever else is
    wrong with the request."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    url, _ = authorization_url(session, metadata, None)
    evil = "https://evil.interop.example/cb"
    parts = {k: v for k, v in query(url).items()}
    parts.update(redirect_uri=evil, authorization_details=details({"type": bank.type}))
    response = browser.get(metadata["authorization_endpoint"] + "?" + urllib.parse.urlencode(parts))
    assert response.status_code == 400, (response.status_code, response.headers.get("location"))
    assert "location" not in response.headers


# ------------------------------------------------------ narrowing (§6.1)


def test_rfc9396_6_1_token_request_may_narrow_never_widen(
    http, metadata, register, admin, person, browser, resource_server
):
    """§6.1: the token request may ask for a subset of what was authorized
    (fewer actions); the issued entry is completed with the granted entry's
    other fields. Asking for more (another action) is
    invalid_authorization_details."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    granted = bank.entry(["initiate", "status"])

    location, verifier = code_with_details(session, metadata, browser, person, details(granted))
    wider = details(bank.entry(["initiate", "status", "cancel"]))
    body = refused(
        session,
        session.fetch_token,
        authorization_response=location,
        code_verifier=verifier,
        authorization_details=wider,
    )
    assert body["error"] == INVALID, body
    sent = dict(urllib.parse.parse_qsl(session.seen[-1].request.body))
    assert sent["authorization_details"] == wider

    # Another type than the one authorized is wider too.
    other = new_bank(admin)
    location, verifier = code_with_details(session, metadata, browser, person, details(granted))
    body = refused(
        session,
        session.fetch_token,
        authorization_response=location,
        code_verifier=verifier,
        authorization_details=details({"type": other.type, "actions": ["status"]}),
    )
    assert body["error"] == INVALID, body

    location, verifier = code_with_details(session, metadata, browser, person, details(granted))
    tokens = session.fetch_token(
        authorization_response=location,
        code_verifier=verifier,
        authorization_details=details({"type": bank.type, "actions": ["status"]}),
    )
    narrowed = [bank.granted(bank.entry(["status"]))]
    assert tokens["authorization_details"] == narrowed, tokens
    claims = verify(http, metadata, tokens["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == narrowed, claims
    assert introspect(resource_server, metadata, tokens["access_token"])[
        "authorization_details"
    ] == narrowed

    # The refresh token keeps the whole grant: a plain refresh gets it all.
    refreshed = session.refresh_token(metadata["token_endpoint"])
    assert refreshed["authorization_details"] == [bank.granted(granted)], refreshed


def test_rfc9396_6_2_refresh_may_narrow_never_widen(
    http, metadata, register, admin, person, browser
):
    """§6.2: a refresh request may carry authorization_details, as the
    token request may (§6.1): narrower is issued, wider is refused and does
    not use the refresh token up; the next plain refresh gets everything
    the person authorized again."""
    bank = new_bank(admin)
    reg = code_client(register, method="none")
    session = code_session(metadata, reg)
    granted = bank.entry(["initiate", "status"])
    location, verifier = code_with_details(session, metadata, browser, person, details(granted))
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert tokens["authorization_details"] == [bank.granted(granted)]
    first = tokens["refresh_token"]

    wider = details(bank.entry(["cancel"]))
    body = refused(session, session.refresh_token, metadata["token_endpoint"],
                   refresh_token=first, authorization_details=wider)
    assert body["error"] == INVALID, body

    narrowed = session.refresh_token(
        metadata["token_endpoint"],
        refresh_token=first,  # still good: the refused refresh did not use it up
        authorization_details=details({"type": bank.type, "actions": ["initiate"]}),
    )
    assert narrowed["refresh_token"] != first
    assert narrowed["authorization_details"] == [bank.granted(bank.entry(["initiate"]))], narrowed
    claims = verify(http, metadata, narrowed["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == narrowed["authorization_details"]

    again = session.refresh_token(metadata["token_endpoint"])
    assert again["authorization_details"] == [bank.granted(granted)], again
    claims = verify(http, metadata, again["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == [bank.granted(granted)]


# ------------------------------------------------------------- PAR (RFC 9126)


def test_rfc9396_2_pushed_authorization_request_carries_checked_details(
    http, metadata, register, admin, person, browser
):
    """RFC 9126 §2.1 with RFC 9396: details in a PAR push are checked there
    (400 invalid_authorization_details, nothing redirected) and, when good,
    shown on the consent page and carried into the tokens."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    endpoint = metadata["pushed_authorization_request_endpoint"]
    auth = {"Authorization": basic(reg["client_id"], reg["client_secret"])}
    verifier = generate_token(48)
    form = {
        "response_type": "code",
        "client_id": reg["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "read",
        "state": STATE,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }

    for bad in (
        details({"type": bank.type, "actions": "initiate"}),
        details({"type": f"nope_{uuid.uuid4().hex[:8]}"}),
    ):
        response = http.post(endpoint, data={**form, "authorization_details": bad}, headers=auth)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == INVALID, response.text
        assert "location" not in response.headers

    requested = bank.entry(["initiate"])
    form["authorization_details"] = details(requested)
    response = http.post(endpoint, data=form, headers=auth)
    assert response.status_code == 201, response.text
    # RFC 9126 §4: only what was pushed counts; details added on the front
    # channel (wider, and another resource's) are not taken.
    other = new_bank(admin)
    front = details(
        bank.entry(["initiate", "status", "cancel"]), {"type": other.type, "actions": ["initiate"]}
    )
    url = metadata["authorization_endpoint"] + "?" + urllib.parse.urlencode(
        {
            "client_id": reg["client_id"],
            "request_uri": response.json()["request_uri"],
            "authorization_details": front,
        }
    )
    consent, shown = consent_page(browser, url, person)
    assert len(shown.details) == 1, shown.details
    assert shown.details[0].startswith(f"{bank.type} at {bank.uri}: actions initiate;"), (
        shown.details
    )
    answer = browser.consent(consent)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert query(location)["state"] == STATE

    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert tokens["authorization_details"] == [bank.granted(requested)], tokens
    claims = verify(http, metadata, tokens["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == [bank.granted(requested)]
    assert audience(claims) == [bank.uri], claims


# ----------------------------------------- client credentials (§10.2), exchange


def test_rfc9396_10_2_client_credentials_only_for_registered_types(
    http, metadata, register, admin, resource_server
):
    """§10.2: with no person to consent, a client may ask only for the
    types it registered (client metadata `authorization_details_types`);
    the token carries the details and is for the type's resource."""
    bank = new_bank(admin)
    elsewhere = new_bank(admin)
    allowed = cc_client(register, scope="read", authorization_details_types=[bank.type])
    assert allowed["authorization_details_types"] == [bank.type], allowed
    stranger = cc_client(register, scope="read")

    requested = details(bank.entry(["initiate", "status"]))
    session = secret_session(metadata, stranger)
    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(grant_type=CC, authorization_details=requested)
    assert excinfo.value.error == INVALID

    session = secret_session(metadata, allowed)
    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(
            grant_type=CC,
            authorization_details=details({"type": elsewhere.type, "actions": ["status"]}),
        )
    assert excinfo.value.error == INVALID, "a type the client did not register"

    tokens = session.fetch_token(grant_type=CC, authorization_details=requested)
    expected = [bank.granted(bank.entry(["initiate", "status"]))]
    assert tokens["authorization_details"] == expected, tokens
    claims = verify(http, metadata, tokens["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == expected
    assert claims["sub"] == claims["client_id"] == allowed["client_id"]
    info = introspect(resource_server, metadata, tokens["access_token"])
    assert info["active"] is True and info["authorization_details"] == expected, info

    # Without details: an ordinary token, no claim.
    plain = session.fetch_token(grant_type=CC)
    assert "authorization_details" not in plain
    assert "authorization_details" not in verify(http, metadata, plain["access_token"])


def test_rfc9396_2_two_types_two_resources_both_in_the_audience(http, metadata, register, admin):
    """Each entry's location joins the token's audience: two entries of
    types at two resources make a token for both."""
    bank = new_bank(admin)
    other = new_bank(admin)
    reg = cc_client(register, scope="read", authorization_details_types=[bank.type, other.type])
    session = secret_session(metadata, reg)
    first, second = bank.entry(["status"]), {"type": other.type, "actions": ["initiate"]}
    tokens = session.fetch_token(grant_type=CC, authorization_details=details(first, second))
    expected = [bank.granted(first), {**second, "locations": [other.uri]}]
    assert tokens["authorization_details"] == expected, tokens
    claims = verify(http, metadata, tokens["access_token"], audience=bank.uri)
    assert sorted(audience(claims)) == sorted([bank.uri, other.uri]), claims
    assert claims["authorization_details"] == expected


def test_rfc9396_6_token_exchange_narrows_never_widens(http, metadata, register, admin):
    """RFC 8693 with RFC 9396 §6: the exchanged token carries the subject
    token's details; a request's authorization_details narrows them; wider
    is invalid_authorization_details; a token for fewer resources carries
    only their entries."""
    bank = new_bank(admin)
    other = new_bank(admin)
    agent = party(
        metadata, register, scope="read", authorization_details_types=[bank.type, other.type]
    )
    granted = bank.entry(["initiate", "status"])
    second = {"type": other.type, "actions": ["status"]}
    subject = agent.own_token(authorization_details=details(granted, second))
    whole = [bank.granted(granted), {**second, "locations": [other.uri]}]
    assert subject["authorization_details"] == whole, subject

    same = agent.exchange(subject["access_token"])
    assert same["issued_token_type"] == AT
    assert same["authorization_details"] == whole, same
    claims = verify(http, metadata, same["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == whole

    narrower = agent.exchange(
        subject["access_token"],
        authorization_details=details({"type": bank.type, "actions": ["status"]}),
    )
    narrowed = [bank.granted(bank.entry(["status"]))]
    assert narrower["authorization_details"] == narrowed, narrower
    claims = verify(http, metadata, narrower["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == narrowed
    assert claims["sub"] == agent.id

    # One resource only: that resource's entries only.
    one = agent.exchange(subject["access_token"], resource=other.uri)
    claims = verify(http, metadata, one["access_token"], audience=other.uri)
    assert audience(claims) == [other.uri], claims
    assert one["authorization_details"] == [{**second, "locations": [other.uri]}], one
    assert claims["authorization_details"] == one["authorization_details"]

    for wider in (
        details(bank.entry(["cancel"])),
        details(bank.entry(["status"], creditorName="Someone Else")),
    ):
        error, body = agent.refused(
            grant_type=EXCHANGE,
            subject_token=subject["access_token"],
            subject_token_type=AT,
            authorization_details=wider,
        )
        assert error == INVALID, body
    # Narrowed once, never widened again from the narrowed token.
    error, body = agent.refused(
        grant_type=EXCHANGE,
        subject_token=narrower["access_token"],
        subject_token_type=AT,
        authorization_details=details(granted),
    )
    assert error == INVALID, body



def test_rfc9396_6_exchange_of_a_persons_narrowed_token_stays_narrow(
    http, metadata, register, admin, person, browser
):
    """A token exchange starts from the subject token's details, not from
    the grant behind it: a code-flow token narrowed at the token request
    (§6.1), or at a refresh, exchanges to no more than it carries."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    granted = bank.entry(["initiate", "status"])
    location, verifier = code_with_details(session, metadata, browser, person, details(granted))
    tokens = session.fetch_token(
        authorization_response=location,
        code_verifier=verifier,
        authorization_details=details({"type": bank.type, "actions": ["status"]}),
    )
    status_only = [bank.granted(bank.entry(["status"]))]
    assert tokens["authorization_details"] == status_only

    agent = party(metadata, register, scope="read")
    exchanged = agent.exchange(tokens["access_token"])
    assert exchanged["authorization_details"] == status_only, exchanged
    claims = verify(http, metadata, exchanged["access_token"], audience=bank.uri)
    assert claims["authorization_details"] == status_only
    assert claims["sub"] == person and claims["act"]["sub"] == agent.id
    error, body = agent.refused(
        grant_type=EXCHANGE,
        subject_token=tokens["access_token"],
        subject_token_type=AT,
        authorization_details=details(granted),
    )
    assert error == INVALID, body

    refreshed = session.refresh_token(
        metadata["token_endpoint"],
        authorization_details=details({"type": bank.type, "actions": ["initiate"]}),
    )
    exchanged = agent.exchange(refreshed["access_token"])
    assert exchanged["authorization_details"] == [bank.granted(bank.entry(["initiate"]))], exchanged


def test_rfc9396_6_1_nothing_authorized_nothing_added(
    metadata, register, admin, person, browser
):
    """A person who authorized the scope on the resource (RFC 8707) but no
    details: neither the token request nor a refresh can add details."""
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    asked = details(bank.entry(["status"]))

    def code() -> tuple[str, str]:
        url, verifier = authorization_url(session, metadata, None)
        url += "&" + urllib.parse.urlencode({"resource": bank.uri})
        return browser.authorize(url, person), verifier

    location, verifier = code()
    body = refused(session, session.fetch_token, authorization_response=location,
                   code_verifier=verifier, authorization_details=asked)
    assert body["error"] == INVALID, body

    location, verifier = code()
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert "authorization_details" not in tokens, tokens
    body = refused(
        session, session.refresh_token, metadata["token_endpoint"], authorization_details=asked
    )
    assert body["error"] == INVALID, body


def test_rfc9396_deny_is_access_denied(metadata, register, admin, person, browser):
    bank = new_bank(admin)
    reg = code_client(register)
    session = code_session(metadata, reg)
    url, _ = authorization_url(session, metadata, details(bank.entry()))
    consent, shown = consent_page(browser, url, person)
    assert len(shown.details) == 1
    answer = browser.consent(consent, decision="deny")
    assert answer.status_code == 303
    params = query(answer.headers["location"])
    assert params["error"] == "access_denied" and "code" not in params, params
    assert params["state"] == STATE and params["iss"] == metadata["issuer"]


def test_rfc9396_10_2_registered_types_follow_an_rfc7592_update(http, metadata, register, admin):
    """The types a client may ask for are its current registration's: an
    update (RFC 7592 §2.2) that drops a type drops the permission."""
    bank = new_bank(admin)
    reg = cc_client(register, scope="read", authorization_details_types=[bank.type])
    session = secret_session(metadata, reg)
    requested = details(bank.entry(["status"]))
    tokens = session.fetch_token(grant_type=CC, authorization_details=requested)
    assert tokens["authorization_details"] == [bank.granted(bank.entry(["status"]))], tokens

    current = http.get(reg["registration_client_uri"], headers=management_headers(reg))
    assert current.status_code == 200, current.text
    update = {
        k: v
        for k, v in current.json().items()
        if k not in ("registration_access_token", "registration_client_uri",
                     "client_secret_expires_at", "client_id_issued_at")
    }
    assert update["authorization_details_types"] == [bank.type]
    update["authorization_details_types"] = []
    response = http.put(
        reg["registration_client_uri"], json=update, headers=management_headers(reg)
    )
    assert response.status_code == 200, response.text
    assert response.json().get("authorization_details_types", []) == []

    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(grant_type=CC, authorization_details=requested)
    assert excinfo.value.error == INVALID
