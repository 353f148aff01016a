"""Token exchange (RFC 8693, docs/token-exchange.md) driven by authlib.

Every exchange is sent by authlib's OAuth2Session (requests client):
`fetch_token(grant_type=<token-exchange URN>, subject_token=..., ...)`,
with authlib's own client authentication — `client_secret_basic`, and
`private_key_jwt` through authlib.oauth2.rfc7523.PrivateKeyJWT. authlib
also performs the introspection (RFC 7662) and revocation (RFC 7009)
requests. The issued access tokens are verified with joserfc against the
JWKS found through discovery (`jwks_uri`), claims included (iss, aud, exp
with joserfc's JWTClaimsRegistry).

The one request authlib cannot make is a token request naming two
resources (it folds the form into a dict, so a repeated `resource` keeps
only one value); that single client-credentials request goes over httpx,
as in test_authlib.test_rfc8707_two_resources.

Test names carry the RFC clause they check.
"""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

import pytest
from authlib.integrations.base_client import OAuthError
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import ECKey, KeySet
from joserfc.jwt import JWTClaimsRegistry

from conftest import EcKeyPair, authlib_session
from test_authlib import basic, server_jwks, wait_for_events
from test_dpop import DpopKey, dpop_session

CC = "client_credentials"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# ---------------------------------------------------------------- helpers


@dataclass
class Party:
    """A registered client and the authlib session it speaks through; `seen`
    holds the token endpoint responses as authlib received them."""

    reg: dict
    session: object
    seen: list = field(default_factory=list)
    key: EcKeyPair | None = None  # the private_key_jwt signing key

    @property
    def id(self) -> str:
        return self.reg["client_id"]

    def own_token(self, **params) -> dict:
        """A client-credentials token of its own."""
        return self.session.fetch_token(grant_type=CC, **params)

    def exchange(self, subject_token: str, subject_token_type: str = AT, **params) -> dict:
        """An RFC 8693 §2.1 token exchange request, built and sent by authlib."""
        return self.session.fetch_token(
            grant_type=EXCHANGE,
            subject_token=subject_token,
            subject_token_type=subject_token_type,
            **params,
        )

    def refused(self, **params) -> tuple[str, dict]:
        """A token request (all parameters given) that must fail: authlib
        raises OAuthError; the response on the wire must be an RFC 6749
        §5.2 error (400, JSON, no-store). Returns (error, body)."""
        before = len(self.seen)
        with pytest.raises(OAuthError) as excinfo:
            self.session.fetch_token(**params)
        assert len(self.seen) == before + 1
        response = self.seen[-1]
        assert response.status_code == 400, (response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json"), response.headers
        assert response.headers.get("cache-control") == "no-store", response.headers
        body = response.json()
        assert body["error"] == excinfo.value.error, (body, excinfo.value.error)
        # Never the tokens themselves in the description (docs/token-exchange.md).
        description = body.get("error_description", "")
        for name in ("subject_token", "actor_token"):
            if params.get(name):
                assert params[name] not in description, description
        return excinfo.value.error, body


def party(metadata, register, method: str = "client_secret_basic", scope: str = "read write",
          grant_types=(CC, EXCHANGE), **client_metadata) -> Party:
    """Registers a client (RFC 7591) for `grant_types` (by default client
    credentials and token exchange), authenticating with `method`, and wraps
    it in an authlib session set up from discovery."""
    if method == "private_key_jwt":
        key = EcKeyPair()
        reg = register(
            grant_types=list(grant_types),
            token_endpoint_auth_method=method,
            scope=scope,
            jwks={"keys": [key.public_jwk]},
            **client_metadata,
        )
        session = authlib_session(metadata, reg["client_id"], key.joserfc_key(), method, kid=key.kid)
    else:
        key = None
        reg = register(
            grant_types=list(grant_types), token_endpoint_auth_method=method, scope=scope,
            **client_metadata,
        )
        session = authlib_session(metadata, reg["client_id"], reg.get("client_secret"), method)
    found = Party(reg, session, key=key)

    def hook(response):
        found.seen.append(response)
        return response

    session.register_compliance_hook("access_token_response", hook)
    return found


def verify(http, metadata: dict, token: str, audience: str | None = None) -> dict:
    """Verifies an access token with joserfc against the server's JWKS
    (discovery's jwks_uri): RFC 9068 §2.1 header, signature, and the
    registered claims (iss, aud, exp, iat). Returns the claims."""
    key_set = KeySet.import_key_set(server_jwks(http, metadata))
    decoded = joserfc_jwt.decode(
        token, key_set, algorithms=metadata["access_token_signing_alg_values_supported"]
    )
    assert decoded.header["typ"] == "at+jwt", decoded.header
    JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": audience or metadata["issuer"]},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
        jti={"essential": True},
        client_id={"essential": True},
    ).validate(decoded.claims)
    return decoded.claims


