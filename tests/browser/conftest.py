"""Fixtures for the browser suite (tests/browser/run.sh sets the environment).

  CUSTOS_TEST_URL          the issuer URL of a running custos
  CUSTOS_TEST_ADMIN_TOKEN  its CUSTOS_ADMIN_TOKEN
  BROWSER_ARTIFACTS        where screenshots go (target/browser-artifacts)
  BROWSER_BACKEND          a name for this run's files (sqlite, postgres)
  BROWSER_CHROMIUM         the browser (/usr/bin/chromium)
  BROWSER_CHROMEDRIVER     its driver (/usr/bin/chromedriver)

The client's redirect URI points at a small HTTP server started here on a
loopback port, so the browser really lands on the redirect and the test
reads the query the client would have seen.
"""

from __future__ import annotations

import os
import secrets
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

BASE_URL = os.environ.get("CUSTOS_TEST_URL", "").rstrip("/")
ADMIN_TOKEN = os.environ.get("CUSTOS_TEST_ADMIN_TOKEN", "")
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", "../../target/browser-artifacts")).resolve()
BACKEND = os.environ.get("BROWSER_BACKEND", "custos")
CHROMIUM = os.environ.get("BROWSER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BROWSER_CHROMEDRIVER", "/usr/bin/chromedriver")

CLIENT_NAME = "Browser Test App"
PASSWORD = "correct horse battery staple"
WAIT = 20  # seconds for any page or redirect to arrive


def pytest_configure(config):
    if not BASE_URL or not ADMIN_TOKEN:
        raise pytest.UsageError(
            "set CUSTOS_TEST_URL (issuer URL of a running custos) and "
            "CUSTOS_TEST_ADMIN_TOKEN (its admin token); tests/browser/run.sh does both"
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


# ------------------------------------------------------------ the client


class Callback:
    """What the client's redirect endpoint received: (path, raw query)."""

    def __init__(self) -> None:
        self._seen: list[tuple[str, str]] = []
        self._changed = threading.Condition()

    def record(self, path: str, query: str) -> None:
        with self._changed:
            self._seen.append((path, query))
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._seen.clear()

    def seen(self) -> list[tuple[str, str]]:
        with self._changed:
            return list(self._seen)

    def wait(self, path: str, timeout: float = WAIT) -> dict[str, list[str]]:
        """The parsed query of the first request to `path`."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(p == path for p, _ in self._seen), timeout=timeout
            )
            if not found:
                raise AssertionError(f"no request to {path} within {timeout} s; saw {self._seen}")
            query = next(q for p, q in self._seen if p == path)
        return urllib.parse.parse_qs(query, keep_blank_values=True)


@pytest.fixture(scope="session")
def callback():
    """A loopback HTTP server: records every GET, answers /cb with 200 "ok"."""
    recorder = Callback()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            url = urllib.parse.urlsplit(self.path)
            recorder.record(url.path, url.query)
            status, body = (200, b"ok") if url.path == "/cb" else (404, b"not found")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="callback", daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    server.recorder = recorder
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Custos:
    http: httpx.Client
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    client_id: str
    redirect_uri: str

    def authorization_url(self, challenge: str, state: str, **extra: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "read",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra)
        return self.authorization_endpoint + "?" + urllib.parse.urlencode(params)


@dataclass
class Person:
    username: str
    password: str


@pytest.fixture(scope="session")
def custos(callback):
    """Discovery and a public client (RFC 7591)."""
    with httpx.Client(timeout=15) as http:
        response = http.get(f"{BASE_URL}/.well-known/oauth-authorization-server")
        assert response.status_code == 200, response.text
        metadata = response.json()
        assert metadata["issuer"] == BASE_URL, metadata["issuer"]
        assert metadata.get("authorization_response_iss_parameter_supported") is True
        assert "S256" in metadata.get("code_challenge_methods_supported", ["S256"])

        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        redirect_uri = f"{callback.base}/cb"
        response = http.post(
            metadata.get("registration_endpoint") or f"{BASE_URL}/register",
            headers=admin,
            json={
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [redirect_uri],
                "scope": "read write",
                "client_name": CLIENT_NAME,
            },
        )
        assert response.status_code == 201, response.text
        yield Custos(
            http=http,
            issuer=metadata["issuer"],
            authorization_endpoint=metadata["authorization_endpoint"],
            token_endpoint=metadata["token_endpoint"],
            client_id=response.json()["client_id"],
            redirect_uri=redirect_uri,
        )


@pytest.fixture
def person(custos):
    """A new person (admin API) for each test: no remembered consent."""
    username = f"browser-{secrets.token_hex(4)}"
    response = custos.http.post(
        f"{BASE_URL}/admin/users",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"username": username, "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    return Person(username=username, password=PASSWORD)


# ------------------------------------------------------------ the browser


def screenshot(driver, name: str) -> Path:
    """Saves the viewport as target/browser-artifacts/<backend>-<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{BACKEND}-{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {path} failed"
    assert path.stat().st_size > 1000, f"screenshot {path} is suspiciously small"
    print(f"screenshot: {path}")
    return path


@pytest.fixture
def driver(request, callback):
    """A fresh headless Chromium (no cookies) per test."""
    callback.recorder.clear()
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-gpu",
        "--password-store=basic",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"credentials_enable_service": False, "profile.password_manager_enabled": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    browser = webdriver.Chrome(service=service, options=options)
    # The window is 1280x900; make the page's viewport that size too (the
    # new headless mode takes the browser's frame off the window's height).
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    outer = browser.get_window_size()
    browser.set_window_size(
        outer["width"] + 1280 - inner[0], outer["height"] + 900 - inner[1]
    )
    browser.set_page_load_timeout(WAIT)
    browser.set_script_timeout(WAIT)
    try:
        yield browser
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            screenshot(browser, f"FAILED-{request.node.name}")
    finally:
        browser.quit()
