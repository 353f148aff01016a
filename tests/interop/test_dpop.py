"""DPoP (RFC 9449) at the token endpoint, with proofs made by joserfc.

authlib has no DPoP client, so `DpopSession` adds what a client
integration would: an authlib OAuth2Session whose token endpoint requests
carry a fresh proof (joserfc signs it: typ dpop+jwt, jwk header, jti, htm,
htu, iat), which remembers the server's `DPoP-Nonce` and retries once on
`use_dpop_nonce` (RFC 9449 §8). The key's thumbprint is joserfc's RFC 7638
implementation, compared with the server's `cnf.jkt`.

The nonce tests need a second custos with CUSTOS_DPOP_NONCE=true on the
same database; run.sh starts one and passes its URL in
CUSTOS_TEST_NONCE_URL (they are skipped without it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import urllib.parse
import uuid

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from browser import Browser, create_person, query
from conftest import ADMIN_TOKEN, _b64url, _note_requests
from test_authlib import assert_error, basic, cc_client, secret_session, verify_access_token
from test_code_flow import AC, LOOPBACK, LOOPBACK_AT_PORT, RT, assert_iss, introspect

CC = "client_credentials"
DPOP_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
}
NONCE_URL = os.environ.get("CUSTOS_TEST_NONCE_URL", "").rstrip("/")

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


class DpopKey:
    """A DPoP key pair (joserfc) that makes proofs."""

    def __init__(self, alg: str = "ES256"):
        self.alg = alg
        if alg == "ES256":
            self.key = ECKey.generate_key("P-256")
        elif alg == "ES384":
            self.key = ECKey.generate_key("P-384")
        elif alg == "EdDSA":
            self.key = OKPKey.generate_key("Ed25519")
        else:
            self.key = RSAKey.generate_key(2048)
        self.public_jwk = self.key.as_dict(private=False)

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()  # RFC 7638, SHA-256

    def proof(self, htm: str, htu: str, header: dict | None = None, drop=(), **claims) -> str:
        """A proof for `htm` `htu`; `claims` add or replace claims (None
        leaves one out), `drop` leaves claims out, `header` adds to or
        replaces the protected header."""
        payload = {"jti": uuid.uuid4().hex, "htm": htm, "htu": htu, "iat": int(time.time())}
        for name in drop:
            payload.pop(name)
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        protected = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk, **(header or {})}
        return joserfc_jwt.encode(protected, payload, self.key, algorithms=[self.alg])


class DpopSession(OAuth2Session):
    """authlib's OAuth2Session with DPoP at the token endpoint: a fresh
    proof per request, the server's nonce remembered, one retry on
    use_dpop_nonce."""

    def __init__(self, *args, dpop_key: DpopKey | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.dpop_key = dpop_key
        self.dpop_nonce: str | None = None
        self.nonce_retries = 0
        self.hooks["response"].append(_note_requests)

    def request(self, method, url, *args, **kwargs):
        if self.dpop_key is None or url != self.metadata.get("token_endpoint"):
            return super().request(method, url, *args, **kwargs)
        for attempt in (1, 2):
            headers = dict(kwargs.get("headers") or DPOP_HEADERS)
            headers["DPoP"] = self.dpop_key.proof(method, url, nonce=self.dpop_nonce)
            response = super().request(method, url, *args, **{**kwargs, "headers": headers})
            if "DPoP-Nonce" in response.headers:
                self.dpop_nonce = response.headers["DPoP-Nonce"]
            if (
                attempt == 1
                and response.status_code == 400
                and response.headers.get("content-type", "").startswith("application/json")
                and response.json().get("error") == "use_dpop_nonce"
            ):
                self.nonce_retries += 1
                continue
            return response
        return response


def dpop_session(metadata, reg: dict, key: DpopKey | None, **kwargs) -> DpopSession:
    return DpopSession(
        client_id=reg["client_id"],
        client_secret=reg.get("client_secret"),
        token_endpoint_auth_method=reg["token_endpoint_auth_method"],
        token_endpoint=metadata["token_endpoint"],
        dpop_key=key,
        **kwargs,
    )


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def assert_bound(http, metadata, tokens: dict, key: DpopKey) -> dict:
    """RFC 9449 §5: token_type DPoP; §6.1: cnf.jkt is the key's thumbprint."""
    assert tokens["token_type"] == "DPoP", tokens
    _, claims = verify_access_token(http, metadata, tokens["access_token"])
    assert claims["cnf"] == {"jkt": key.jkt}, claims
    return claims


