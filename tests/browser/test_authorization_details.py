"""Rich Authorization Requests (RFC 9396) in a real headless Chromium.

An operator registers a resource with an authorization details type (admin
API); the client sends the person to the authorization endpoint with
`authorization_details`; the person logs in and reads, on the consent page,
what exactly is asked (each entry in words, in the "In detail" block), then
allows from the keyboard. The code is redeemed with the PKCE verifier and
the token response carries the granted details (RFC 9396 §7), each with the
type's resource as its `locations`. The consent page is kept as a
screenshot (target/browser-artifacts/<backend>-details-2-consent.png).
"""

from __future__ import annotations

import json
import secrets

from conftest import ADMIN_TOKEN, BASE_URL, CLIENT_NAME, WAIT, screenshot
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from test_login_consent import (
    ALLOW,
    assert_page_is_clean,
    focused,
    keys,
    log_in_by_keyboard,
    new_state,
    pkce,
    redeem,
    single,
    wait_for_consent_or_login_error,
    wait_for_login_page,
)


def register_bank(custos) -> tuple[str, str]:
    """A fresh resource with a fresh payment type (the server is shared by
    the suite); returns (resource URI, type name)."""
    tag = secrets.token_hex(4)
    uri, type_name = f"https://bank-{tag}.example/", f"payment_{tag}"
    schema = {
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
    response = custos.http.post(
        f"{BASE_URL}/admin/resources",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={
            "uri": uri,
            "scopes": ["read"],
            "authorization_details_types": [{"type": type_name, "schema": schema}],
        },
    )
    assert response.status_code == 201, response.text
    return uri, type_name


def test_consent_shows_authorization_details_in_words_then_token_carries_them(
    driver, custos, person, callback
):
    uri, type_name = register_bank(custos)
    entry = {
        "type": type_name,
        "actions": ["initiate", "status"],
        "instructedAmount": {"currency": "EUR", "amount": "123.50"},
        # Markup in a client-chosen value must come out as text.
        "creditorName": "Merchant <b>A</b> & Co",
    }
    verifier, challenge = pkce()
    state = new_state()
    driver.get(
        custos.authorization_url(challenge, state, authorization_details=json.dumps([entry]))
    )

    wait_for_login_page(driver)
    assert_page_is_clean(driver)
    screenshot(driver, "details-1-login")
    log_in_by_keyboard(driver, person.username, person.password)

    wait_for_consent_or_login_error(driver)
    screenshot(driver, "details-2-consent")
    assert_page_is_clean(driver)
    main = driver.find_element(By.TAG_NAME, "main")
    assert CLIENT_NAME in main.find_element(By.TAG_NAME, "h1").text
    terms = [dt.text for dt in main.find_elements(By.TAG_NAME, "dt")]
    assert "In detail" in terms, terms

    # The "In detail" block: one line per entry, in words.
    lines = main.find_elements(By.CSS_SELECTOR, "dl dd ul.details li")
    assert len(lines) == 1, [line.text for line in lines]
    line = lines[0]
    assert line.is_displayed()
    text = line.text
    assert text.startswith(f"{type_name} at {uri}: actions initiate, status; "), text
    amount = text.split("instructedAmount ", 1)[1].split(";", 1)[0]
    assert json.loads(amount) == {"currency": "EUR", "amount": "123.50"}, text
    assert "creditorName Merchant <b>A</b> & Co" in text, text
    assert not line.find_elements(By.TAG_NAME, "b"), "the client's markup became an element"
    # The scope and the resource the details are for are listed too.
    asked = [c.text for c in main.find_elements(By.CSS_SELECTOR, "dd li code")]
    assert asked == ["read", uri], asked
    # The details fit the card: nothing spills sideways.
    overflow = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " arguments[0].getBoundingClientRect().right, arguments[1].getBoundingClientRect().right]",
        line,
        main,
    )
    assert overflow[0] <= overflow[1], f"the page scrolls sideways: {overflow}"
    assert overflow[2] <= overflow[3] + 1, f"the details line leaves the card: {overflow}"
    assert callback.recorder.seen() == [], "nothing reaches the client before the answer"

    # TAB to Allow and press ENTER.
    allow = driver.find_element(*ALLOW)
    for _ in range(12):
        if focused(driver) == allow:
            break
        keys(driver, Keys.TAB)
    assert focused(driver) == allow, "Allow cannot be reached with TAB"
    keys(driver, Keys.ENTER)

    query = callback.recorder.wait("/cb")
    WebDriverWait(driver, WAIT).until(lambda d: d.current_url.startswith(custos.redirect_uri))
    screenshot(driver, "details-3-redirect")
    assert single(query, "state") == state
    assert single(query, "iss") == custos.issuer, "RFC 9207"
    assert single(query, "error") is None, query
    code = single(query, "code")
    assert code, query

    response = redeem(custos, code, verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens.get("scope") == "read"
    # RFC 9396 §7: the details as granted, `locations` made explicit.
    assert tokens.get("authorization_details") == [{**entry, "locations": [uri]}], tokens
