#!/usr/bin/env python3
"""Refresh tokens for bench/run.sh --scenario refresh, through custos's
authorization code flow (OAuth 2.1 section 4.1) with PKCE S256, as a browser
and a public client would do it.

    python3 bench/codeflow.py --authorize URL --token URL --client-id ID \\
        --redirect-uri URI --username NAME --password PASSWORD \\
        --cookies FILE --count N > tokens.txt

The first run logs in and consents (the login and consent forms); the
session cookie is kept in --cookies, so later runs, and every flow after
the first, are redirected at once (remembered consent). Each flow redeems
its code with the verifier and prints the refresh token, one per line.
Standard library only; one keep-alive connection.
"""

import argparse
import base64
import hashlib
import html
import http.client
import json
import os
import re
import secrets
import sys
import time
import urllib.parse


def fail(message):
    print(f"codeflow.py: {message}", file=sys.stderr)
    sys.exit(1)


class Browser:
    """One keep-alive HTTP/1.1 connection with a cookie jar that sends every
    cookie back (the server is on loopback over plain HTTP)."""

    def __init__(self, base, cookie_file):
        self.base = urllib.parse.urlsplit(base)
        if self.base.scheme != "http":
            fail(f"{base}: only http:// is supported")
        self.conn = http.client.HTTPConnection(self.base.hostname, self.base.port or 80, timeout=30)
        self.cookie_file = cookie_file
        self.cookies = {}
        if cookie_file and os.path.exists(cookie_file):
            with open(cookie_file) as f:
                for line in f:
                    name, _, value = line.strip().partition("=")
                    if name:
                        self.cookies[name] = value

    def save(self):
        if self.cookie_file:
            with open(self.cookie_file, "w") as f:
                for name, value in self.cookies.items():
                    f.write(f"{name}={value}\n")

    def request(self, method, url, form=None):
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Accept": "text/html,application/json"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            try:
                self.conn.request(method, target, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read().decode("utf-8", "replace")
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                # The server closed the idle keep-alive connection: reconnect once.
                self.conn.close()
                if attempt == 2:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].strip().partition("=")
            if name:
                self.cookies[name] = value
        return response.status, response.headers, data


def describe(page):
    """The error of one of custos's pages, or the page's start."""
    found = re.search(r'role="alert">(.*?)</p>', page, re.S)
    code = re.search(r"Error code: <code>(.*?)</code>", page)
    if found:
        return html.unescape(f"{found.group(1)} ({code.group(1) if code else 'no error code'})")
    return page[:300]


def hidden(page, name):
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    if not match:
        fail(f"no hidden input {name} in the page: {describe(page)}")
    return html.unescape(match.group(1))


def form_action(page, base):
    match = re.search(r'<form method="post" action="([^"]*)"', page)
    if not match:
        fail(f"no form in the page: {describe(page)}")
    return urllib.parse.urljoin(base, html.unescape(match.group(1)))


def pkce():
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authorize", required=True, help="authorization_endpoint")
    parser.add_argument("--token", required=True, help="token_endpoint")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--scope", default="read")
    parser.add_argument("--cookies", help="file keeping the session cookie between runs")
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()

    browser = Browser(args.authorize, args.cookies)
    out = sys.stdout
    for _ in range(args.count):
        verifier, challenge = pkce()
        state = secrets.token_urlsafe(8)
        query = urllib.parse.urlencode({
            "response_type": "code",
            "client_id": args.client_id,
            "redirect_uri": args.redirect_uri,
            "scope": args.scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        })
        # A 5xx is retried a few times (and reported on stderr): the
        # benchmark should not stop on one, but it should be seen.
        for attempt in range(1, 6):
            status, headers, page = browser.request("GET", f"{args.authorize}?{query}")
            if status < 500:
                break
            print(f"codeflow.py: authorization answered {status} (attempt {attempt}): {describe(page)}",
                  file=sys.stderr)
            time.sleep(0.5)
        # At most: login page -> consent page -> redirect.
        for _step in range(3):
            if status == 303:
                break
            if status != 200:
                fail(f"authorization answered {status}: {describe(page)}")
            step = hidden(page, "step")
            action = form_action(page, args.authorize)
            form = {"step": step, "pending": hidden(page, "pending"), "csrf": hidden(page, "csrf")}
            if step == "login":
                form.update(username=args.username, password=args.password)
            elif step == "consent":
                form["decision"] = "allow"
            else:
                fail(f"unexpected form step {step!r}")
            status, headers, page = browser.request("POST", action, form)
        if status != 303:
            fail(f"no redirect after login and consent: {status} {describe(page)}")
        location = headers.get("Location", "")
        if not location.startswith(args.redirect_uri):
            fail(f"redirected elsewhere: {location}")
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        if "code" not in params:
            fail(f"no code in the redirect: {location}")
        if params.get("state") != state:
            fail(f"state changed in the redirect: {location}")
        status, _, body = browser.request("POST", args.token, {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": args.redirect_uri,
            "code_verifier": verifier,
            "client_id": args.client_id,
        })
        if status != 200:
            fail(f"code redemption answered {status}: {body[:300]}")
        tokens = json.loads(body)
        if not tokens.get("refresh_token"):
            fail(f"no refresh_token in {body[:300]}")
        out.write(tokens["refresh_token"] + "\n")
    out.flush()
    browser.save()


if __name__ == "__main__":
    main()