def introspect(metadata, observer: Party, token: str) -> dict:
    """RFC 7662 introspection by authlib, as a resource server would."""
    response = observer.session.introspect_token(metadata["introspection_endpoint"], token=token)
    assert response.status_code == 200, response.text
    return response.json()


def revoke(metadata, owner: Party, token: str) -> None:
    """RFC 7009 revocation by authlib, by the client the token was issued to."""
    response = owner.session.revoke_token(metadata["revocation_endpoint"], token=token)
    assert response.status_code == 200, response.text


def act_chain(claims: dict) -> list[str]:
    """The actors of a nested `act` claim, newest (outermost) first."""
    chain = []
    act = claims.get("act")
    while act is not None:
        chain.append(act["sub"])
        act = act.get("act")
    return chain


def sent_form(response) -> dict:
    return dict(urllib.parse.parse_qsl(response.request.body))


# ------------------------------------------ three hops, nested act (§2.1, §4.1)


def test_rfc8693_2_1_three_hop_delegation_chain(http, metadata, register, admin):
    """A → B → C: A's client token, exchanged by agent B (authenticated with
    client_secret_basic, naming itself with its own token as actor_token),
    then by sub-agent C (private_key_jwt, no actor_token) for less scope,
    one audience and as a JWT."""
    api = admin.create_resource(["read", "write"])
    docs = admin.create_resource(["read"])
    observer = party(metadata, register, scope="read", grant_types=(CC,))
    a = party(metadata, register, grant_types=(CC,))  # lifetime: the default 300 s
    b = party(metadata, register, access_token_lifetime=3600)
    c = party(metadata, register, method="private_key_jwt", access_token_lifetime=3600)

    # The start: A's token for both resources (two `resource` parameters,
    # which authlib cannot send, so httpx).
    response = http.post(
        metadata["token_endpoint"],
        data={"grant_type": CC, "resource": [api, docs]},
        headers={"Authorization": basic(a.id, a.reg["client_secret"])},
    )
    assert response.status_code == 200, response.text
    t0 = response.json()["access_token"]
    c0 = verify(http, metadata, t0, audience=api)
    assert sorted(c0["aud"]) == sorted([api, docs])
    assert set(c0["scope"].split()) == {"read", "write"}
    assert c0["sub"] == c0["client_id"] == a.id
    assert "act" not in c0

    # Hop 1: B, with its own token as the actor token, narrows to the API.
    b_own = b.own_token()["access_token"]
    assert verify(http, metadata, b_own)["sub"] == b.id
    r1 = b.exchange(t0, actor_token=b_own, actor_token_type=AT, resource=api)
    form = sent_form(b.seen[-1])
    assert b.seen[-1].request.headers["Authorization"].startswith("Basic ")
    assert form["grant_type"] == EXCHANGE and form["subject_token"] == t0
    assert form["actor_token"] == b_own and form["actor_token_type"] == AT
    # RFC 8693 §2.2.1
    assert r1["issued_token_type"] == AT, r1
    assert r1["token_type"] == "Bearer", r1
    assert "refresh_token" not in r1
    assert b.seen[-1].headers["cache-control"] == "no-store"
    c1 = verify(http, metadata, r1["access_token"], audience=api)
    assert c1["sub"] == a.id, "sub stays the subject"
    assert c1["client_id"] == b.id
    assert c1["act"] == {"sub": b.id, "client_id": b.id}, c1
    assert c1["aud"] == api, "narrowed to the one resource asked for"
    assert set(c1["scope"].split()) == {"read", "write"}
    assert c1["exp"] <= c0["exp"], "no longer than the subject token (B may have 3600 s)"
    assert c1["ancestry"] == [c0["jti"]]

    # Hop 2: C, authenticating with private_key_jwt (authlib signs), read
    # only, audience (not resource) the API, as a JWT.
    r2 = c.exchange(
        r1["access_token"], scope="read", audience=api, requested_token_type=JWT
    )
    form = sent_form(c.seen[-1])
    assert "Authorization" not in c.seen[-1].request.headers
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assertion = joserfc_jwt.decode(
        form["client_assertion"], c.key.joserfc_key(), algorithms=["ES256"]
    )
    assert assertion.claims["iss"] == assertion.claims["sub"] == c.id
    assert assertion.claims["aud"] == metadata["token_endpoint"]
    assert r2["issued_token_type"] == JWT, r2
    assert r2["token_type"] == "Bearer", r2
    assert "refresh_token" not in r2
    c2 = verify(http, metadata, r2["access_token"], audience=api)
    assert c2["sub"] == a.id
    assert c2["client_id"] == c.id
    # RFC 8693 §4.1: the current actor outermost, the earlier ones nested.
    assert c2["act"] == {
        "sub": c.id,
        "client_id": c.id,
        "act": {"sub": b.id, "client_id": b.id},
    }, c2
    assert act_chain(c2) == [c.id, b.id]
    assert c2["scope"] == "read"
    assert set(c2["scope"].split()) <= set(c1["scope"].split()) <= set(c0["scope"].split())
    assert c2["aud"] == api
    assert c2["exp"] <= c1["exp"] <= c0["exp"]
    assert c2["exp"] - c2["iat"] < 3600, "C's registered lifetime did not win over A's"
    assert abs(r2["expires_in"] - (c2["exp"] - c2["iat"])) <= 2, (r2, c2)
    assert c2["ancestry"] == [c1["jti"], c0["jti"]]

    # A resource server sees the same through introspection (RFC 7662).
    info = introspect(metadata, observer, r2["access_token"])
    assert info["active"] is True, info
    assert info["act"] == c2["act"]
    assert info["sub"] == a.id
    assert info["client_id"] == c.id
    assert info["scope"] == "read"
    assert info["exp"] == c2["exp"]
    # Exchanging consumes nothing: the earlier tokens stay active.
    for token in (t0, r1["access_token"]):
        assert introspect(metadata, observer, token)["active"] is True


