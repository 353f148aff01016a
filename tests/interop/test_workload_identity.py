"""Workload identity (docs/workload-identity.md) driven by libraries nobody
on the project wrote, over plain HTTP (the interop server has no TLS, so
spiffe_x509, tls_client_auth and certificate-bound tokens are out of scope).

The platforms are played by the test: a Kubernetes cluster whose
service-account issuer signs projected tokens (RS256, a key made with
`cryptography` and signed with joserfc, header and claims shaped exactly as
the API server makes them) and a SPIRE server whose JWT-SVIDs are signed
with PyJWT (ES256, kid, typ JWT; aud, exp, iat, sub, no iss, no jti). The
workload side is authlib:

- `federated_jwt` and `spiffe_jwt` client authentication: authlib's
  OAuth2Session with a client authentication method registered through
  `register_client_auth_method` (`WorkloadAssertion` below). authlib's own
  PrivateKeyJWT signs an assertion with a key the client holds; a workload
  holds no key, it sends the token its platform mounted, so the method reads
  that token from its file on every request and adds it as
  `client_assertion` with its `client_assertion_type` and `client_id`.
- the JWT bearer grant without client authentication (RFC 7523 §2.1):
  authlib's AssertionSession (authlib.integrations.requests_client, the
  RFC 7521/7523 assertion-grant client), whose assertion method is the
  projected token file instead of a signature of its own.

Access tokens are verified with PyJWT against the published JWKS
(`verify_access_token`).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
import pytest
from authlib.common.errors import AuthlibBaseError
from authlib.common.urls import add_params_to_qs
from authlib.integrations.requests_client import AssertionSession, OAuth2Session
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import RSAKey

from conftest import _b64url, _note_requests
from test_authlib import assert_error, joserfc_verify, pem, verify_access_token, wait_for_events

CC = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_SPIFFE_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"
SERVICE_ACCOUNT = "system:serviceaccount:prod:api"


# ------------------------------------------------------------- platforms


class KubernetesCluster:
    """A cluster's service-account token issuer. Its key is RSA 2048 (the
    API server signs RS256), made with `cryptography` and imported into
    joserfc; the public JWKS is what `kubectl get --raw /openid/v1/jwks`
    prints."""

    def __init__(self, audience: str):
        self.issuer = f"https://k8s-{uuid.uuid4().hex[:12]}.example"
        self.audience = audience
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key = RSAKey.import_key(pem(private_key), {"use": "sig", "alg": "RS256"})
        self.key.ensure_kid()

    @property
    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    def projected_token(
        self,
        namespace: str = "prod",
        serviceaccount: str = "api",
        *,
        lifetime: int = 3600,
        key: RSAKey | None = None,
        **overrides,
    ) -> str:
        """A projected service-account token as the kubelet mounts it:
        header {alg, kid} (no typ), claims aud [audience], exp, iat, iss,
        jti, kubernetes.io {namespace, node, pod, serviceaccount,
        warnafter}, nbf, sub. `overrides` replace top-level claims (None
        removes one)."""
        now = int(time.time())
        pod = f"{serviceaccount}-{uuid.uuid4().hex[:10]}-{uuid.uuid4().hex[:5]}"
        claims = {
            "aud": [self.audience],
            "exp": now + lifetime,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "ip-10-0-1-17.ec2.internal", "uid": str(uuid.uuid4())},
                "pod": {"name": pod, "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": serviceaccount, "uid": str(uuid.uuid4())},
                "warnafter": now + int(lifetime * 0.8),
            },
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{serviceaccount}",
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = key or self.key
        return joserfc_jwt.encode(
            {"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"], default_type=None
        )


class SpireServer:
    """A SPIRE server for one trust domain: an EC P-256 JWT-SVID authority
    made with `cryptography`, its bundle as `spire-server bundle show
    -format spiffe` prints it, and JWT-SVIDs signed with PyJWT."""

    def __init__(self, audience: str):
        self.trust_domain = f"example-{uuid.uuid4().hex[:12]}.org"
        self.audience = audience
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = uuid.uuid4().hex  # SPIRE's kids are random, 32 characters

    def spiffe_id(self, path: str) -> str:
        return f"spiffe://{self.trust_domain}{path}"

    @property
    def bundle(self) -> dict:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "use": "jwt-svid",
                    "kty": "EC",
                    "kid": self.kid,
                    "crv": "P-256",
                    "x": _b64url(numbers.x.to_bytes(32, "big")),
                    "y": _b64url(numbers.y.to_bytes(32, "big")),
                }
            ],
            "spiffe_sequence": 1,
            "spiffe_refresh_hint": 300,
        }

    def jwt_svid(
        self, path: str = "/ns/prod/sa/api", *, audience=None, lifetime: int = 300, age: int = 0
    ) -> str:
        """A JWT-SVID as `spire-agent api fetch jwt -audience <issuer>` gives
        it: header alg ES256, kid, typ JWT; claims aud, exp, iat, sub. `age`:
        seconds since SPIRE issued it."""
        issued_at = int(time.time()) - age
        claims = {
            "aud": audience if audience is not None else [self.audience],
            "exp": issued_at + lifetime,
            "iat": issued_at,
            "sub": self.spiffe_id(path),
        }
        return jwt.encode(
            claims, self.private_key, algorithm="ES256", headers={"kid": self.kid, "typ": "JWT"}
        )


# ------------------------------------------------- the workload (authlib)


class TokenFile:
    """The token the platform mounts into the workload (a projected volume,
    the SPIRE agent's helper); the platform rewrites it, the workload reads
    it on every request."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, token: str) -> str:
        self.path.write_text(token + "\n")
        return token

    def read(self) -> str:
        return self.path.read_text().strip()


class WorkloadAssertion:
    """An authlib client authentication method (for
    `OAuth2Session.register_client_auth_method`) that sends the token the
    platform issued as `client_assertion`, with its type and the
    `client_id`. Same calling convention as authlib's PrivateKeyJWT."""

    def __init__(self, name: str, assertion_type: str, token_file: TokenFile):
        self.name = name
        self.assertion_type = assertion_type
        self.token_file = token_file

    def __call__(self, auth, method, uri, headers, body):
        body = add_params_to_qs(
            body or "",
            [
                ("client_id", auth.client_id),
                ("client_assertion_type", self.assertion_type),
                ("client_assertion", self.token_file.read()),
            ],
        )
        if "Content-Length" in headers:
            headers["Content-Length"] = str(len(body))
        return uri, headers, body


def workload_session(
    metadata: dict, client_id: str, method: str, token_file: TokenFile, **kwargs
) -> OAuth2Session:
    assertion_type = JWT_SPIFFE_ASSERTION if method == "spiffe_jwt" else JWT_BEARER_ASSERTION
    session = OAuth2Session(
        client_id=client_id,
        token_endpoint=metadata["token_endpoint"],
        token_endpoint_auth_method=method,
        **kwargs,
    )
    session.register_client_auth_method(WorkloadAssertion(method, assertion_type, token_file))
    session.hooks["response"].append(_note_requests)
    return session


def read_projected_token(token_file: TokenFile, **_ignored) -> str:
    """AssertionSession's assertion method: instead of signing an assertion
    (JWTBearerGrant.sign), hand over what the cluster signed."""
    return token_file.read()


class ProjectedTokenSession(AssertionSession):
    """authlib's RFC 7523 §2.1 client, its assertion the projected token."""

    ASSERTION_METHODS = {JWT_BEARER: read_projected_token}


def bearer_grant_session(
    metadata: dict, cluster: KubernetesCluster, token_file: TokenFile, **kwargs
) -> ProjectedTokenSession:
    session = ProjectedTokenSession(
        token_endpoint=metadata["token_endpoint"],
        issuer=cluster.issuer,
        subject=SERVICE_ACCOUNT,
        grant_type=JWT_BEARER,
        token_file=token_file,
        **kwargs,
    )
    session.hooks["response"].append(_note_requests)
    return session


def oauth_error(excinfo) -> str:
    return excinfo.value.error


# --------------------------------------------------------------- fixtures


def trust(admin, body: dict) -> dict:
    response = admin.post("/trusted-issuers", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("ti_"), created
    assert created["kind"] == body["kind"]
    return created


def untrust(admin, trusted: dict) -> None:
    response = admin.delete(f"/trusted-issuers/{trusted['id']}")
    assert response.status_code == 204, response.text


def k8s_client(register, cluster: KubernetesCluster, scope: str = "orders.read") -> dict:
    reg = register(
        token_endpoint_auth_method="federated_jwt",
        grant_types=[CC, JWT_BEARER],
        scope=scope,
        federated_credentials=[
            {
                "issuer": cluster.issuer,
                "subject": SERVICE_ACCOUNT,
                "claims": {"/kubernetes.io/namespace": "prod"},
            }
        ],
    )
    assert reg["token_endpoint_auth_method"] == "federated_jwt"
    assert "client_secret" not in reg
    return reg


@pytest.fixture
def cluster(admin, issuer):
    cluster = KubernetesCluster(audience=issuer)
    trusted = trust(admin, {"kind": "oidc", "issuer": cluster.issuer, "jwks": cluster.jwks})
    assert trusted["issuer"] == cluster.issuer
    assert trusted["single_use"] is False
    yield cluster
    untrust(admin, trusted)


@pytest.fixture
def single_use_cluster(admin, issuer):
    cluster = KubernetesCluster(audience=issuer)
    trusted = trust(
        admin,
        {"kind": "oidc", "issuer": cluster.issuer, "jwks": cluster.jwks, "single_use": True},
    )
    assert trusted["single_use"] is True
    yield cluster
    untrust(admin, trusted)


@pytest.fixture
def spire(admin, issuer):
    spire = SpireServer(audience=issuer)
    trusted = trust(
        admin, {"kind": "spiffe", "trust_domain": spire.trust_domain, "bundle": spire.bundle}
    )
    assert trusted["trust_domain"] == spire.trust_domain
    yield spire
    untrust(admin, trusted)


@pytest.fixture
def token_file(tmp_path) -> TokenFile:
    return TokenFile(tmp_path / "token")


# -------------------------------------------------------------- discovery


def test_discovery_advertises_workload_identity(metadata):
    methods = metadata["token_endpoint_auth_methods_supported"]
    assert "federated_jwt" in methods and "spiffe_jwt" in methods, methods
    assert JWT_BEARER in metadata["grant_types_supported"], metadata["grant_types_supported"]


# ------------------------------------- federated_jwt: Kubernetes tokens


def test_federated_jwt_client_credentials_with_authlib(
    http, metadata, admin, register, cluster, token_file
):
    reg = k8s_client(register, cluster)
    token = token_file.write(cluster.projected_token())
    session = workload_session(metadata, reg["client_id"], "federated_jwt", token_file)

    first = session.fetch_token(grant_type=CC)
    assert first["token_type"].lower() == "bearer"
    assert first["scope"] == "orders.read"
    _, claims = verify_access_token(http, metadata, first["access_token"])
    assert claims["sub"] == claims["client_id"] == reg["client_id"]
    assert claims["scope"] == "orders.read"
    assert claims["client_auth"] == {
        "method": "federated_jwt",
        "attested_id": f"{cluster.issuer}#{SERVICE_ACCOUNT}",
    }
    # joserfc agrees.
    assert joserfc_verify(http, metadata, first["access_token"])["client_auth"] == (
        claims["client_auth"]
    )

    # Not single-use: the pod sends the same projected token until the
    # kubelet rotates it.
    assert token_file.read() == token
    second = session.fetch_token(grant_type=CC)
    _, claims2 = verify_access_token(http, metadata, second["access_token"])
    assert claims2["jti"] != claims["jti"]
    assert claims2["client_auth"] == claims["client_auth"]

    # The inventory shows the attestation.
    response = admin.get("/clients")
    assert response.status_code == 200, response.text
    entry = next(c for c in response.json() if c["client_id"] == reg["client_id"])
    assert entry["attestation"]["federated_credentials"] == [
        {"issuer": cluster.issuer, "subject": SERVICE_ACCOUNT}
    ], entry


def test_federated_jwt_refusals(http, metadata, register, cluster):
    """Each of these tokens is refused as client authentication (RFC 6749
    §5.2: invalid_client, 401)."""
    reg = k8s_client(register, cluster)
    other_key = RSAKey.import_key(
        pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        {"kid": cluster.key.kid},
    )
    now = int(time.time())
    refused = {
        "another namespace": cluster.projected_token(namespace="staging"),
        # sub as registered, but the claim condition on the namespace fails
        "namespace claim": cluster.projected_token(
            **{"kubernetes.io": {"namespace": "staging", "serviceaccount": {"name": "api"}}}
        ),
        "another service account": cluster.projected_token(serviceaccount="batch"),
        "another audience": cluster.projected_token(aud=["https://other.example"]),
        "expired": cluster.projected_token(iat=now - 4000, nbf=now - 4000, exp=now - 400),
        "not yet valid": cluster.projected_token(nbf=now + 600),
        "longer than max_token_lifetime": cluster.projected_token(lifetime=3 * 3600),
        "signed by another key": cluster.projected_token(key=other_key),
        "another issuer": cluster.projected_token(iss="https://k8s-untrusted.example"),
    }
    for why, token in refused.items():
        response = http.post(
            metadata["token_endpoint"],
            data={
                "grant_type": CC,
                "client_id": reg["client_id"],
                "client_assertion_type": JWT_BEARER_ASSERTION,
                "client_assertion": token,
            },
        )
        assert response.status_code == 401, (why, response.text)
        assert_error(response, 401, "invalid_client")
    # The good token still works (nothing above was a partial success).
    good = cluster.projected_token()
    response = http.post(
        metadata["token_endpoint"],
        data={
            "grant_type": CC,
            "client_id": reg["client_id"],
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": good,
        },
    )
    assert response.status_code == 200, response.text


def test_federated_jwt_stops_when_the_issuer_is_no_longer_trusted(
    metadata, admin, register, issuer, token_file
):
    cluster = KubernetesCluster(audience=issuer)
    trusted = trust(admin, {"kind": "oidc", "issuer": cluster.issuer, "jwks": cluster.jwks})
    reg = k8s_client(register, cluster)
    token_file.write(cluster.projected_token())
    session = workload_session(metadata, reg["client_id"], "federated_jwt", token_file)
    session.fetch_token(grant_type=CC)
    untrust(admin, trusted)
    # On this replica at once; on others within 5 s (the doc's bound).
    deadline = time.time() + 6
    while True:
        try:
            session.fetch_token(grant_type=CC)
        except AuthlibBaseError as error:
            assert error.error == "invalid_client"
            break
        assert time.time() < deadline, "tokens of a deleted trusted issuer are still accepted"
        time.sleep(0.5)


# ------------------------------ RFC 7523 §2.1: the JWT bearer grant


def test_rfc7523_2_1_jwt_bearer_grant_with_authlib_assertion_session(
    http, metadata, register, cluster, token_file
):
    reg = k8s_client(register, cluster)
    token_file.write(cluster.projected_token())
    session = bearer_grant_session(metadata, cluster, token_file, scope="orders.read")

    token = session.refresh_token()  # authlib: the assertion grant request
    assert token["scope"] == "orders.read"
    assert "refresh_token" not in token
    _, claims = verify_access_token(http, metadata, token["access_token"])
    assert claims["sub"] == claims["client_id"] == reg["client_id"]
    assert claims["client_auth"] == {
        "method": "federated_jwt",
        "attested_id": f"{cluster.issuer}#{SERVICE_ACCOUNT}",
    }
    # The same projected token again: not single-use.
    again = session.refresh_token()
    assert verify_access_token(http, metadata, again["access_token"])[1]["sub"] == reg["client_id"]

    # A token of another namespace stands for no client: invalid_grant.
    token_file.write(cluster.projected_token(namespace="staging"))
    with pytest.raises(AuthlibBaseError) as excinfo:
        session.refresh_token()
    assert oauth_error(excinfo) == "invalid_grant"
    # Right sub, but the namespace condition fails: invalid_grant too.
    token_file.write(
        cluster.projected_token(
            **{"kubernetes.io": {"namespace": "staging", "serviceaccount": {"name": "api"}}}
        )
    )
    with pytest.raises(AuthlibBaseError) as excinfo:
        session.refresh_token()
    assert oauth_error(excinfo) == "invalid_grant"
    # Raw, the refusal is RFC 6749 §5.2's 400 invalid_grant.
    response = http.post(
        metadata["token_endpoint"],
        data={"grant_type": JWT_BEARER, "assertion": cluster.projected_token(namespace="staging")},
    )
    assert_error(response, 400, "invalid_grant")
    for bad in (
        cluster.projected_token(aud=["https://other.example"]),
        cluster.projected_token(lifetime=3 * 3600),
        "not-a-jwt",
    ):
        response = http.post(
            metadata["token_endpoint"], data={"grant_type": JWT_BEARER, "assertion": bad}
        )
        assert_error(response, 400, "invalid_grant")


def test_rfc7523_2_1_client_id_chooses_among_clients(
    http, metadata, register, cluster, token_file
):
    first = k8s_client(register, cluster, scope="orders.read")
    second = k8s_client(register, cluster, scope="orders.write")
    token_file.write(cluster.projected_token())
    with pytest.raises(AuthlibBaseError) as excinfo:
        bearer_grant_session(metadata, cluster, token_file).refresh_token()
    assert oauth_error(excinfo) == "invalid_grant"
    for reg in (first, second):
        session = bearer_grant_session(metadata, cluster, token_file, client_id=reg["client_id"])
        token = session.refresh_token()
        _, claims = verify_access_token(http, metadata, token["access_token"])
        assert claims["client_id"] == reg["client_id"]
        assert claims["scope"] == reg["scope"]


def test_rfc7523_2_1_grant_rules(http, metadata, register, cluster, token_file):
    # A client not registered for the grant: unauthorized_client.
    reg = register(
        token_endpoint_auth_method="federated_jwt",
        grant_types=[CC],
        scope="orders.read",
        federated_credentials=[{"issuer": cluster.issuer, "subject": SERVICE_ACCOUNT}],
    )
    token_file.write(cluster.projected_token())
    with pytest.raises(AuthlibBaseError) as excinfo:
        bearer_grant_session(metadata, cluster, token_file).refresh_token()
    assert oauth_error(excinfo) == "unauthorized_client"
    # It still authenticates with the same token for client credentials.
    workload_session(metadata, reg["client_id"], "federated_jwt", token_file).fetch_token(
        grant_type=CC
    )


def test_rfc7523_2_1_grant_with_client_authentication(
    http, metadata, register, cluster, token_file
):
    """The grant with client authentication too (OAuth2Session.fetch_token
    with grant_type and assertion, federated_jwt as the auth method): the
    assertion must then be one of that client's credentials."""
    reg = k8s_client(register, cluster)
    token = token_file.write(cluster.projected_token())
    session = workload_session(metadata, reg["client_id"], "federated_jwt", token_file)
    result = session.fetch_token(grant_type=JWT_BEARER, assertion=token, scope="orders.read")
    _, claims = verify_access_token(http, metadata, result["access_token"])
    assert claims["client_id"] == reg["client_id"]
    assert claims["client_auth"]["method"] == "federated_jwt"
    # Scope beyond the registration: invalid_scope.
    with pytest.raises(AuthlibBaseError) as excinfo:
        session.fetch_token(grant_type=JWT_BEARER, assertion=token, scope="orders.write")
    assert oauth_error(excinfo) == "invalid_scope"
    # Another namespace's token as the grant, whoever authenticates.
    with pytest.raises(AuthlibBaseError) as excinfo:
        session.fetch_token(
            grant_type=JWT_BEARER, assertion=cluster.projected_token(namespace="staging")
        )
    assert oauth_error(excinfo) == "invalid_grant"


# ---------------------------------------------------- single-use issuer


def test_single_use_issuer(http, metadata, register, single_use_cluster, token_file):
    cluster = single_use_cluster
    reg = k8s_client(register, cluster)

    # As client authentication: once, then invalid_client.
    token_file.write(cluster.projected_token())
    session = workload_session(metadata, reg["client_id"], "federated_jwt", token_file)
    session.fetch_token(grant_type=CC)
    with pytest.raises(AuthlibBaseError) as excinfo:
        session.fetch_token(grant_type=CC)
    assert oauth_error(excinfo) == "invalid_client"
    # A new token (new jti) works.
    token_file.write(cluster.projected_token())
    session.fetch_token(grant_type=CC)

    # As the JWT bearer grant: once, then invalid_grant.
    token_file.write(cluster.projected_token())
    grant = bearer_grant_session(metadata, cluster, token_file)
    grant.refresh_token()
    with pytest.raises(AuthlibBaseError) as excinfo:
        grant.refresh_token()
    assert oauth_error(excinfo) == "invalid_grant"

    # One jti counts once across both uses.
    token_file.write(cluster.projected_token())
    session.fetch_token(grant_type=CC)
    with pytest.raises(AuthlibBaseError) as excinfo:
        grant.refresh_token()
    assert oauth_error(excinfo) == "invalid_grant"

    # A single-use issuer's token must carry a jti.
    response = http.post(
        metadata["token_endpoint"],
        data={
            "grant_type": CC,
            "client_id": reg["client_id"],
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": cluster.projected_token(jti=None),
        },
    )
    assert_error(response, 401, "invalid_client")


# -------------------------------------------------- spiffe_jwt: SPIRE


def spiffe_client(register, spire: SpireServer) -> dict:
    reg = register(
        token_endpoint_auth_method="spiffe_jwt",
        spiffe_id=spire.spiffe_id("/ns/prod/*"),
        grant_types=[CC],
        scope="orders.read",
    )
    assert reg["token_endpoint_auth_method"] == "spiffe_jwt"
    assert "client_secret" not in reg
    return reg


def test_spiffe_jwt_with_authlib(http, metadata, admin, register, spire, token_file):
    reg = spiffe_client(register, spire)
    workload = spire.spiffe_id("/ns/prod/sa/api")
    token_file.write(spire.jwt_svid())
    expected_auth = {"method": "spiffe_jwt", "attested_id": workload}

    # client_id: the registered client's id.
    session = workload_session(metadata, reg["client_id"], "spiffe_jwt", token_file)
    token = session.fetch_token(grant_type=CC)
    _, claims = verify_access_token(http, metadata, token["access_token"])
    assert claims["sub"] == claims["client_id"] == reg["client_id"]
    assert claims["scope"] == "orders.read"
    assert claims["client_auth"] == expected_auth
    # The same SVID again: not single-use.
    token = session.fetch_token(grant_type=CC)
    _, claims = verify_access_token(http, metadata, token["access_token"])
    assert claims["client_auth"] == expected_auth

    # client_id: the SPIFFE ID itself selects the client.
    session = workload_session(metadata, workload, "spiffe_jwt", token_file)
    token = session.fetch_token(grant_type=CC)
    _, claims = verify_access_token(http, metadata, token["access_token"])
    assert claims["sub"] == claims["client_id"] == reg["client_id"]
    assert claims["client_auth"] == expected_auth

    response = admin.get("/clients")
    entry = next(c for c in response.json() if c["client_id"] == reg["client_id"])
    assert entry["attestation"]["spiffe_id"] == spire.spiffe_id("/ns/prod/*"), entry


def test_spiffe_jwt_refusals(http, metadata, register, spire, token_file):
    reg = spiffe_client(register, spire)
    workload = spire.spiffe_id("/ns/prod/sa/api")

    def send(svid: str, client_id: str = reg["client_id"]):
        return http.post(
            metadata["token_endpoint"],
            data={
                "grant_type": CC,
                "client_id": client_id,
                "client_assertion_type": JWT_SPIFFE_ASSERTION,
                "client_assertion": svid,
            },
        )

    assert send(spire.jwt_svid()).status_code == 200
    # draft-ietf-oauth-spiffe-client-auth §3.1: aud is the issuer and
    # nothing else.
    extra_aud = spire.jwt_svid(audience=[spire.audience, "https://other.example"])
    assert_error(send(extra_aud), 401, "invalid_client")
    assert_error(send(extra_aud, client_id=workload), 401, "invalid_client")
    # Through authlib too.
    token_file.write(extra_aud)
    with pytest.raises(AuthlibBaseError) as excinfo:
        workload_session(metadata, reg["client_id"], "spiffe_jwt", token_file).fetch_token(
            grant_type=CC
        )
    assert oauth_error(excinfo) == "invalid_client"

    # A signer that is not among the bundle's jwt-svid authorities, under
    # its own kid and under the real authority's kid.
    rogue = SpireServer(audience=spire.audience)
    rogue.trust_domain = spire.trust_domain
    rogue_with_kid = SpireServer(audience=spire.audience)
    rogue_with_kid.trust_domain, rogue_with_kid.kid = spire.trust_domain, spire.kid
    refused = {
        "another audience only": spire.jwt_svid(audience=["https://other.example"]),
        "outside /ns/prod": spire.jwt_svid("/ns/staging/sa/api"),
        "expired": spire.jwt_svid(age=600),
        "unknown authority": rogue.jwt_svid(),
        "unknown authority, known kid": rogue_with_kid.jwt_svid(),
    }
    for why, svid in refused.items():
        response = send(svid)
        assert response.status_code == 401, (why, response.text)
        assert_error(response, 401, "invalid_client")
    # The right SVID under the wrong assertion type is not spiffe_jwt.
    response = http.post(
        metadata["token_endpoint"],
        data={
            "grant_type": CC,
            "client_id": reg["client_id"],
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": spire.jwt_svid(),
        },
    )
    assert_error(response, 401, "invalid_client")
    # client_id a SPIFFE ID under the registered prefix, but the SVID is
    # another workload's: the SVID must carry the ID that client_id names.
    response = send(spire.jwt_svid("/ns/prod/sa/other"), client_id=workload)
    assert_error(response, 401, "invalid_client")


# ------------------------------------------------------------ audit trail


def test_audit_events_carry_auth_method_and_attested_id(
    http, metadata, admin, register, cluster, spire, token_file
):
    """docs/workload-identity.md: "the audit event of every token request
    has auth_method and attested_id" (GET /admin/events)."""
    since = int(time.time()) - 5
    attested_k8s = f"{cluster.issuer}#{SERVICE_ACCOUNT}"
    k8s = k8s_client(register, cluster)
    token_file.write(cluster.projected_token())
    workload_session(metadata, k8s["client_id"], "federated_jwt", token_file).fetch_token(
        grant_type=CC
    )
    bearer_grant_session(metadata, cluster, token_file).refresh_token()
    svid_client = spiffe_client(register, spire)
    token_file.write(spire.jwt_svid())
    workload_session(metadata, svid_client["client_id"], "spiffe_jwt", token_file).fetch_token(
        grant_type=CC
    )

    issued = wait_for_events(admin, client_id=k8s["client_id"], type="token.issued", since=since)
    assert sorted(e["grant_type"] for e in issued) == sorted([CC, JWT_BEARER]), issued
    for event in issued:
        assert event.get("auth_method") == "federated_jwt", event
        assert event.get("attested_id") == attested_k8s, event
    issued = wait_for_events(
        admin, client_id=svid_client["client_id"], type="token.issued", since=since
    )
    assert len(issued) == 1, issued
    assert issued[0].get("auth_method") == "spiffe_jwt", issued[0]
    assert issued[0].get("attested_id") == spire.spiffe_id("/ns/prod/sa/api"), issued[0]
