//! Playing the person's browser in the authorization flow tests: a client
//! that keeps cookies and never follows redirects, PKCE pairs, and reading
//! hidden fields and redirect parameters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The redirect URI the flow tests register.
pub const REDIRECT: &str = "https://app.example/cb";
/// The password of the people the flow tests create.
pub const PASSWORD: &str = "correct horse battery";

/// A browser: keeps the session cookie, never follows redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
pub fn pkce() -> (String, String) {
    use aws_lc_rs::digest::{digest, SHA256};
    let bytes: [u8; 32] = aws_lc_rs::rand::generate(&aws_lc_rs::rand::SystemRandom::new())
        .unwrap()
        .expose();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()).as_ref());
    (verifier, challenge)
}

/// The value of the hidden input `name` in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The query parameters of a redirect.
pub fn query(location: &str) -> Vec<(String, String)> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// One parameter of [`query`]'s answer.
pub fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// One parameter of a response's `Location`.
pub fn location_param(response: &reqwest::Response, name: &str) -> Option<String> {
    let location = response.headers().get("location")?.to_str().ok()?;
    param(&query(location), name)
}

/// Posts the login form of the login page `page` to `authorize` as alice;
/// returns the next page's HTML (the consent page, usually).
pub async fn log_in_as_alice(browser: &reqwest::Client, authorize: &str, page: &str) -> String {
    browser
        .post(authorize)
        .form(&[
            ("step", "login"),
            ("pending", &hidden(page, "pending")),
            ("csrf", &hidden(page, "csrf")),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Posts `decision` (`allow` or `deny`) on the consent page `consent`;
/// returns the answer (a 303 to the client).
pub async fn decide(
    browser: &reqwest::Client,
    authorize: &str,
    consent: &str,
    decision: &str,
) -> reqwest::Response {
    browser
        .post(authorize)
        .form(&[
            ("step", "consent"),
            ("pending", &hidden(consent, "pending")),
            ("csrf", &hidden(consent, "csrf")),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap()
}
