// custos driven by panva's oauth4webapi: discovery, RFC 7591 registration,
// client_credentials with client_secret_basic, client_secret_post and
// private_key_jwt, RFC 9068 validation as a resource server would do it,
// RFC 8707 resource indicators, RFC 7662 introspection, RFC 7009 revocation;
// the authorization code flow (PKCE, RFC 9207 iss checked by
// validateAuthResponse, refresh rotation) with a person's browser played by
// fetch; DPoP (RFC 9449) with oauth4webapi's DPoP handle, for
// client_credentials and the code flow, checked by oauth4webapi's own
// resource-server validation; and server nonces (use_dpop_nonce) against a
// second custos with CUSTOS_DPOP_NONCE=true.
//
// Run by tests/interop/run.sh with CUSTOS_TEST_URL and CUSTOS_TEST_ADMIN_TOKEN
// (and CUSTOS_TEST_NONCE_URL for the nonce check, skipped without it).
// Prints one line per check and a closing "N passed, N failed" line; exits
// non-zero if any check failed.
import * as oauth from 'oauth4webapi'
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'

const base = process.env.CUSTOS_TEST_URL
const adminToken = process.env.CUSTOS_TEST_ADMIN_TOKEN
const nonceBase = process.env.CUSTOS_TEST_NONCE_URL
if (!base || !adminToken) {
  console.error('set CUSTOS_TEST_URL and CUSTOS_TEST_ADMIN_TOKEN')
  process.exit(2)
}
// custos runs on plain http on loopback in tests.
const insecure = { [oauth.allowInsecureRequests]: true }
const CC = 'client_credentials'

let passed = 0
let failed = 0
async function check(name, fn) {
  try {
    await fn()
    passed++
    console.log(`ok - oauth4webapi: ${name}`)
  } catch (err) {
    failed++
    console.log(`not ok - oauth4webapi: ${name}`)
    console.log(err)
  }
}

const issuer = new URL(base)
let as
async function register(metadata) {
  const response = await fetch(as.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ client_name: `o4w-${randomUUID().slice(0, 8)}`, ...metadata }),
  })
  assert.equal(response.status, 201, await response.clone().text())
  return response.json()
}

async function token(client, auth, parameters = {}) {
  const response = await oauth.clientCredentialsGrantRequest(as, client, auth, parameters, insecure)
  return oauth.processClientCredentialsResponse(as, client, response)
}

// A resource server's view: RFC 6750 header + RFC 9068 validation, keys
// from the discovered jwks_uri.
async function validate(accessToken, audience) {
  const request = new Request('https://rs.interop.example/api', {
    headers: { authorization: `Bearer ${accessToken}` },
  })
  return oauth.validateJwtAccessToken(as, request, audience, insecure)
}

async function introspect(client, auth, accessToken) {
  const response = await oauth.introspectionRequest(as, client, auth, accessToken, insecure)
  return oauth.processIntrospectionResponse(as, client, response)
}

async function revoke(client, auth, accessToken) {
  const response = await oauth.revocationRequest(as, client, auth, accessToken, insecure)
  return oauth.processRevocationResponse(response)
}

async function expectOAuthError(promise, code, status) {
  try {
    await promise
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) {
      assert.equal(err.error, code)
      if (status) assert.equal(err.status, status)
      return
    }
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      // A 401 with a challenge; the body still carries the OAuth error.
      if (status) assert.equal(err.status, status)
      const body = await err.response.json()
      assert.equal(body.error, code)
      return
    }
    throw err
  }
  assert.fail(`expected ${code}`)
}

await check('RFC 8414 discovery', async () => {
  const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure })
  as = await oauth.processDiscoveryResponse(issuer, response)
  assert.ok(as.token_endpoint && as.registration_endpoint && as.jwks_uri)
  assert.ok(as.grant_types_supported.includes(CC))
})
if (!as) {
  console.log(`0 passed, ${failed} failed`)
  process.exit(1)
}

