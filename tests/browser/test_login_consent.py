"""The authorization code flow in a real headless Chromium (issue 6).

A person logs in and answers the consent page from the keyboard; the browser
lands on the client's redirect URI (a loopback server of conftest.py) with
`code`, `state` and `iss` (RFC 9207), and the code is redeemed with the PKCE
verifier (RFC 7636, S256). Deny leads to `access_denied`; a redirect URI the
client did not register shows custos's error page and never navigates to
the client. Every page is kept as a screenshot in target/browser-artifacts.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

import httpx
from conftest import CLIENT_NAME, WAIT, screenshot
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ALLOW = (By.CSS_SELECTOR, 'button[name="decision"][value="allow"]')
DENY = (By.CSS_SELECTOR, 'button[name="decision"][value="deny"]')


def pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def new_state() -> str:
    # Characters that must survive the round trip untouched.
    return f"st@te/ü {secrets.token_urlsafe(8)}"


def single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if values is None:
        return None
    assert len(values) == 1, f"{name} appears {len(values)} times: {query}"
    return values[0]


def focused(driver):
    return driver.switch_to.active_element


def keys(driver, *sequence: str) -> None:
    """Types into whatever has the focus, as a person at a keyboard would."""
    ActionChains(driver).send_keys(*sequence).perform()


def wait_for_login_page(driver):
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.NAME, "password"))
    assert driver.find_element(By.NAME, "username").is_displayed()


def wait_for_consent_or_login_error(driver):
    """The consent page after a login; fails with the login page's error."""

    def arrived(d):
        if d.find_elements(*ALLOW):
            return "consent"
        if d.find_elements(By.NAME, "password") and d.find_elements(By.CSS_SELECTOR, ".error"):
            return "error"
        return False

    outcome = WebDriverWait(driver, WAIT).until(arrived)
    if outcome == "error":
        text = driver.find_element(By.CSS_SELECTOR, ".error").text
        raise AssertionError(f"login refused: {text}")


def log_in_by_keyboard(driver, username: str, password: str) -> None:
    # The login page focuses the username field, or the password field when
    # the username is already filled in (after a failed attempt). Chromium
    # applies autofocus in a rendering step after the load, hence the wait.
    try:
        WebDriverWait(driver, 5).until(
            lambda d: focused(d).get_attribute("name") in ("username", "password")
        )
    except TimeoutException:
        field = focused(driver)
        raise AssertionError(
            "the login page should focus the username or the password field, "
            f"focus is on <{field.tag_name} name={field.get_attribute('name')!r}>"
        ) from None
    page = driver.find_element(By.TAG_NAME, "html")
    if focused(driver).get_attribute("name") == "password":
        kept = driver.find_element(By.NAME, "username").get_attribute("value")
        assert kept, "the password field has the focus only when the username is filled in"
        if kept != username:
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    if focused(driver).get_attribute("name") == "username":
        if focused(driver).get_attribute("value"):
            # Replace what is there: select all, then type over it.
            ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
        keys(driver, username, Keys.TAB)
    assert focused(driver).get_attribute("name") == "password", "TAB from username goes to password"
    keys(driver, password, Keys.ENTER)
    # Wait for the answer to replace this page, so that a later wait does not
    # find this page's own error message.
    WebDriverWait(driver, WAIT).until(replaced(page))


def replaced(page):
    """`EC.staleness_of`, except that ChromeDriver's "unhandled inspector
    error" — which it answers, instead of a stale-element error, when the
    element's document is torn down mid-call — also counts as replaced
    (seen in CI: the login page navigating away during the check)."""

    def check(_driver):
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "inspector error" in str(error) or "no such execution context" in str(error):
                return True
            raise
        return False

    return check