# ------------------------------------------------------- errors (§2.2.2)


@pytest.fixture
def scene(metadata, register, admin):
    """A resource API (read, write) and another one, DOCS (read); A's token
    for the API, read only; agent B allowed `read write`."""
    api = admin.create_resource(["read", "write"])
    docs = admin.create_resource(["read"])
    a = party(metadata, register, grant_types=(CC,))
    subject = a.own_token(scope="read", resource=api)["access_token"]
    b = party(metadata, register)
    return {"api": api, "docs": docs, "a": a, "b": b, "subject": subject}


def test_rfc8693_2_2_2_wider_scope_is_invalid_scope(http, metadata, scene):
    b, subject = scene["b"], scene["subject"]
    base = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": AT}
    # RFC 6749 §5.2: more than the subject token has (B is registered for write).
    error, body = b.refused(**base, scope="read write")
    assert error == "invalid_scope", body
    error, body = b.refused(**base, scope="write")
    assert error == "invalid_scope", body
    # Within it, it works; and the default is no more than the subject's.
    assert b.exchange(subject, scope="read")["scope"] == "read"
    granted = b.exchange(subject)
    assert granted["scope"] == "read"
    assert verify(http, metadata, granted["access_token"], audience=scene["api"])["scope"] == "read"


@pytest.mark.parametrize(
    "name, target",
    [
        ("resource", "unregistered"),
        ("audience", "unregistered"),
        ("resource", "docs"),  # registered, but not among the subject token's audiences
        ("audience", "docs"),
    ],
)
def test_rfc8693_2_2_2_unknown_or_wider_target_is_invalid_target(metadata, scene, name, target):
    b, subject = scene["b"], scene["subject"]
    uri = (
        f"https://unregistered-{uuid.uuid4().hex[:8]}.interop.example/"
        if target == "unregistered"
        else scene["docs"]
    )
    error, body = b.refused(
        grant_type=EXCHANGE, subject_token=subject, subject_token_type=AT, **{name: uri}
    )
    assert error == "invalid_target", body
    # The subject token's own audience is fine under either name.
    assert b.exchange(subject, **{name: scene["api"]})["issued_token_type"] == AT