await check('client_secret_basic: token, RFC 9068 validation, introspection, revocation', async () => {
  const reg = await register({ grant_types: [CC], scope: 'read write', token_endpoint_auth_method: 'client_secret_basic' })
  const client = { client_id: reg.client_id }
  const auth = oauth.ClientSecretBasic(reg.client_secret)
  const result = await token(client, auth, { scope: 'read' })
  assert.equal(result.token_type, 'bearer') // oauth4webapi lower-cases it
  assert.equal(result.scope, 'read')
  const claims = await validate(result.access_token, as.issuer)
  assert.equal(claims.client_id, reg.client_id)
  assert.equal(claims.sub, reg.client_id)
  assert.equal(claims.scope, 'read')
  const info = await introspect(client, auth, result.access_token)
  assert.equal(info.active, true)
  assert.equal(info.client_id, reg.client_id)
  assert.equal(info.jti, claims.jti)
  await revoke(client, auth, result.access_token)
  const after = await introspect(client, auth, result.access_token)
  assert.deepEqual(after, { active: false })
})

await check('client_secret_post: token and introspection', async () => {
  const reg = await register({ grant_types: [CC], scope: 'read', token_endpoint_auth_method: 'client_secret_post' })
  const client = { client_id: reg.client_id }
  const auth = oauth.ClientSecretPost(reg.client_secret)
  const result = await token(client, auth)
  assert.equal(result.scope, 'read')
  await validate(result.access_token, as.issuer)
  assert.equal((await introspect(client, auth, result.access_token)).active, true)
  await revoke(client, auth, result.access_token)
  assert.equal((await introspect(client, auth, result.access_token)).active, false)
})

await check('private_key_jwt (ES256, aud = issuer): token, introspection, revocation', async () => {
  const { privateKey, publicKey } = await oauth.generateKeyPair('ES256', { extractable: true })
  const kid = randomUUID()
  const jwk = { ...(await crypto.subtle.exportKey('jwk', publicKey)), kid, use: 'sig', alg: 'ES256' }
  delete jwk.key_ops
  delete jwk.ext
  const reg = await register({ grant_types: [CC], scope: 'read', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } })
  assert.equal(reg.client_secret, undefined)
  const client = { client_id: reg.client_id }
  const auth = oauth.PrivateKeyJwt({ key: privateKey, kid })
  const result = await token(client, auth)
  await validate(result.access_token, as.issuer)
  // Each call signs a new assertion (new jti): all accepted.
  await token(client, auth)
  assert.equal((await introspect(client, auth, result.access_token)).active, true)
  await revoke(client, auth, result.access_token)
  assert.equal((await introspect(client, auth, result.access_token)).active, false)
})

await check('RFC 8707 resource indicator sets aud; unregistered is invalid_target', async () => {
  const uri = `https://o4w-${randomUUID().slice(0, 8)}.interop.example/`
  const created = await fetch(new URL('admin/resources', as.issuer + '/'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ uri, scopes: ['read'] }),
  })
  assert.equal(created.status, 201, await created.clone().text())
  const reg = await register({ grant_types: [CC], scope: 'read', token_endpoint_auth_method: 'client_secret_basic' })
  const client = { client_id: reg.client_id }
  const auth = oauth.ClientSecretBasic(reg.client_secret)
  const result = await token(client, auth, { scope: 'read', resource: uri })
  const claims = await validate(result.access_token, uri)
  assert.equal(claims.aud, uri)
  await assert.rejects(validate(result.access_token, as.issuer))
  await expectOAuthError(token(client, auth, { resource: 'https://unregistered.interop.example/' }), 'invalid_target', 400)
  await expectOAuthError(token(client, auth, { scope: 'admin' }), 'invalid_scope', 400)
})

await check('wrong secret is invalid_client (401)', async () => {
  const reg = await register({ grant_types: [CC], token_endpoint_auth_method: 'client_secret_basic' })
  const client = { client_id: reg.client_id }
  await expectOAuthError(token(client, oauth.ClientSecretBasic('wrong')), 'invalid_client', 401)
})

// ------------------------------------------------ authorization code flow

const PASSWORD = 'correct horse battery staple'
const LOOPBACK = 'http://127.0.0.1/callback' // RFC 8252 section 7.3: any port
const LOOPBACK_AT_PORT = 'http://127.0.0.1:49200/callback'