# ------------------------------------------------------ client credentials


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "RS256", "PS256"])
def test_rfc9449_5_client_credentials_token_is_bound(http, metadata, register, alg):
    assert alg in metadata["dpop_signing_alg_values_supported"]
    reg = cc_client(register, scope="read")
    key = DpopKey(alg)
    session = dpop_session(metadata, reg, key)
    tokens = session.fetch_token(grant_type=CC)
    assert tokens["scope"] == "read"
    assert "refresh_token" not in tokens
    assert_bound(http, metadata, tokens, key)
    # RFC 9449 §6.2: introspection shows the binding.
    response = session.introspect_token(metadata["introspection_endpoint"], token=tokens["access_token"])
    info = response.json()
    assert info["active"] is True
    assert info["token_type"] == "DPoP"
    assert info["cnf"] == {"jkt": key.jkt}


def test_rfc7638_thumbprint_by_hand(http, metadata, register):
    """The server's jkt equals a thumbprint computed without any library."""
    reg = cc_client(register, scope="read")
    key = DpopKey("ES256")
    jwk = key.public_jwk
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    by_hand = _b64url(hashlib.sha256(canonical.encode()).digest())
    assert by_hand == key.jkt
    tokens = dpop_session(metadata, reg, key).fetch_token(grant_type=CC)
    assert claims_of(tokens["access_token"])["cnf"]["jkt"] == by_hand


def test_rfc9449_11_1_replayed_proof_is_invalid_dpop_proof(http, metadata, register):
    reg = cc_client(register, scope="read")
    key = DpopKey()
    proof = key.proof("POST", metadata["token_endpoint"])
    session = dpop_session(metadata, reg, None)  # no automatic proofs: the same one twice
    tokens = session.fetch_token(grant_type=CC, headers={**DPOP_HEADERS, "DPoP": proof})
    assert_bound(http, metadata, tokens, key)
    with pytest.raises(OAuthError) as excinfo:
        session.fetch_token(grant_type=CC, headers={**DPOP_HEADERS, "DPoP": proof})
    assert excinfo.value.error == "invalid_dpop_proof"
    # On the wire, by another client: still refused (the proof, not the client, is single use).
    other = cc_client(register, scope="read")
    response = http.post(
        metadata["token_endpoint"],
        data={"grant_type": CC},
        headers={"Authorization": basic(other["client_id"], other["client_secret"]), "DPoP": proof},
    )
    body = assert_error(response, 400, "invalid_dpop_proof")
    assert "jti" in body.get("error_description", "")
    assert response.headers["cache-control"] == "no-store"


def test_rfc9449_4_3_proofs_that_do_not_fit_are_refused(http, metadata, register):
    reg = cc_client(register, scope="read")
    auth = {"Authorization": basic(reg["client_id"], reg["client_secret"])}
    endpoint = metadata["token_endpoint"]
    key, other = DpopKey(), DpopKey()
    now = int(time.time())
    private_jwk = dict(key.public_jwk, d=key.key.as_dict(private=True)["d"])
    cases = {
        "htm GET": key.proof("GET", endpoint),
        "htu of another endpoint": key.proof("POST", metadata["introspection_endpoint"]),
        "htu of another server": key.proof("POST", "https://elsewhere.interop.example/token"),
        "iat an hour ago": key.proof("POST", endpoint, iat=now - 3600),
        "iat in the future": key.proof("POST", endpoint, iat=now + 3600),
        "no jti": key.proof("POST", endpoint, drop=["jti"]),
        "no htu": key.proof("POST", endpoint, drop=["htu"]),
        "typ JWT": key.proof("POST", endpoint, header={"typ": "JWT"}),
        "jwk of another key": key.proof("POST", endpoint, header={"jwk": other.public_jwk}),
        "private key in jwk": key.proof("POST", endpoint, header={"jwk": private_jwk}),
        "not a JWT": "not-a-jwt",
    }
    for name, proof in cases.items():
        response = http.post(endpoint, data={"grant_type": CC}, headers={**auth, "DPoP": proof})
        assert (response.status_code, response.json().get("error")) == (
            400,
            "invalid_dpop_proof",
        ), (name, response.text)
    # §4.3 check 1: exactly one DPoP header field.
    response = http.post(
        endpoint,
        data={"grant_type": CC},
        headers=[
            ("Authorization", auth["Authorization"]),
            ("DPoP", key.proof("POST", endpoint)),
            ("DPoP", key.proof("POST", endpoint)),
        ],
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("invalid_dpop_proof", "invalid_request")
    # §4.3 check 9: query and fragment of htu are ignored.
    for htu in (endpoint + "?x=1", endpoint + "#f"):
        response = http.post(
            endpoint, data={"grant_type": CC}, headers={**auth, "DPoP": key.proof("POST", htu)}
        )
        assert response.status_code == 200, (htu, response.text)


def test_rfc9449_5_2_client_registered_dpop_bound_needs_a_proof(http, metadata, register):
    reg = cc_client(register, scope="read", dpop_bound_access_tokens=True)
    assert reg["dpop_bound_access_tokens"] is True
    with pytest.raises(OAuthError) as excinfo:
        dpop_session(metadata, reg, None).fetch_token(grant_type=CC)
    assert excinfo.value.error == "invalid_dpop_proof"
    key = DpopKey()
    assert_bound(http, metadata, dpop_session(metadata, reg, key).fetch_token(grant_type=CC), key)


# ----------------------------------------------- the authorization code flow


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
    return secret_session(metadata, cc_client(register, scope="read"))


def public_client(register) -> dict:
    return register(
        grant_types=[AC, RT],
        token_endpoint_auth_method="none",
        redirect_uris=[LOOPBACK],
        scope="read write",
    )


def authorize(session, metadata, browser, person, **extra) -> tuple[str, str]:
    verifier = uuid.uuid4().hex + uuid.uuid4().hex
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, **extra
    )
    location = browser.authorize(url, person)
    params = assert_iss(location, metadata)
    assert params["state"] == state and "code" in params
    return location, verifier