@pytest.mark.parametrize(
    "why, params, names",
    [
        ("no subject_token_type", {"subject_token": "SUBJECT"}, "subject_token_type"),
        ("no subject_token", {"subject_token_type": AT}, "subject_token"),
        (
            "an unsupported subject_token_type",
            {"subject_token": "SUBJECT", "subject_token_type": "urn:ietf:params:oauth:token-type:saml2"},
            "subject_token_type",
        ),
        (
            "an unsupported requested_token_type",
            {
                "subject_token": "SUBJECT",
                "subject_token_type": AT,
                "requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token",
            },
            "requested_token_type",
        ),
        (
            "actor_token without actor_token_type",
            {"subject_token": "SUBJECT", "subject_token_type": AT, "actor_token": "SUBJECT"},
            "actor_token_type",
        ),
        (
            "actor_token_type without actor_token",
            {"subject_token": "SUBJECT", "subject_token_type": AT, "actor_token_type": AT},
            "actor_token",
        ),
        (
            "a subject token that is no token",
            {"subject_token": "not-a-token-at-all", "subject_token_type": AT},
            "subject_token",
        ),
    ],
)
def test_rfc8693_2_2_2_malformed_requests_are_invalid_request(metadata, scene, why, params, names):
    params = {k: scene["subject"] if v == "SUBJECT" else v for k, v in params.items()}
    error, body = scene["b"].refused(grant_type=EXCHANGE, **params)
    assert error == "invalid_request", (why, body)
    assert names in body.get("error_description", ""), (why, body)


def test_rfc8693_2_1_actor_token_must_be_the_clients_own(http, metadata, register, scene):
    b, subject = scene["b"], scene["subject"]
    someone = party(metadata, register)
    theirs = someone.own_token()["access_token"]
    error, body = b.refused(
        grant_type=EXCHANGE, subject_token=subject, subject_token_type=AT,
        actor_token=theirs, actor_token_type=AT,
    )
    assert error == "invalid_request", body
    assert "actor_token" in body["error_description"], body
    # An actor token that itself carries `act` is refused too.
    delegated = b.exchange(someone.own_token()["access_token"])["access_token"]
    assert verify(http, metadata, delegated)["act"]["sub"] == b.id
    error, body = b.refused(
        grant_type=EXCHANGE, subject_token=subject, subject_token_type=AT,
        actor_token=delegated, actor_token_type=AT,
    )
    assert error == "invalid_request", body
    assert "actor_token" in body["error_description"], body


def test_rfc8693_2_2_2_client_not_registered_for_the_grant(metadata, register, scene):
    plain = party(metadata, register, grant_types=(CC,))
    error, body = plain.refused(
        grant_type=EXCHANGE, subject_token=scene["subject"], subject_token_type=AT
    )
    assert error == "unauthorized_client", body


def test_rfc8693_2_1_public_client_cannot_exchange(metadata, register, scene):
    """The client is the actor, so it must authenticate (RFC 8693 §2.1,
    docs/token-exchange.md): a public client registered for the grant is
    refused. authlib sends client_id in the body (auth method "none")."""
    public = party(metadata, register, method="none", scope="read", grant_types=(EXCHANGE,))
    assert "client_secret" not in public.reg
    error, body = public.refused(
        grant_type=EXCHANGE, subject_token=scene["subject"], subject_token_type=AT
    )
    assert sent_form(public.seen[-1])["client_id"] == public.id
    assert error == "unauthorized_client", body