async function createPerson(server) {
  const username = `o4w-${randomUUID().slice(0, 8)}`
  const response = await fetch(new URL('admin/users', server.issuer + '/'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ username, password: PASSWORD }),
  })
  assert.equal(response.status, 201, await response.clone().text())
  return username
}

function unescapeHtml(text) {
  return text
    .replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#([0-9]+);/g, (_, dec) => String.fromCodePoint(parseInt(dec, 10)))
    .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')
}

// The page's one POST form: its action and hidden fields.
function pageForm(html) {
  const action = /<form[^>]*method="post"[^>]*action="([^"]*)"/i.exec(html)
  assert.ok(action, html)
  const fields = {}
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) {
    fields[name] = unescapeHtml(value)
  }
  return { action: unescapeHtml(action[1]), fields }
}

// A person's browser: cookies kept, redirects not followed; logs in,
// consents (or denies), returns the URL the 303 sends the browser to.
async function browse(url, username, decision = 'allow') {
  const jar = new Map()
  const send = async (target, init = {}) => {
    const headers = new Headers(init.headers)
    if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '))
    const response = await fetch(target, { ...init, headers, redirect: 'manual' })
    for (const cookie of response.headers.getSetCookie()) {
      const pair = cookie.split(';')[0]
      const at = pair.indexOf('=')
      jar.set(pair.slice(0, at).trim(), pair.slice(at + 1))
    }
    return response
  }
  let page = new URL(url)
  let response = await send(page)
  for (let step = 0; step < 3 && response.status === 200; step++) {
    const { action, fields } = pageForm(await response.text())
    const body = new URLSearchParams(fields)
    if (fields.step === 'login') {
      body.set('username', username)
      body.set('password', PASSWORD)
    } else {
      assert.equal(fields.step, 'consent')
      body.set('decision', decision)
    }
    page = new URL(action, page)
    response = await send(page, { method: 'POST', body })
  }
  assert.equal(response.status, 303, 'RFC 9700 section 4.12: 303')
  return new URL(response.headers.get('location'))
}

async function discover(base) {
  const url = new URL(base)
  const response = await oauth.discoveryRequest(url, { algorithm: 'oauth2', ...insecure })
  return oauth.processDiscoveryResponse(url, response)
}

async function registerAt(server, metadata) {
  const response = await fetch(server.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ client_name: `o4w-${randomUUID().slice(0, 8)}`, ...metadata }),
  })
  assert.equal(response.status, 201, await response.clone().text())
  return response.json()
}

// Front channel with PKCE; the callback checked by validateAuthResponse
// (state, and iss since the metadata says authorization_response_iss_parameter_supported).
async function authorizationCode(server, client, person, extra = {}) {
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const url = new URL(server.authorization_endpoint)
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: LOOPBACK_AT_PORT,
    scope: 'read',
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...extra,
  })
  const callback = await browse(url, person)
  assert.equal(callback.searchParams.get('iss'), server.issuer)
  const params = oauth.validateAuthResponse(server, client, callback, state)
  return { params, verifier, callback, state }
}

// Retries once on use_dpop_nonce, as oauth4webapi's docs say a client
// should (the DPoP handle has cached the nonce from the error response).
async function withNonceRetry(request) {
  try {
    return { result: await request(), retried: false }
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) {
      return { result: await request(), retried: true }
    }
    throw err
  }
}

function payload(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString())
}

// RFC 7638 thumbprint computed with node:crypto only (a second opinion).
async function thumbprint(publicKey) {
  const jwk = await crypto.subtle.exportKey('jwk', publicKey)
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
  return createHash('sha256').update(canonical).digest('base64url')
}