def code_flow_session(metadata, reg, key) -> DpopSession:
    return dpop_session(
        metadata,
        reg,
        key,
        redirect_uri=LOOPBACK_AT_PORT,
        scope="read",
        code_challenge_method="S256",
    )


def test_rfc9449_10_code_flow_with_dpop_jkt_public_client(
    http, metadata, register, person, browser, resource_server
):
    reg = public_client(register)
    key = DpopKey()
    session = code_flow_session(metadata, reg, key)
    # §10: dpop_jkt binds the code to the key from the start.
    location, verifier = authorize(session, metadata, browser, person, dpop_jkt=key.jkt)

    # Redeemed by another key, or without a proof: refused, and the code is
    # not redeemable afterwards either (it was presented).
    thief = code_flow_session(metadata, reg, DpopKey())
    with pytest.raises(OAuthError) as excinfo:
        thief.fetch_token(authorization_response=location, code_verifier=verifier)
    assert excinfo.value.error in ("invalid_grant", "invalid_dpop_proof")

    location, verifier = authorize(session, metadata, browser, person, dpop_jkt=key.jkt)
    without = code_flow_session(metadata, reg, None)
    with pytest.raises(OAuthError) as excinfo:
        without.fetch_token(authorization_response=location, code_verifier=verifier)
    assert excinfo.value.error in ("invalid_grant", "invalid_dpop_proof")

    location, verifier = authorize(session, metadata, browser, person, dpop_jkt=key.jkt)
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    claims = assert_bound(http, metadata, tokens, key)
    assert claims["sub"] == person
    info = introspect(resource_server, metadata, tokens["access_token"])
    assert info["token_type"] == "DPoP" and info["cnf"] == {"jkt": key.jkt}

    # §5: a public client's refresh token is bound to the key.
    first = tokens["refresh_token"]
    for stranger in (None, DpopKey()):
        session.dpop_key = stranger
        with pytest.raises(OAuthError) as excinfo:
            session.refresh_token(metadata["token_endpoint"], refresh_token=first)
        assert excinfo.value.error == "invalid_grant"
    session.dpop_key = key
    second = session.refresh_token(metadata["token_endpoint"], refresh_token=first)
    assert_bound(http, metadata, second, key)
    third = session.refresh_token(metadata["token_endpoint"])
    assert_bound(http, metadata, third, key)
    assert len({first, second["refresh_token"], third["refresh_token"]}) == 3
    # Reuse with the right key is still reuse: the family goes.
    with pytest.raises(OAuthError) as excinfo:
        session.refresh_token(metadata["token_endpoint"], refresh_token=first)
    assert excinfo.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as excinfo:
        session.refresh_token(metadata["token_endpoint"], refresh_token=third["refresh_token"])
    assert excinfo.value.error == "invalid_grant"