# --------------------------------------------- issued_token_type (§2.2.1)


@pytest.mark.parametrize(
    "requested, issued", [(None, AT), (AT, AT), (JWT, JWT)]
)
def test_rfc8693_2_2_1_issued_token_type_follows_requested_token_type(
    http, metadata, register, requested, issued
):
    a = party(metadata, register, grant_types=(CC,))
    b = party(metadata, register, method="private_key_jwt")
    subject = a.own_token()["access_token"]
    extra = {"requested_token_type": requested} if requested else {}
    response = b.exchange(subject, **extra)
    if requested:
        assert sent_form(b.seen[-1])["requested_token_type"] == requested
    assert response["issued_token_type"] == issued, response
    # RFC 8693 §2.2.1: token_type and access_token are required; either
    # way the token is an RFC 9068 access token usable as a Bearer token.
    assert response["token_type"] == "Bearer"
    assert isinstance(response["expires_in"], int) and 0 < response["expires_in"] <= 300
    assert "refresh_token" not in response
    claims = verify(http, metadata, response["access_token"])
    assert claims["sub"] == a.id and claims["client_id"] == b.id
    assert claims["act"] == {"sub": b.id, "client_id": b.id}


# ------------------------------------------- per-task tokens (extension)


def test_rfc8693_2_1_per_task_token_with_task_id_and_expires_in(http, metadata, register, admin):
    """custos' `task_id` and `expires_in` request parameters (RFC 6749 §8.2
    extension parameters): an agent narrows its own token for one task."""
    api = admin.create_resource(["read", "write"])
    agent = party(metadata, register, method="private_key_jwt", access_token_lifetime=600)
    observer = party(metadata, register, scope="read", grant_types=(CC,))
    since = int(time.time()) - 5
    own = agent.own_token()
    own_claims = verify(http, metadata, own["access_token"])
    assert own_claims["exp"] - own_claims["iat"] == 600

    task = agent.exchange(
        own["access_token"], resource=api, scope="read",
        task_id="ticket-4711:step-2", expires_in="60",
    )
    form = sent_form(agent.seen[-1])
    assert form["task_id"] == "ticket-4711:step-2" and form["expires_in"] == "60"
    assert task["expires_in"] == 60, task
    assert task["issued_token_type"] == AT
    assert task["token_type"] == "Bearer"
    claims = verify(http, metadata, task["access_token"], audience=api)
    assert claims["task_id"] == "ticket-4711:step-2"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["exp"] < own_claims["exp"]
    assert claims["aud"] == api
    assert claims["scope"] == "read"
    assert claims["sub"] == claims["client_id"] == agent.id
    assert "act" not in claims, "its own token: no hop"
    assert claims["ancestry"] == [own_claims["jti"]]

    # A resource server (another confidential client) sees it active.
    info = introspect(metadata, observer, task["access_token"])
    assert info["active"] is True, info
    assert info["exp"] == claims["exp"]
    assert info["scope"] == "read"
    assert info["client_id"] == agent.id
    assert info["aud"] == api
    if "task_id" in info:
        assert info["task_id"] == "ticket-4711:step-2"

    # The audit trail names the task.
    events = wait_for_events(admin, client_id=agent.id, type="token.issued", since=since)
    assert any(
        e.get("task_id") == "ticket-4711:step-2" and e.get("grant_type") == EXCHANGE
        for e in events
    ), events

    # expires_in only ever shortens; task_id is 1-128 of [A-Za-z0-9._:-].
    base = {"grant_type": EXCHANGE, "subject_token": own["access_token"], "subject_token_type": AT}
    for why, params in [
        ("expires_in beyond the client's lifetime", {"expires_in": "601"}),
        ("a zero expires_in", {"expires_in": "0"}),
        ("a negative expires_in", {"expires_in": "-5"}),
        ("a non-numeric expires_in", {"expires_in": "soon"}),
        ("a task_id with a space", {"task_id": "has space"}),
        ("a task_id too long", {"task_id": "t" * 129}),
    ]:
        error, body = agent.refused(**base, **params)
        assert error == "invalid_request", (why, body)
    # The longest task_id allowed still works.
    longest = agent.exchange(own["access_token"], task_id="T" * 128)
    assert verify(http, metadata, longest["access_token"])["task_id"] == "T" * 128

    # A one-second task token really lapses: inactive, and no longer exchangeable.
    brief = agent.exchange(own["access_token"], task_id="blink", expires_in="1")
    assert brief["expires_in"] == 1
    time.sleep(2.2)
    assert introspect(metadata, observer, brief["access_token"]) == {"active": False}
    error, body = agent.refused(
        grant_type=EXCHANGE, subject_token=brief["access_token"], subject_token_type=AT
    )
    assert error == "invalid_request", body
    assert body["error_description"].startswith("subject_token"), body