// A resource server's view of a DPoP request: oauth4webapi builds the
// request (protectedResourceRequest with the DPoP handle: proof with ath),
// a custom fetch hands it to validateJwtAccessToken, which checks the
// token, the proof and cnf.jkt.
async function validateAtResourceServer(server, accessToken, DPoP) {
  let claims
  const url = new URL('https://rs.interop.example/api')
  await oauth.protectedResourceRequest(accessToken, 'GET', url, new Headers(), null, {
    DPoP,
    [oauth.customFetch]: async (target, init) => {
      const request = new Request(target, init)
      claims = await oauth.validateJwtAccessToken(server, request, server.issuer, { ...insecure, requireDPoP: true })
      return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } })
    },
  })
  return claims
}

let person
await check('authorization code flow: public client, PKCE, RFC 9207 iss, refresh rotation, reuse revokes the family', async () => {
  person = await createPerson(as)
  const reg = await register({ grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', redirect_uris: [LOOPBACK], scope: 'read write' })
  const client = { client_id: reg.client_id, token_endpoint_auth_method: 'none' }
  const auth = oauth.None()
  const { params, verifier } = await authorizationCode(as, client, person)
  const response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, verifier, insecure)
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, response)
  assert.equal(tokens.token_type, 'bearer')
  assert.equal(tokens.scope, 'read')
  const claims = await validate(tokens.access_token, as.issuer)
  assert.equal(claims.sub, person)
  assert.equal(claims.client_id, reg.client_id)
  const refresh = async (token) => oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, auth, token, insecure))
  const second = await refresh(tokens.refresh_token)
  const third = await refresh(second.refresh_token)
  assert.equal(new Set([tokens.refresh_token, second.refresh_token, third.refresh_token]).size, 3)
  await expectOAuthError(refresh(tokens.refresh_token), 'invalid_grant', 400)
  await expectOAuthError(refresh(third.refresh_token), 'invalid_grant', 400)
  // The code is single use.
  const again = await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, verifier, insecure)
  await expectOAuthError(oauth.processAuthorizationCodeResponse(as, client, again), 'invalid_grant', 400)
})

await check('authorization code flow: confidential client (client_secret_basic), wrong verifier is invalid_grant', async () => {
  const reg = await register({ grant_types: ['authorization_code', 'refresh_token'], redirect_uris: [LOOPBACK], scope: 'read' })
  const client = { client_id: reg.client_id }
  const auth = oauth.ClientSecretBasic(reg.client_secret)
  let { params } = await authorizationCode(as, client, person)
  let response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, oauth.generateRandomCodeVerifier(), insecure)
  await expectOAuthError(oauth.processAuthorizationCodeResponse(as, client, response), 'invalid_grant', 400)
  const flow = await authorizationCode(as, client, person)
  response = await oauth.authorizationCodeGrantRequest(as, client, auth, flow.params, LOOPBACK_AT_PORT, flow.verifier, insecure)
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, response)
  assert.equal((await validate(tokens.access_token, as.issuer)).sub, person)
  const refreshed = await oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, insecure))
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token)
  assert.equal((await introspect(client, auth, refreshed.access_token)).active, true)
})

await check('RFC 9207: validateAuthResponse refuses another iss; errors (no PKCE) carry iss', async () => {
  const reg = await register({ grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: [LOOPBACK], scope: 'read' })
  const client = { client_id: reg.client_id, token_endpoint_auth_method: 'none' }
  const { callback, state } = await authorizationCode(as, client, person)
  const forged = new URL(callback)
  forged.searchParams.set('iss', 'https://attacker.interop.example')
  assert.throws(() => oauth.validateAuthResponse(as, client, forged, state), (err) => err.code === 'OAUTH_INVALID_RESPONSE')
  const url = new URL(as.authorization_endpoint)
  url.search = new URLSearchParams({ response_type: 'code', client_id: reg.client_id, redirect_uri: LOOPBACK_AT_PORT, state: 'no-pkce' })
  const response = await fetch(url, { redirect: 'manual' })
  assert.equal(response.status, 303)
  const location = new URL(response.headers.get('location'))
  assert.throws(
    () => oauth.validateAuthResponse(as, client, location, 'no-pkce'),
    (err) => err instanceof oauth.AuthorizationResponseError && err.error === 'invalid_request',
  )
})

// ------------------------------------------------------------------- DPoP