def test_rfc9449_5_code_flow_bound_at_the_token_endpoint(
    http, metadata, register, person, browser
):
    """Without dpop_jkt the proof at the token endpoint binds everything."""
    reg = public_client(register)
    key = DpopKey("EdDSA")
    session = code_flow_session(metadata, reg, key)
    location, verifier = authorize(session, metadata, browser, person)
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert_bound(http, metadata, tokens, key)
    refreshed = session.refresh_token(metadata["token_endpoint"])
    assert_bound(http, metadata, refreshed, key)


def test_code_flow_bearer_then_dpop_refresh(http, metadata, register, person, browser):
    """A family started without DPoP: a proof at refresh time binds the new
    access token to its key (the refresh token: see the tests below)."""
    reg = public_client(register)
    session = code_flow_session(metadata, reg, None)
    location, verifier = authorize(session, metadata, browser, person)
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert tokens["token_type"] == "Bearer"
    key = DpopKey()
    session.dpop_key = key
    refreshed = session.refresh_token(metadata["token_endpoint"])
    assert_bound(http, metadata, refreshed, key)


def test_rfc9449_5_public_refresh_token_issued_with_a_proof_is_bound(
    http, metadata, register, person, browser
):
    reg = public_client(register)
    session = code_flow_session(metadata, reg, None)
    location, verifier = authorize(session, metadata, browser, person)
    assert session.fetch_token(authorization_response=location, code_verifier=verifier)[
        "token_type"
    ] == "Bearer"
    key = DpopKey()
    session.dpop_key = key
    issued_with_proof = session.refresh_token(metadata["token_endpoint"])["refresh_token"]
    for stranger in (None, DpopKey()):
        session.dpop_key = stranger
        with pytest.raises(OAuthError) as excinfo:
            session.refresh_token(metadata["token_endpoint"], refresh_token=issued_with_proof)
        assert excinfo.value.error == "invalid_grant"


def test_rfc9449_5_confidential_client_may_rotate_its_dpop_key(
    http, metadata, register, person, browser
):
    reg = register(
        grant_types=[AC, RT],
        token_endpoint_auth_method="client_secret_basic",
        redirect_uris=[LOOPBACK],
        scope="read",
    )
    old, new = DpopKey(), DpopKey()
    session = code_flow_session(metadata, reg, old)
    location, verifier = authorize(session, metadata, browser, person)
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert_bound(http, metadata, tokens, old)
    session.dpop_key = new
    refreshed = session.refresh_token(metadata["token_endpoint"])
    assert_bound(http, metadata, refreshed, new)


# ------------------------------------------------------------ server nonces


@pytest.fixture(scope="module")
def nonce_metadata(http):
    if not NONCE_URL:
        pytest.skip("CUSTOS_TEST_NONCE_URL is not set (run.sh starts a custos with CUSTOS_DPOP_NONCE=true)")
    response = http.get(f"{NONCE_URL}/.well-known/oauth-authorization-server")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["issuer"] == NONCE_URL
    return document