# --------------------------------------- revocation follows the exchange


def test_rfc8693_revoking_the_subject_token_revokes_what_was_exchanged(
    http, metadata, register
):
    """RFC 7009 revocation (by authlib's revoke_token) of a token reaches
    every token exchanged from it (custos' `ancestry`), and not upwards."""
    a = party(metadata, register, method="private_key_jwt", scope="read", grant_types=(CC,))
    b = party(metadata, register, scope="read")
    c = party(metadata, register, scope="read")
    observer = party(metadata, register, scope="read", grant_types=(CC,))
    x = a.own_token()["access_token"]
    y = b.exchange(x)["access_token"]
    z = c.exchange(y)["access_token"]
    y2 = b.exchange(x)["access_token"]
    z2 = c.exchange(y2)["access_token"]
    assert verify(http, metadata, z)["ancestry"] == [
        verify(http, metadata, y)["jti"], verify(http, metadata, x)["jti"]
    ]
    for token in (x, y, z, y2, z2):
        assert introspect(metadata, observer, token)["active"] is True

    # Revoking a middle token reaches down, not up or sideways.
    revoke(metadata, b, y2)
    assert introspect(metadata, observer, y2) == {"active": False}
    assert introspect(metadata, observer, z2) == {"active": False}
    for token in (x, y, z):
        assert introspect(metadata, observer, token)["active"] is True

    # A revokes its original token (authlib signs a private_key_jwt assertion
    # for the revocation endpoint): everything exchanged from it goes.
    revoke(metadata, a, x)
    for token in (x, y, z):
        assert introspect(metadata, observer, token) == {"active": False}
    # And what was exchanged from it can no longer be exchanged.
    error, body = c.refused(grant_type=EXCHANGE, subject_token=y, subject_token_type=AT)
    assert error == "invalid_request", body
    assert "no longer active" in body["error_description"], body


def test_rfc8693_deleting_the_subject_client_deactivates_exchanged_tokens(
    metadata, register, admin
):
    """Nothing exchanged may do more than the token it came from
    (docs/token-exchange.md): once A's client is deleted, A's token is
    inactive, so what B got by exchanging it must be too."""
    a = party(metadata, register, scope="read", grant_types=(CC,))
    b = party(metadata, register, scope="read")
    c = party(metadata, register, scope="read")
    observer = party(metadata, register, scope="read", grant_types=(CC,))
    x = a.own_token()["access_token"]
    y = b.exchange(x)["access_token"]
    assert introspect(metadata, observer, y)["active"] is True
    response = admin.delete(f"/clients/{a.id}")
    assert response.status_code == 204, response.text
    assert introspect(metadata, observer, x) == {"active": False}
    assert introspect(metadata, observer, y) == {"active": False}
    error, body = c.refused(grant_type=EXCHANGE, subject_token=y, subject_token_type=AT)
    assert error == "invalid_request", body


# -------------------------------------------------- act levels (§4.1)