await check('DPoP client_credentials: token_type DPoP, cnf.jkt the key thumbprint, validated with a proof at a resource server', async () => {
  const reg = await register({ grant_types: [CC], scope: 'read', token_endpoint_auth_method: 'client_secret_basic' })
  const client = { client_id: reg.client_id }
  const auth = oauth.ClientSecretBasic(reg.client_secret)
  const keyPair = await oauth.generateKeyPair('ES256')
  const DPoP = oauth.DPoP(client, keyPair)
  const response = await oauth.clientCredentialsGrantRequest(as, client, auth, {}, { DPoP, ...insecure })
  const result = await oauth.processClientCredentialsResponse(as, client, response)
  assert.equal(result.token_type, 'dpop')
  const jkt = await DPoP.calculateThumbprint()
  assert.equal(jkt, await thumbprint(keyPair.publicKey))
  assert.deepEqual(payload(result.access_token).cnf, { jkt })
  const claims = await validateAtResourceServer(as, result.access_token, DPoP)
  assert.equal(claims.client_id, reg.client_id)
  // Another key's proof does not fit the token.
  await assert.rejects(validateAtResourceServer(as, result.access_token, oauth.DPoP(client, await oauth.generateKeyPair('ES256'))))
  const info = await introspect(client, auth, result.access_token)
  assert.equal(info.token_type, 'DPoP')
  assert.deepEqual(info.cnf, { jkt })
})

await check('DPoP authorization code flow (dpop_jkt), refresh needs the key', async () => {
  const reg = await register({ grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', redirect_uris: [LOOPBACK], scope: 'read' })
  const client = { client_id: reg.client_id, token_endpoint_auth_method: 'none' }
  const auth = oauth.None()
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
  const jkt = await DPoP.calculateThumbprint()
  const { params, verifier } = await authorizationCode(as, client, person, { dpop_jkt: jkt })
  const response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, verifier, { DPoP, ...insecure })
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, response)
  assert.equal(tokens.token_type, 'dpop')
  assert.deepEqual(payload(tokens.access_token).cnf, { jkt })
  assert.equal((await validateAtResourceServer(as, tokens.access_token, DPoP)).sub, person)
  const bearer = await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, insecure)
  await expectOAuthError(oauth.processRefreshTokenResponse(as, client, bearer), 'invalid_grant', 400)
  const refreshed = await oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, { DPoP, ...insecure }))
  assert.equal(refreshed.token_type, 'dpop')
  assert.deepEqual(payload(refreshed.access_token).cnf, { jkt })
})

// Pushed authorization requests (RFC 9126): the request goes to /par, the
// browser carries only client_id and request_uri.
async function pushedCode(server, client, auth, person, options = {}, extra = {}) {
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const response = await oauth.pushedAuthorizationRequest(server, client, auth, {
    response_type: 'code',
    redirect_uri: LOOPBACK_AT_PORT,
    scope: 'read',
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...extra,
  }, { ...options, ...insecure })
  const pushed = await oauth.processPushedAuthorizationResponse(server, client, response)
  assert.ok(pushed.request_uri.startsWith('urn:ietf:params:oauth:request_uri:'))
  assert.equal(typeof pushed.expires_in, 'number')
  const url = new URL(server.authorization_endpoint)
  url.search = new URLSearchParams({ client_id: client.client_id, request_uri: pushed.request_uri })
  const params = oauth.validateAuthResponse(server, client, await browse(url, person), state)
  return { params, verifier }
}

await check('PAR (RFC 9126): public client, request_uri in the browser; dpop_jkt pushed in the body binds the code (RFC 9449 section 10.1)', async () => {
  assert.ok(as.pushed_authorization_request_endpoint)
  const reg = await register({ grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', redirect_uris: [LOOPBACK], scope: 'read' })
  const client = { client_id: reg.client_id, token_endpoint_auth_method: 'none' }
  const auth = oauth.None()
  let { params, verifier } = await pushedCode(as, client, auth, person)
  const bearer = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, verifier, insecure))
  assert.equal(bearer.token_type, 'bearer')
  assert.equal((await validate(bearer.access_token, as.issuer)).sub, person)

  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
  ;({ params, verifier } = await pushedCode(as, client, auth, person, {}, { dpop_jkt: await DPoP.calculateThumbprint() }))
  const unbound = await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, verifier, insecure)
  await expectOAuthError(oauth.processAuthorizationCodeResponse(as, client, unbound), 'invalid_grant', 400)
  ;({ params, verifier } = await pushedCode(as, client, auth, person, {}, { dpop_jkt: await DPoP.calculateThumbprint() }))
  const bound = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, verifier, { DPoP, ...insecure }))
  assert.equal(bound.token_type, 'dpop')
})

