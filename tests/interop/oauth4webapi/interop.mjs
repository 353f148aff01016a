// custos driven by panva's oauth4webapi: discovery, RFC 7591 registration,
// client_credentials with client_secret_basic, client_secret_post and
// private_key_jwt, RFC 9068 validation as a resource server would do it,
// RFC 8707 resource indicators, RFC 7662 introspection, RFC 7009 revocation.
//
// Run by tests/interop/run.sh with CUSTOS_TEST_URL and CUSTOS_TEST_ADMIN_TOKEN.
// Prints one line per check and a closing "N passed, N failed" line; exits
// non-zero if any check failed.
import * as oauth from 'oauth4webapi'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'

const base = process.env.CUSTOS_TEST_URL
const adminToken = process.env.CUSTOS_TEST_ADMIN_TOKEN
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

console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