def nonce_register(http, nonce_metadata, **client_metadata) -> dict:
    response = http.post(
        nonce_metadata["registration_endpoint"],
        json=client_metadata,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_rfc9449_8_nonce_on_the_wire(http, nonce_metadata):
    reg = nonce_register(http, nonce_metadata, grant_types=[CC], scope="read")
    endpoint = nonce_metadata["token_endpoint"]
    auth = {"Authorization": basic(reg["client_id"], reg["client_secret"])}
    key = DpopKey()
    response = http.post(endpoint, data={"grant_type": CC}, headers={**auth, "DPoP": key.proof("POST", endpoint)})
    assert_error(response, 400, "use_dpop_nonce")
    nonce = response.headers["DPoP-Nonce"]
    assert nonce and response.headers["cache-control"] == "no-store"
    response = http.post(
        endpoint, data={"grant_type": CC}, headers={**auth, "DPoP": key.proof("POST", endpoint, nonce="made-up")}
    )
    assert_error(response, 400, "use_dpop_nonce")
    proof = key.proof("POST", endpoint, nonce=nonce)
    response = http.post(endpoint, data={"grant_type": CC}, headers={**auth, "DPoP": proof})
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    assert claims_of(response.json()["access_token"])["cnf"]["jkt"] == key.jkt
    # A nonce does not make a proof reusable.
    response = http.post(endpoint, data={"grant_type": CC}, headers={**auth, "DPoP": proof})
    assert_error(response, 400, "invalid_dpop_proof")


def test_rfc9449_8_authlib_client_credentials_with_nonce_retry(http, nonce_metadata):
    reg = nonce_register(http, nonce_metadata, grant_types=[CC], scope="read")
    key = DpopKey()
    session = dpop_session(nonce_metadata, reg, key)
    tokens = session.fetch_token(grant_type=CC)
    assert session.nonce_retries == 1 and session.dpop_nonce
    assert tokens["token_type"] == "DPoP"
    assert claims_of(tokens["access_token"])["cnf"]["jkt"] == key.jkt
    # The remembered nonce is good for the next request: no retry.
    session.fetch_token(grant_type=CC)
    assert session.nonce_retries == 1


def test_rfc9449_8_code_flow_and_refresh_with_nonces(http, nonce_metadata, admin, browser):
    person = create_person(admin)
    reg = nonce_register(
        http,
        nonce_metadata,
        grant_types=[AC, RT],
        token_endpoint_auth_method="none",
        redirect_uris=[LOOPBACK],
        scope="read",
    )
    key = DpopKey()
    session = code_flow_session(nonce_metadata, reg, key)
    location, verifier = authorize(session, nonce_metadata, browser, person, dpop_jkt=key.jkt)
    assert query(location)["iss"] == NONCE_URL
    tokens = session.fetch_token(authorization_response=location, code_verifier=verifier)
    assert session.nonce_retries == 1
    assert tokens["token_type"] == "DPoP"
    assert claims_of(tokens["access_token"])["cnf"]["jkt"] == key.jkt
    refreshed = session.refresh_token(nonce_metadata["token_endpoint"])
    assert refreshed["token_type"] == "DPoP" and refreshed["refresh_token"] != tokens["refresh_token"]
    # A stale nonce (the client forgot it) costs one retry, not the refresh token.
    session.dpop_nonce = None
    session.refresh_token(nonce_metadata["token_endpoint"])
    assert session.nonce_retries == 2


# ------------------------------------------- pushed authorization requests


def push(http, metadata, form: dict, **headers) -> httpx.Response:
    return http.post(metadata["pushed_authorization_request_endpoint"], data=form, headers=headers)


def test_rfc9449_10_1_dpop_header_on_par_binds_the_code(
    http, metadata, register, person, browser
):
    """RFC 9449 §10.1: a DPoP header on the PAR request is checked (§4.3)
    and binds the code as dpop_jkt would; a dpop_jkt that names another key
    is refused."""
    reg = public_client(register)
    key = DpopKey()
    endpoint = metadata["pushed_authorization_request_endpoint"]

    def pushed_code(**headers) -> tuple[str, str]:
        verifier = uuid.uuid4().hex + uuid.uuid4().hex
        form = {
            "response_type": "code",
            "client_id": reg["client_id"],
            "redirect_uri": LOOPBACK_AT_PORT,
            "scope": "read",
            "state": "par",
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        response = push(http, metadata, form, **headers)
        assert response.status_code == 201, response.text
        url = metadata["authorization_endpoint"] + "?" + urllib.parse.urlencode(
            {"client_id": reg["client_id"], "request_uri": response.json()["request_uri"]}
        )
        return assert_iss(browser.authorize(url, person), metadata)["code"], verifier

    def redeem(code: str, verifier: str, dpop_key) -> dict:
        session = code_flow_session(metadata, reg, dpop_key)
        response = session.post(
            metadata["token_endpoint"],
            data={
                "grant_type": AC,
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": LOOPBACK_AT_PORT,
                "client_id": reg["client_id"],
            },
            withhold_token=True,
        )
        return {"status": response.status_code, **response.json()}

    for stranger in (None, DpopKey()):
        code, verifier = pushed_code(DPoP=key.proof("POST", endpoint))
        answer = redeem(code, verifier, stranger)
        assert (answer["status"], answer.get("error")) == (400, "invalid_grant"), answer
    code, verifier = pushed_code(DPoP=key.proof("POST", endpoint))
    answer = redeem(code, verifier, key)
    assert answer["status"] == 200 and answer["token_type"] == "DPoP", answer
    assert claims_of(answer["access_token"])["cnf"] == {"jkt": key.jkt}

    # §4.3 applies at /par too, and dpop_jkt must name the proof's key.
    form = {"response_type": "code", "client_id": reg["client_id"], "redirect_uri": LOOPBACK_AT_PORT,
            "scope": "read", "code_challenge": create_s256_code_challenge("v" * 43),
            "code_challenge_method": "S256"}
    assert_error(push(http, metadata, form, DPoP="not-a-proof"), 400, "invalid_dpop_proof")
    response = push(http, metadata, dict(form, dpop_jkt=DpopKey().jkt), DPoP=key.proof("POST", endpoint))
    assert_error(response, 400, "invalid_request")