def test_rfc8693_4_1_no_new_act_level_for_self_or_the_same_actor(http, metadata, register):
    """An agent exchanging its own token (even naming itself as actor) adds
    no `act`; an actor narrowing again what was delegated to it adds no
    second level of itself. A custos access token is also accepted with
    subject_token_type ...:jwt (it is one)."""
    a = party(metadata, register, grant_types=(CC,))
    b = party(metadata, register)
    own = b.own_token()["access_token"]
    mine = b.exchange(own, actor_token=own, actor_token_type=AT, scope="read")
    claims = verify(http, metadata, mine["access_token"])
    assert claims["sub"] == b.id and "act" not in claims, claims
    assert claims["scope"] == "read"

    x = a.own_token()["access_token"]
    t1 = b.exchange(x, subject_token_type=JWT)["access_token"]
    c1 = verify(http, metadata, t1)
    assert c1["act"] == {"sub": b.id, "client_id": b.id}
    t2 = b.exchange(t1, scope="read")["access_token"]
    c2 = verify(http, metadata, t2)
    assert c2["act"] == {"sub": b.id, "client_id": b.id}, "no second level for the same actor"
    assert c2["scope"] == "read"
    assert c2["ancestry"] == [c1["jti"], verify(http, metadata, x)["jti"]]


def test_rfc8693_4_1_prior_act_chain_keeps_identity_claims_only(http, metadata, register, idp):
    """A trusted issuer's subject token that already carries `act`: the new
    actor goes outermost, and of the prior chain only sub, iss and
    client_id are kept."""
    b = party(metadata, register)
    prior = {
        "sub": "upstream-agent",
        "iss": "https://upstream.interop.example",
        "client_id": "upstream-client",
        "note": "dropped",
        "act": {"sub": "first-agent", "x": 1},
    }
    subject = idp(sub="alice@idp.example", scope="read", act=prior)
    response = b.exchange(subject, subject_token_type=JWT)
    claims = verify(http, metadata, response["access_token"])
    assert claims["sub"] == "alice@idp.example"
    assert claims["act"] == {
        "sub": b.id,
        "client_id": b.id,
        "act": {
            "sub": "upstream-agent",
            "iss": "https://upstream.interop.example",
            "client_id": "upstream-client",
            "act": {"sub": "first-agent"},
        },
    }, claims


# ------------------------------------------------- delegation depth (§4.1)


def test_rfc8693_4_1_delegation_chain_depth_is_limited(http, metadata, register):
    """Each agent exchanges the previous agent's token until the server
    refuses: then the chain in `act` is exactly as deep as the limit the
    error names, newest actor outermost."""
    start = party(metadata, register, scope="read", grant_types=(CC,))
    token = start.own_token()["access_token"]
    actors: list[Party] = []
    refusal = None
    for _ in range(10):
        agent = party(metadata, register, scope="read")
        try:
            token_next = agent.exchange(token)["access_token"]
        except OAuthError:
            response = agent.seen[-1]
            assert response.status_code == 400, response.text
            refusal = response.json()
            break
        actors.append(agent)
        token = token_next
    assert refusal is not None, "no depth limit within 10 hops"
    assert refusal["error"] == "invalid_request", refusal
    match = re.match(r"delegation chain deeper than (\d+)", refusal["error_description"])
    assert match, refusal
    limit = int(match.group(1))
    assert len(actors) == limit
    claims = verify(http, metadata, token)
    assert act_chain(claims) == [p.id for p in reversed(actors)]
    assert claims["sub"] == start.id


# ------------------------------------------------------------ may_act (§4.4)


@pytest.fixture
def idp(admin, issuer):
    """An OIDC issuer custos trusts (inline JWKS), whose tokens the test signs."""
    key = ECKey.generate_key("P-256", {"use": "sig", "alg": "ES256"})
    key.ensure_kid()
    name = f"https://idp-{uuid.uuid4().hex[:12]}.interop.example"
    response = admin.post(
        "/trusted-issuers",
        json={"kind": "oidc", "issuer": name, "jwks": {"keys": [key.as_dict(private=False)]}},
    )
    assert response.status_code == 201, response.text
    trusted = response.json()

    def sign(**claims) -> str:
        now = int(time.time())
        body = {"iss": name, "aud": issuer, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}
        body.update(claims)
        return joserfc_jwt.encode(
            {"alg": "ES256", "kid": key.kid, "typ": "JWT"}, body, key, algorithms=["ES256"]
        )

    yield sign
    response = admin.delete(f"/trusted-issuers/{trusted['id']}")
    assert response.status_code == 204, response.text