def assert_page_is_clean(driver, status: int = 200) -> None:
    """No script in the page; the stylesheet applied (CSP style-src 'self');
    nothing refused or failed in the console (a page shown with an error
    `status` is reported there as a failed load; that one is expected)."""
    assert "<script" not in driver.page_source.lower()
    links = driver.find_elements(By.CSS_SELECTOR, 'link[rel="stylesheet"]')
    assert links, "the page links no stylesheet"
    # custos.css gives <main> a white card on a grey page.
    main = driver.find_element(By.TAG_NAME, "main")
    assert main.value_of_css_property("background-color") in ("rgba(255, 255, 255, 1)", "rgb(255, 255, 255)"), (
        "custos.css did not apply: " + links[0].get_attribute("href")
    )
    problems = [
        entry
        for entry in driver.get_log("browser")
        if entry.get("level") == "SEVERE"
        and "favicon.ico" not in entry.get("message", "")
        and not (
            entry.get("source") == "network"
            and status != 200
            and f"status of {status} " in entry.get("message", "")
        )
    ]
    assert not problems, f"console errors: {problems}"


def redeem(custos, code: str, verifier: str) -> httpx.Response:
    return custos.http.post(
        custos.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": custos.redirect_uri,
            "code_verifier": verifier,
            "client_id": custos.client_id,
        },
    )


def refresh(custos, token: str) -> httpx.Response:
    return custos.http.post(
        custos.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": custos.client_id},
    )


def test_login_and_consent_by_keyboard_then_code_redeemed_with_verifier(driver, custos, person, callback):
    verifier, challenge = pkce()
    state = new_state()
    driver.get(custos.authorization_url(challenge, state))

    wait_for_login_page(driver)
    assert CLIENT_NAME in driver.find_element(By.TAG_NAME, "main").text
    assert_page_is_clean(driver)
    screenshot(driver, "allow-1-login")
    log_in_by_keyboard(driver, person.username, person.password)

    wait_for_consent_or_login_error(driver)
    screenshot(driver, "allow-2-consent")
    assert_page_is_clean(driver)
    main = driver.find_element(By.TAG_NAME, "main")
    assert CLIENT_NAME in main.find_element(By.TAG_NAME, "h1").text
    assert person.username in main.text
    assert custos.client_id in main.text
    asked = [c.text for c in main.find_elements(By.CSS_SELECTOR, "dd li code")]
    assert asked == ["read"], f"the consent page should ask for exactly scope read, shows {asked}"
    assert callback.recorder.seen() == [], "nothing reaches the client before the answer"

    driver.find_element(*ALLOW).click()

    query = callback.recorder.wait("/cb")
    WebDriverWait(driver, WAIT).until(lambda d: d.current_url.startswith(custos.redirect_uri))
    assert driver.find_element(By.TAG_NAME, "body").text.strip() == "ok"
    screenshot(driver, "allow-3-redirect")
    assert single(query, "state") == state, "RFC 6749 section 4.1.2: state untouched"
    assert single(query, "iss") == custos.issuer, "RFC 9207"
    assert single(query, "error") is None, query
    code = single(query, "code")
    assert code, query

    response = redeem(custos, code, verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer"
    assert tokens.get("access_token")
    assert tokens.get("refresh_token")
    assert tokens.get("scope") == "read"
    assert response.headers.get("cache-control") == "no-store"

    refreshed = refresh(custos, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json().get("access_token")
    rotated = refreshed.json().get("refresh_token")
    assert rotated and rotated != tokens["refresh_token"], "refresh tokens rotate"

    # RFC 9700 section 4.14: the code once more is refused and revokes what
    # it produced, the rotated refresh token included.
    again = redeem(custos, code, verifier)
    assert (again.status_code, again.json().get("error")) == (400, "invalid_grant"), again.text
    revoked = refresh(custos, rotated)
    assert (revoked.status_code, revoked.json().get("error")) == (400, "invalid_grant"), revoked.text


def test_deny_by_keyboard_redirects_access_denied_with_iss(driver, custos, person, callback):
    _, challenge = pkce()
    state = new_state()
    driver.get(custos.authorization_url(challenge, state))
    wait_for_login_page(driver)

    # A wrong password first: the login page again, with an error and the
    # username kept.
    log_in_by_keyboard(driver, person.username, "not the password")
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".error"))
    screenshot(driver, "deny-1-login-error")
    assert_page_is_clean(driver)
    error = driver.find_element(By.CSS_SELECTOR, ".error")
    assert error.get_attribute("role") == "alert"
    assert driver.find_element(By.NAME, "username").get_attribute("value") == person.username
    assert driver.find_element(By.NAME, "password").get_attribute("value") == ""

    log_in_by_keyboard(driver, person.username, person.password)
    wait_for_consent_or_login_error(driver)

    # TAB from the top of the page to Deny and press ENTER.
    deny = driver.find_element(*DENY)
    for _ in range(12):
        if focused(driver) == deny:
            break
        keys(driver, Keys.TAB)
    assert focused(driver) == deny, "Deny cannot be reached with TAB"
    screenshot(driver, "deny-2-consent-focus-on-deny")
    keys(driver, Keys.ENTER)

    query = callback.recorder.wait("/cb")
    WebDriverWait(driver, WAIT).until(lambda d: d.current_url.startswith(custos.redirect_uri))
    screenshot(driver, "deny-3-redirect")
    assert single(query, "error") == "access_denied", query
    assert single(query, "iss") == custos.issuer, "RFC 9207"
    assert single(query, "state") == state
    assert single(query, "code") is None, query