await check('RFC 9449 section 10.1: a DPoP header on the PAR request (oauth4webapi attaches it) binds the code like dpop_jkt', async () => {
  const reg = await register({ grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: [LOOPBACK], scope: 'read' })
  const client = { client_id: reg.client_id, token_endpoint_auth_method: 'none' }
  const auth = oauth.None()
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
  let { params, verifier } = await pushedCode(as, client, auth, person, { DPoP })
  const unbound = await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, verifier, insecure)
  await expectOAuthError(oauth.processAuthorizationCodeResponse(as, client, unbound), 'invalid_grant', 400)
  ;({ params, verifier } = await pushedCode(as, client, auth, person, { DPoP }))
  const bound = await oauth.processAuthorizationCodeResponse(as, client, await oauth.authorizationCodeGrantRequest(as, client, auth, params, LOOPBACK_AT_PORT, verifier, { DPoP, ...insecure }))
  assert.equal(bound.token_type, 'dpop')
  assert.deepEqual(payload(bound.access_token).cnf, { jkt: await DPoP.calculateThumbprint() })
})

if (nonceBase) {
  await check('DPoP nonces (CUSTOS_DPOP_NONCE=true): use_dpop_nonce, isDPoPNonceError, one retry, for client_credentials, code and refresh', async () => {
    const server = await discover(nonceBase)
    const reg = await registerAt(server, { grant_types: [CC], scope: 'read', token_endpoint_auth_method: 'client_secret_basic' })
    const client = { client_id: reg.client_id }
    const auth = oauth.ClientSecretBasic(reg.client_secret)
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
    const grant = async () => oauth.processClientCredentialsResponse(server, client, await oauth.clientCredentialsGrantRequest(server, client, auth, {}, { DPoP, ...insecure }))
    const first = await withNonceRetry(grant)
    assert.equal(first.retried, true, 'the first proof has no nonce: use_dpop_nonce')
    assert.equal(first.result.token_type, 'dpop')
    const second = await withNonceRetry(grant)
    assert.equal(second.retried, false, 'the cached nonce is current')

    const pub = await registerAt(server, { grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', redirect_uris: [LOOPBACK], scope: 'read' })
    const publicClient = { client_id: pub.client_id, token_endpoint_auth_method: 'none' }
    const handle = oauth.DPoP(publicClient, await oauth.generateKeyPair('ES256'))
    const someone = await createPerson(server)
    const { params, verifier } = await authorizationCode(server, publicClient, someone, { dpop_jkt: await handle.calculateThumbprint() })
    const code = await withNonceRetry(async () => oauth.processAuthorizationCodeResponse(server, publicClient,
      await oauth.authorizationCodeGrantRequest(server, publicClient, oauth.None(), params, LOOPBACK_AT_PORT, verifier, { DPoP: handle, ...insecure })))
    assert.equal(code.retried, true)
    assert.equal(code.result.token_type, 'dpop')
    const refreshed = await withNonceRetry(async () => oauth.processRefreshTokenResponse(server, publicClient,
      await oauth.refreshTokenGrantRequest(server, publicClient, oauth.None(), code.result.refresh_token, { DPoP: handle, ...insecure })))
    assert.equal(refreshed.result.token_type, 'dpop')
    assert.notEqual(refreshed.result.refresh_token, code.result.refresh_token)
  })
} else {
  console.log('# oauth4webapi: CUSTOS_TEST_NONCE_URL not set; DPoP nonce check skipped')
}

console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