def test_rfc8693_4_4_may_act_names_who_may_act(http, metadata, register, idp):
    named = party(metadata, register)
    other = party(metadata, register)
    subject = idp(sub="alice@idp.example", scope="read", may_act={"sub": named.id})

    error, body = other.refused(
        grant_type=EXCHANGE, subject_token=subject, subject_token_type=JWT
    )
    assert error == "invalid_request", body
    assert "may_act" in body["error_description"], body

    response = named.exchange(subject, subject_token_type=JWT)
    claims = verify(http, metadata, response["access_token"])
    assert claims["sub"] == "alice@idp.example"
    assert claims["client_id"] == named.id
    assert claims["act"] == {"sub": named.id, "client_id": named.id}, claims
    assert claims["scope"] == "read", "limited by the subject token's scope claim"
    assert "ancestry" not in claims, "no custos token before it"

    # When may_act also names iss or client_id, those must match too (the
    # actor here is the client itself, so its iss is custos').
    for may_act, allowed in [
        ({"sub": named.id, "iss": metadata["issuer"]}, True),
        ({"sub": named.id, "client_id": named.id}, True),
        ({"sub": named.id, "iss": "https://elsewhere.interop.example"}, False),
        ({"sub": named.id, "client_id": other.id}, False),
        ({"client_id": named.id}, False),  # no sub: names nobody
    ]:
        token = idp(sub="alice@idp.example", scope="read", may_act=may_act)
        if allowed:
            got = named.exchange(token, subject_token_type=JWT)
            assert verify(http, metadata, got["access_token"])["act"]["sub"] == named.id
        else:
            error, body = named.refused(
                grant_type=EXCHANGE, subject_token=token, subject_token_type=JWT
            )
            assert error == "invalid_request", (may_act, body)
            assert "may_act" in body["error_description"], (may_act, body)


# ------------------------------------------------ DPoP-bound subject tokens


def test_rfc8693_dpop_bound_subject_token_stays_bound(http, metadata, register, admin):
    """A subject token bound to a DPoP key (RFC 9449 cnf.jkt) is exchanged
    only with a proof of that key, and the result is bound to it too. The
    proofs are made by test_dpop's DpopSession (an authlib OAuth2Session)."""
    api = admin.create_resource(["read", "write"])
    holder = party(metadata, register)
    other = party(metadata, register)
    key = DpopKey()
    bound_session = dpop_session(metadata, holder.reg, key)
    own = bound_session.fetch_token(grant_type=CC)
    assert own["token_type"] == "DPoP"
    assert verify(http, metadata, own["access_token"])["cnf"] == {"jkt": key.jkt}
    base = {"grant_type": EXCHANGE, "subject_token": own["access_token"], "subject_token_type": AT}

    # No proof (the holder's plain authlib session): refused.
    error, body = holder.refused(**base)
    assert error == "invalid_request", body
    assert "cnf.jkt" in body["error_description"], body
    # A proof with another key: refused.
    with pytest.raises(OAuthError) as excinfo:
        dpop_session(metadata, holder.reg, DpopKey()).fetch_token(**base)
    assert excinfo.value.error == "invalid_request"
    # Another client, with a key of its own: refused.
    with pytest.raises(OAuthError) as excinfo:
        dpop_session(metadata, other.reg, DpopKey()).fetch_token(**base)
    assert excinfo.value.error == "invalid_request"

    # The same key: bound to it again.
    issued = bound_session.fetch_token(**base, resource=api, scope="read")
    assert issued["token_type"] == "DPoP", issued
    assert issued["issued_token_type"] == AT
    claims = verify(http, metadata, issued["access_token"], audience=api)
    assert claims["cnf"] == {"jkt": key.jkt}, claims
    assert "act" not in claims, "its own token: no hop"
    info = introspect(metadata, other, issued["access_token"])
    assert info["active"] is True and info["token_type"] == "DPoP", info
    assert info["cnf"] == {"jkt": key.jkt}