def test_unregistered_redirect_uri_shows_the_error_page_and_never_redirects(driver, custos, callback):
    _, challenge = pkce()
    # Same loopback origin, another path: not registered.
    evil = custos.redirect_uri.rsplit("/", 1)[0] + "/evil"
    url = custos.authorization_url(challenge, new_state(), redirect_uri=evil)
    driver.get(url)

    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.TAG_NAME, "h1"))
    screenshot(driver, "bad-redirect-uri-error")
    assert_page_is_clean(driver, status=400)
    assert driver.current_url.startswith(custos.authorization_endpoint), driver.current_url
    assert not driver.find_elements(By.NAME, "password"), "no login for a bad request"
    assert driver.find_element(By.CSS_SELECTOR, '[role="alert"]').text.strip()
    assert "cannot be completed" in driver.find_element(By.TAG_NAME, "h1").text
    assert callback.recorder.seen() == [], "the browser must not be sent to an unregistered URI"

    response = custos.http.get(url)
    assert response.status_code == 400, response.status_code
    assert "location" not in response.headers


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name} in the page"
    return match.group(1)


def assert_page_headers(response: httpx.Response) -> None:
    assert response.headers.get("x-frame-options") == "DENY"
    csp = response.headers.get("content-security-policy", "")
    directives = {
        part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()
    }
    assert directives.get("frame-ancestors") == ["'none'"], csp
    assert directives.get("style-src") == ["'self'"], csp
    # No script may run: script-src, or default-src in its absence, is 'none'.
    assert directives.get("script-src", directives.get("default-src")) == ["'none'"], csp
    assert response.headers.get("content-type", "").startswith("text/html")
    assert "<script" not in response.text.lower()


def test_every_page_forbids_framing_and_carries_no_script(custos, person):
    """The login, consent and error pages as fetched without a browser."""
    _, challenge = pkce()
    url = custos.authorization_url(challenge, new_state())
    with httpx.Client(timeout=15) as browser:  # its own cookie jar
        login = browser.get(url)
        assert login.status_code == 200, login.text
        assert_page_headers(login)
        assert login.headers.get("cache-control") == "no-store"

        consent = browser.post(
            custos.authorization_endpoint,
            data={
                "step": "login",
                "pending": hidden(login.text, "pending"),
                "csrf": hidden(login.text, "csrf"),
                "username": person.username,
                "password": person.password,
            },
        )
        assert consent.status_code == 200, consent.text
        assert 'value="allow"' in consent.text
        assert_page_headers(consent)

        error = browser.get(
            custos.authorization_url(challenge, new_state(), redirect_uri="https://evil.example/cb")
        )
        assert error.status_code == 400, error.text
        assert_page_headers(error)

        # The stylesheet the pages link is served from the issuer's origin,
        # as style-src 'self' requires.
        css = httpx.get(f"{custos.issuer}/assets/custos.css", timeout=15)
        assert css.status_code == 200
        assert css.headers.get("content-type", "").startswith("text/css")
