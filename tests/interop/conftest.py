"""Fixtures for the interoperability suite.

The suite talks to a running custos over HTTP only, as an outside client
would: discovery first, then RFC 7591 registration with the admin token as
the initial access token, then the flows. It needs two settings:

  CUSTOS_TEST_URL          the issuer URL, e.g. http://127.0.0.1:8080
  CUSTOS_TEST_ADMIN_TOKEN  the server's CUSTOS_ADMIN_TOKEN

Every HTTP response seen by any client in the suite (httpx for raw protocol
requests, requests under authlib) is checked: a 5xx fails the test that
caused it, whatever the test itself asserted.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

BASE_URL = os.environ.get("CUSTOS_TEST_URL", "").rstrip("/")
ADMIN_TOKEN = os.environ.get("CUSTOS_TEST_ADMIN_TOKEN", "")

# Responses with a 5xx status, as (method, url, status, body excerpt).
_SERVER_ERRORS: list[tuple[str, str, int, str]] = []


def pytest_configure(config):
    if not BASE_URL or not ADMIN_TOKEN:
        raise pytest.UsageError(
            "set CUSTOS_TEST_URL (issuer URL of a running custos) and "
            "CUSTOS_TEST_ADMIN_TOKEN (its admin token); tests/interop/run.sh does both"
        )


# RFC 7592 §2.1 lets the server issue a new registration access token with
# any client information response (custos does, on every read and update,
# since it keeps only a hash); the client must use the newest one.
REGISTRATION_TOKENS: dict = {}


def _note_registration_token(response: httpx.Response) -> None:
    if response.status_code != 200 or "json" not in response.headers.get("content-type", ""):
        return
    response.read()
    try:
        body = response.json()
    except ValueError:
        return
    if isinstance(body, dict) and "registration_access_token" in body and "client_id" in body:
        REGISTRATION_TOKENS[body["client_id"]] = body["registration_access_token"]


def _note_httpx(response: httpx.Response) -> None:
    _note_registration_token(response)
    if response.status_code >= 500:
        response.read()
        _SERVER_ERRORS.append(
            (
                response.request.method,
                str(response.request.url),
                response.status_code,
                response.text[:300],
            )
        )


def _note_requests(response, *args, **kwargs):
    if response.status_code >= 500:
        _SERVER_ERRORS.append(
            (
                response.request.method,
                response.request.url,
                response.status_code,
                response.text[:300],
            )
        )
    return response


@pytest.fixture(autouse=True)
def no_server_errors():
    """Fails any test during which the server answered with a 5xx."""
    start = len(_SERVER_ERRORS)
    yield
    errors = _SERVER_ERRORS[start:]
    assert not errors, f"the server answered 5xx: {errors}"


@pytest.fixture(scope="session")
def http():
    # custos closes a keep-alive connection idle for 30 s
    # (CUSTOS_IDLE_TIMEOUT); a request sent on it as it closes gets no
    # answer. The client lets idle connections go well before that.
    with httpx.Client(
        timeout=15.0,
        follow_redirects=False,
        event_hooks={"response": [_note_httpx]},
        limits=httpx.Limits(keepalive_expiry=10.0),
    ) as client:
        yield client


@pytest.fixture(scope="session")
def metadata(http):
    """RFC 8414 authorization server metadata: the suite's only entry point."""
    response = http.get(f"{BASE_URL}/.well-known/oauth-authorization-server")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="session")
def issuer(metadata):
    return metadata["issuer"]


@pytest.fixture(scope="session")
def admin(http, issuer):
    return Admin(http, issuer)


class Admin:
    """The custos admin API (not part of any RFC; under the issuer)."""

    def __init__(self, http: httpx.Client, issuer: str):
        self.http = http
        self.base = f"{issuer}/admin"
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(self.base + path, headers=self.headers, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.http.post(self.base + path, headers=self.headers, **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.http.delete(self.base + path, headers=self.headers, **kwargs)

    def create_resource(self, scopes: list[str]) -> str:
        uri = f"https://api-{uuid.uuid4().hex[:12]}.interop.example/"
        response = self.post("/resources", json={"uri": uri, "scopes": scopes})
        assert response.status_code == 201, response.text
        return uri


@pytest.fixture(scope="session")
def register(http, metadata):
    """Registers a client by RFC 7591 and returns the client information
    response (RFC 7591 §3.2.1) as a dict."""

    def _register(**client_metadata) -> dict:
        client_metadata.setdefault("client_name", f"interop-{uuid.uuid4().hex[:8]}")
        response = http.post(
            metadata["registration_endpoint"],
            json=client_metadata,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert response.status_code == 201, response.text
        assert response.headers.get("cache-control") == "no-store"
        return response.json()

    return _register


@dataclass
class EcKeyPair:
    """An EC P-256 key pair made with `cryptography`; the public JWK is
    built by hand from the curve point (RFC 7518 §6.2.1)."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_jwk(self) -> dict:
        numbers = self.private_key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
        # RFC 7638 thumbprint as the kid.
        canonical = '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' % (jwk["x"], jwk["y"])
        jwk["kid"] = _b64url(hashlib.sha256(canonical.encode()).digest())
        jwk["use"] = "sig"
        jwk["alg"] = "ES256"
        return jwk

    @property
    def kid(self) -> str:
        return self.public_jwk["kid"]

    def joserfc_key(self) -> ECKey:
        return ECKey.import_key(self.pem)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def ec_key() -> EcKeyPair:
    return EcKeyPair()


def authlib_session(
    metadata: dict, client_id: str, secret, method: str, **kwargs
) -> OAuth2Session:
    """An authlib OAuth2Session set up from discovery for one client. For
    private_key_jwt, `secret` is the joserfc key and authlib's PrivateKeyJWT
    signs the assertions (ES256, aud = the endpoint being called)."""
    kid = kwargs.pop("kid", None)
    session = OAuth2Session(
        client_id=client_id,
        client_secret=secret,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        token_endpoint=metadata["token_endpoint"],
        **kwargs,
    )
    session.hooks["response"].append(_note_requests)
    if method == "private_key_jwt":
        session.register_client_auth_method(
            PrivateKeyJWT(alg="ES256", headers={"kid": kid} if kid else None)
        )
    return session
