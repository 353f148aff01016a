"""A person's browser for the authorization endpoint, played by httpx.

custos's pages have no script: a login form (`step=login`, hidden
`pending` and `csrf`, `username`, `password`) and a consent form (hidden
`pending`, `csrf`, `step=consent`, buttons `decision=allow|deny`). The
browser keeps the session cookie, reads the forms with the standard
library's html.parser (which unescapes attributes as a browser does: the
form's action is written `&#x2f;authorize`), posts them to the action
resolved against the page's URL, and never follows redirects: the 303 to
the client's redirect URI is the result.
"""

from __future__ import annotations

import urllib.parse
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx

from conftest import _note_httpx

PASSWORD = "correct horse battery staple"


@dataclass
class Form:
    action: str
    method: str
    fields: dict = field(default_factory=dict)
    buttons: list = field(default_factory=list)  # (name, value)


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append(Form(attrs.get("action") or "", (attrs.get("method") or "get").lower()))
        elif not self.forms:
            return
        elif tag == "input" and attrs.get("name"):
            if attrs.get("type") == "hidden":
                self.forms[-1].fields[attrs["name"]] = attrs.get("value") or ""
            elif attrs.get("type") == "submit":
                self.forms[-1].buttons.append((attrs["name"], attrs.get("value") or ""))
        elif tag == "button" and attrs.get("name"):
            self.forms[-1].buttons.append((attrs["name"], attrs.get("value") or ""))


def forms(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    parser.close()
    return parser.forms


def query(location: str) -> dict:
    """The query parameters of a redirect (each once)."""
    pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"a parameter appears twice: {location}"
    return dict(pairs)


class Browser:
    """One browser (one cookie jar). `authorize` logs in and consents and
    returns the Location of the final 303."""

    def __init__(self):
        self.http = httpx.Client(
            timeout=15.0, follow_redirects=False, event_hooks={"response": [_note_httpx]}
        )

    def close(self):
        self.http.close()

    def get(self, url: str) -> httpx.Response:
        return self.http.get(url)

    def submit(self, page: httpx.Response, step: str, **values) -> httpx.Response:
        """Fills the page's form for `step` and posts it where its action says."""
        found = [f for f in forms(page.text) if f.fields.get("step") == step]
        assert len(found) == 1, (step, page.text)
        form = found[0]
        assert form.method == "post", form
        assert form.fields.get("pending") and form.fields.get("csrf"), form
        action = urllib.parse.urljoin(str(page.request.url), form.action)
        return self.http.post(action, data={**form.fields, **values}, headers=self.post_headers(page))

    @staticmethod
    def post_headers(page: httpx.Response) -> dict:
        """What a browser sends with a form posted from `page`: its origin
        (RFC 6454) and Sec-Fetch-Site (Fetch Metadata)."""
        url = page.request.url
        return {"Origin": f"{url.scheme}://{url.netloc.decode()}", "Sec-Fetch-Site": "same-origin"}

    def login(self, page: httpx.Response, username: str, password: str = PASSWORD) -> httpx.Response:
        assert page.status_code == 200, (page.status_code, page.text)
        assert 'name="password"' in page.text, page.text
        return self.submit(page, "login", username=username, password=password)

    def consent(self, page: httpx.Response, decision: str = "allow") -> httpx.Response:
        assert page.status_code == 200, (page.status_code, page.text)
        found = [f for f in forms(page.text) if f.fields.get("step") == "consent"]
        assert found and ("decision", decision) in found[0].buttons, page.text
        return self.submit(page, "consent", decision=decision)

    def authorize(self, url: str, username: str, password: str = PASSWORD, decision: str = "allow") -> str:
        """GET the authorization URL, log in if asked, consent if asked;
        returns the Location of the 303 to the client."""
        response = self.get(url)
        if response.status_code == 200 and 'name="password"' in response.text:
            response = self.login(response, username, password)
        if response.status_code == 200 and 'value="consent"' in response.text:
            response = self.consent(response, decision)
        # RFC 9700 §4.12: 303, never 307 (which would repost the password).
        assert response.status_code == 303, (response.status_code, response.text[:500])
        return response.headers["location"]


def create_person(admin) -> str:
    """A person who can log in, made with the admin API; returns the username."""
    username = f"person-{uuid.uuid4().hex[:10]}"
    response = admin.post("/users", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return username
