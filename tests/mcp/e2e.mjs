// custos as the authorization server of an MCP server, end to end with the
// official MCP TypeScript SDK (@modelcontextprotocol/sdk) on both sides:
//
//   - the MCP server is the SDK's McpServer behind its Streamable HTTP
//     transport, protected by the SDK's requireBearerAuth (tokens checked
//     here with jose against custos's JWKS: RFC 9068 typ at+jwt, iss, aud =
//     the MCP server's URL, exp, scope) and advertising custos through the
//     SDK's RFC 9728 metadata router; one tool, `add`, which also reports
//     the token's client_id, sub, scopes and aud as the server saw them;
//   - the SDK's client finds custos by itself (401 -> resource metadata ->
//     authorization server metadata) and authorizes three ways:
//       A. client credentials with private_key_jwt (the SDK's
//          PrivateKeyJwtProvider), client registered with RFC 7591;
//       B. authorization code with PKCE, a pre-registered public client,
//          a person logging in and consenting on custos's pages (played by
//          fetch), transport.finishAuth(code); then a refresh through the
//          SDK when the access token stops working;
//       C. a Client ID Metadata Document served by this script: custos
//          fetches it, shows its host on the pages, issues to the URL.
//   then each calls the tool.
//
// Run by tests/mcp/run.sh with CUSTOS_TEST_URL and CUSTOS_TEST_ADMIN_TOKEN;
// custos must run with CUSTOS_ALLOW_PRIVATE_URLS=true (the document is on
// http://127.0.0.1). Prints one line per check and "N passed, N failed";
// exits non-zero if any check failed. MCP_E2E_VERBOSE=1 logs every request
// the SDK and this script send to custos.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'

import * as jose from 'jose'
import * as z from 'zod'

import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js'
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js'
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js'
import {
  mcpAuthMetadataRouter,
  getOAuthProtectedResourceMetadataUrl,
} from '@modelcontextprotocol/sdk/server/auth/router.js'
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js'

const base = process.env.CUSTOS_TEST_URL
const adminToken = process.env.CUSTOS_TEST_ADMIN_TOKEN
const verbose = process.env.MCP_E2E_VERBOSE === '1'
if (!base || !adminToken) {
  console.error('set CUSTOS_TEST_URL and CUSTOS_TEST_ADMIN_TOKEN (tests/mcp/run.sh does)')
  process.exit(2)
}

// Nothing here should take long; a hang is a failure, not a stuck CI job.
setTimeout(() => {
  console.log('not ok - mcp: did not finish within 180 s')
  process.exit(1)
}, 180_000).unref()

const SCOPE = 'mcp:tools'
const PASSWORD = 'correct horse battery staple'
// The SDK's exports map has no ./package.json: read it beside the entry point.
const sdkVersion = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.resolve('@modelcontextprotocol/sdk')), 'utf8'),
).version

let passed = 0
let failed = 0
async function check(name, fn) {
  try {
    await fn()
    passed++
    console.log(`ok - mcp: ${name}`)
    return true
  } catch (err) {
    failed++
    console.log(`not ok - mcp: ${name}`)
    console.log(err)
    return false
  }
}

// ------------------------------------------------------------ watching custos
//
// Everything anyone in this process sends to custos goes through the global
// fetch (the SDK's client, jose's JWKS fetch, this script): a 5xx from
// custos fails the run whatever the check said, and token requests are kept
// so the checks can look at what the SDK sent.
const custosOrigin = new URL(base).origin
const serverErrors = []
const tokenRequests = []
let tokenEndpoint = null
const realFetch = globalThis.fetch
globalThis.fetch = async (input, init = {}) => {
  const url = new URL(input instanceof Request ? input.url : String(input))
  const method = init.method ?? (input instanceof Request ? input.method : 'GET')
  if (url.origin === custosOrigin && tokenEndpoint && url.href === tokenEndpoint) {
    const body = init.body instanceof URLSearchParams ? init.body : new URLSearchParams(String(init.body ?? ''))
    tokenRequests.push({ params: Object.fromEntries(body), authorization: new Headers(init.headers).get('authorization') })
  }
  const response = await realFetch(input, init)
  if (url.origin === custosOrigin) {
    if (verbose) console.log(`  # ${method} ${url.href} -> ${response.status}`)
    if (response.status >= 500) {
      serverErrors.push(`${method} ${url.href} -> ${response.status}: ${(await response.clone().text()).slice(0, 300)}`)
    }
  }
  return response
}

function claims(jwt) {
  return { header: jose.decodeProtectedHeader(jwt), payload: jose.decodeJwt(jwt) }
}

function audiences(payload) {
  return Array.isArray(payload.aud) ? payload.aud : [payload.aud]
}

// ------------------------------------------------------------ custos set-up

const discovery = await (await fetch(new URL('/.well-known/oauth-authorization-server', base))).json()
const issuer = discovery.issuer
tokenEndpoint = discovery.token_endpoint
console.log(`# custos ${issuer}; @modelcontextprotocol/sdk ${sdkVersion}`)

async function admin(path, body) {
  const response = await fetch(new URL(`/admin/${path}`, issuer), {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  assert.equal(response.status, body === undefined ? 200 : 201, `${path}: ${response.status} ${text}`)
  return JSON.parse(text)
}

// RFC 7591 with the admin token as the initial access token.
async function register(metadata) {
  const response = await fetch(discovery.registration_endpoint, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: `mcp-e2e-${randomUUID().slice(0, 8)}`, ...metadata }),
  })
  const text = await response.text()
  assert.equal(response.status, 201, `registration: ${response.status} ${text}`)
  return JSON.parse(text)
}

// ------------------------------------------------------------ small servers

async function listen(handler) {
  const server = http.createServer(handler)
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  return { server, origin: `http://127.0.0.1:${server.address().port}` }
}

// The client's side: the Client ID Metadata Document (C) and a callback
// page (B and C register it; the browser below never follows the 303 to it,
// it reads the Location).
const documentFetches = []
let clientDocument = null
const clientSide = await listen((req, res) => {
  if (req.url === '/client.json' && clientDocument) {
    documentFetches.push({ method: req.method, accept: req.headers.accept, agent: req.headers['user-agent'] })
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' })
    res.end(JSON.stringify(clientDocument))
  } else if (req.url.startsWith('/callback')) {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('you may close this window')
  } else {
    res.writeHead(404)
    res.end()
  }
})
const callbackUrl = `${clientSide.origin}/callback`
const documentUrl = `${clientSide.origin}/client.json`

// The MCP server: bound first so its URL (the resource, the token audience)
// is known, then given the SDK's express app.
const mcpHttp = http.createServer()
await new Promise((resolve) => mcpHttp.listen(0, '127.0.0.1', resolve))
const mcpOrigin = `http://127.0.0.1:${mcpHttp.address().port}`
const mcpUrl = `${mcpOrigin}/mcp`
const resourceMetadataUrl = getOAuthProtectedResourceMetadataUrl(new URL(mcpUrl))

const jwks = jose.createRemoteJWKSet(new URL(discovery.jwks_uri))
const seenByServer = { unauthorized: 0, metadata: 0 }

// What an MCP server must check of a custos access token (docs/mcp.md).
const verifier = {
  async verifyAccessToken(token) {
    let verified
    try {
      verified = await jose.jwtVerify(token, jwks, {
        issuer,
        audience: mcpUrl,
        typ: 'at+jwt',
        algorithms: discovery.access_token_signing_alg_values_supported ?? ['ES256'],
        requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
      })
    } catch (err) {
      throw new InvalidTokenError(`access token refused: ${err.code ?? err.message}`)
    }
    const { payload } = verified
    return {
      token,
      clientId: payload.client_id,
      scopes: typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
      expiresAt: payload.exp,
      resource: new URL(mcpUrl),
      extra: { sub: payload.sub, aud: payload.aud, iss: payload.iss },
    }
  },
}

function mcpServer() {
  const server = new McpServer({ name: 'custos-e2e-mcp-server', version: '1.0.0' })
  server.registerTool(
    'add',
    {
      description: 'Adds two numbers; also says who called, as the access token says',
      inputSchema: { a: z.number(), b: z.number() },
      outputSchema: {
        sum: z.number(),
        client_id: z.string(),
        sub: z.string(),
        scopes: z.array(z.string()),
        aud: z.union([z.string(), z.array(z.string())]),
      },
    },
    async ({ a, b }, extra) => {
      const auth = extra.authInfo
      const result = {
        sum: a + b,
        client_id: auth.clientId,
        sub: auth.extra.sub,
        scopes: auth.scopes,
        aud: auth.extra.aud,
      }
      return { content: [{ type: 'text', text: String(a + b) }], structuredContent: result }
    },
  )
  return server
}

const app = createMcpExpressApp({ host: '127.0.0.1' })
app.use((req, res, next) => {
  if (req.path.startsWith('/.well-known/oauth-protected-resource')) seenByServer.metadata++
  res.on('finish', () => {
    if (res.statusCode === 401) seenByServer.unauthorized++
  })
  next()
})
app.use(
  mcpAuthMetadataRouter({
    oauthMetadata: discovery,
    resourceServerUrl: new URL(mcpUrl),
    scopesSupported: [SCOPE],
    resourceName: 'custos e2e MCP server',
  }),
)
const bearer = requireBearerAuth({
  verifier,
  requiredScopes: [SCOPE],
  resourceMetadataUrl,
  expectedResource: new URL(mcpUrl),
})
// Stateless Streamable HTTP: one server and transport per request.
app.post('/mcp', bearer, async (req, res) => {
  const server = mcpServer()
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
  res.on('close', () => {
    transport.close()
    server.close()
  })
  await server.connect(transport)
  await transport.handleRequest(req, res, req.body)
})
app.all('/mcp', bearer, (req, res) => {
  res.status(405).set('allow', 'POST').json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed' }, id: null })
})
mcpHttp.on('request', app)

console.log(`# MCP server ${mcpUrl}; client side ${clientSide.origin}`)

// ------------------------------------------------------------ a person's browser

function unescapeHtml(text) {
  return text
    .replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#([0-9]+);/g, (_, dec) => String.fromCodePoint(parseInt(dec, 10)))
    .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')
}

// The page's one POST form: its action, hidden fields and buttons.
function pageForm(html) {
  const forms = [...html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)].map((m) => m[0])
  assert.equal(forms.length, 1, `one form on the page:\n${html}`)
  const form = forms[0]
  assert.match(form, /<form[^>]*method="post"/i)
  const action = /<form[^>]*action="([^"]*)"/i.exec(form)
  assert.ok(action, form)
  const fields = {}
  for (const [input] of form.matchAll(/<input\b[^>]*>/gi)) {
    const name = /name="([^"]*)"/.exec(input)?.[1]
    if (name && /type="hidden"/.test(input)) fields[name] = unescapeHtml(/value="([^"]*)"/.exec(input)?.[1] ?? '')
  }
  const buttons = [...form.matchAll(/<button\b[^>]*name="([^"]+)"[^>]*value="([^"]*)"/gi)].map(([, n, v]) => `${n}=${v}`)
  return { action: unescapeHtml(action[1]), fields, buttons, inputs: form }
}

// Cookies kept, redirects not followed; logs in, consents, and returns the
// pages it saw and the URL of the final 303.
async function browse(url, username, decision = 'allow') {
  const jar = new Map()
  const pages = {}
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
    const html = await response.text()
    const { action, fields, buttons, inputs } = pageForm(html)
    assert.ok(fields.pending && fields.csrf, `hidden pending and csrf: ${inputs}`)
    const body = new URLSearchParams(fields)
    if (fields.step === 'login') {
      assert.match(inputs, /name="username"/)
      assert.match(inputs, /name="password"/)
      pages.login = html
      body.set('username', username)
      body.set('password', PASSWORD)
    } else {
      assert.equal(fields.step, 'consent', inputs)
      assert.ok(buttons.includes(`decision=${decision}`), `button decision=${decision}: ${inputs}`)
      pages.consent = html
      body.set('decision', decision)
    }
    const origin = page.origin
    page = new URL(action, page)
    response = await send(page, {
      method: 'POST',
      body,
      headers: { origin, 'sec-fetch-site': 'same-origin' },
    })
  }
  assert.equal(response.status, 303, `RFC 9700 section 4.12: a 303 to the client (got ${response.status}: ${(await response.text()).slice(0, 500)})`)
  assert.ok(jar.has('custos_session'), `custos_session cookie: ${[...jar.keys()]}`)
  return { location: new URL(response.headers.get('location')), pages }
}

// An OAuthClientProvider for a client with a person behind it (B, C): the
// SDK calls redirectToAuthorization, and the "browser" goes through
// custos's pages right away; the code waits for transport.finishAuth.
class PersonClientProvider {
  constructor({ username, clientInformation, clientMetadataUrl, clientName }) {
    this.username = username
    this._clientInformation = clientInformation
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl
    this._clientMetadata = {
      client_name: clientName,
      redirect_uris: [callbackUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: SCOPE,
    }
    this.redirects = []
  }
  get redirectUrl() {
    return callbackUrl
  }
  get clientMetadata() {
    return this._clientMetadata
  }
  clientInformation() {
    return this._clientInformation
  }
  saveClientInformation(info) {
    this._clientInformation = info
  }
  tokens() {
    return this._tokens
  }
  saveTokens(tokens) {
    this._tokens = tokens
  }
  state() {
    this._state = randomUUID()
    return this._state
  }
  saveCodeVerifier(verifier) {
    this._verifier = verifier
  }
  codeVerifier() {
    return this._verifier
  }
  async redirectToAuthorization(url) {
    const { location, pages } = await browse(url, this.username)
    this.redirects.push({ url: new URL(url), location, pages, state: this._state })
  }
}

// The redirect's parameters, checked as a client must (RFC 9207 iss,
// state); returns the code.
function codeFrom({ location, state }) {
  assert.equal(`${location.origin}${location.pathname}`, callbackUrl, 'the exact registered redirect_uri')
  const params = location.searchParams
  assert.equal(params.get('error'), null, `authorization error: ${location}`)
  assert.equal(params.get('iss'), issuer, 'RFC 9207 iss')
  assert.equal(params.get('state'), state, 'state returned')
  assert.ok(params.get('code'), 'code')
  return params.get('code')
}

async function callAdd(transport, a, b) {
  const client = new Client({ name: 'custos-e2e-client', version: '1.0.0' })
  await client.connect(transport)
  try {
    const tools = await client.listTools()
    assert.deepEqual(tools.tools.map((t) => t.name), ['add'])
    const result = await client.callTool({ name: 'add', arguments: { a, b } })
    assert.ok(!result.isError, JSON.stringify(result))
    assert.deepEqual(result.content, [{ type: 'text', text: String(a + b) }])
    assert.equal(result.structuredContent.sum, a + b)
    return result.structuredContent
  } finally {
    await client.close()
  }
}

// Authorization code through the SDK: connect (the SDK discovers custos,
// starts the authorization, the provider's browser logs in and consents),
// then finishAuth with the code and connect again.
async function authorizeAndCall(provider, a, b) {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider })
  const client = new Client({ name: 'custos-e2e-client', version: '1.0.0' })
  await assert.rejects(client.connect(transport), UnauthorizedError, 'first connect: the SDK redirects the person')
  assert.equal(provider.redirects.length, 1, 'one trip through the authorization endpoint')
  const redirect = provider.redirects[0]
  const asked = redirect.url.searchParams
  assert.equal(`${redirect.url.origin}${redirect.url.pathname}`, discovery.authorization_endpoint)
  assert.equal(asked.get('code_challenge_method'), 'S256')
  assert.equal(asked.get('resource'), mcpUrl, 'RFC 8707 resource from the resource metadata')
  assert.equal(asked.get('scope'), SCOPE, 'scope from WWW-Authenticate')
  const code = codeFrom(redirect)
  const before = tokenRequests.length
  await transport.finishAuth(code)
  const exchange = tokenRequests.slice(before)
  assert.equal(exchange.length, 1)
  assert.equal(exchange[0].params.grant_type, 'authorization_code')
  assert.ok(exchange[0].params.code_verifier, 'PKCE code_verifier sent')
  assert.equal(exchange[0].params.resource, mcpUrl)
  const result = await callAdd(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }), a, b)
  return { redirect, result }
}

// ------------------------------------------------------------ checks

let fatal = false
let person

await check('admin API: a person and the MCP server as a resource', async () => {
  const created = await admin('users', { username: `mcp-${randomUUID().slice(0, 8)}`, password: PASSWORD })
  person = created.username
  const resource = await admin('resources', { uri: mcpUrl, scopes: [SCOPE] })
  assert.equal(resource.uri ?? mcpUrl, mcpUrl)
}) || (fatal = true)

await check('the MCP server without a token: 401 with resource_metadata (RFC 9728), metadata names custos', async () => {
  const response = await fetch(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  })
  assert.equal(response.status, 401)
  const challenge = response.headers.get('www-authenticate')
  assert.match(challenge, /^Bearer /)
  assert.ok(challenge.includes(`resource_metadata="${resourceMetadataUrl}"`), challenge)
  const metadata = await (await fetch(resourceMetadataUrl)).json()
  assert.equal(metadata.resource, mcpUrl)
  assert.deepEqual(metadata.authorization_servers, [issuer])
  assert.equal(discovery.client_id_metadata_document_supported, true, 'discovery: client_id_metadata_document_supported')
  assert.ok(discovery.token_endpoint_auth_methods_supported.includes('private_key_jwt'))
}) || (fatal = true)

if (fatal) {
  console.log('set-up failed; stopping')
} else {
  // A: client credentials with private_key_jwt.
  await check('A. client credentials + private_key_jwt (SDK PrivateKeyJwtProvider): discovery, token, tool call', async () => {
    const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
    const kid = randomUUID()
    const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }
    const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'ES256' }
    const registered = await register({
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: ['client_credentials'],
      scope: SCOPE,
      jwks: { keys: [publicJwk] },
    })
    assert.equal(registered.token_endpoint_auth_method, 'private_key_jwt')
    assert.equal(registered.client_secret, undefined, 'no secret for private_key_jwt')

    const provider = new PrivateKeyJwtProvider({
      clientId: registered.client_id,
      privateKey: privateJwk,
      algorithm: 'ES256',
      scope: SCOPE,
      expectedIssuer: issuer,
    })
    const before = { ...seenByServer, tokens: tokenRequests.length }
    const result = await callAdd(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }), 2, 3)

    assert.ok(seenByServer.unauthorized > before.unauthorized, 'the SDK met the 401 first')
    assert.ok(seenByServer.metadata > before.metadata, 'the SDK read the protected resource metadata')
    const sent = tokenRequests.slice(before.tokens)
    assert.equal(sent.length, 1, 'one token request')
    const request = sent[0].params
    assert.equal(request.grant_type, 'client_credentials')
    assert.equal(request.client_assertion_type, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
    assert.equal(request.resource, mcpUrl, 'RFC 8707 resource')
    assert.equal(request.scope, SCOPE)
    const assertion = claims(request.client_assertion)
    assert.equal(assertion.header.alg, 'ES256')
    assert.equal(assertion.payload.iss, registered.client_id)
    assert.equal(assertion.payload.aud, issuer, 'the SDK addresses the assertion to the issuer')

    const token = claims(provider.tokens().access_token)
    assert.equal(token.header.typ, 'at+jwt')
    assert.equal(token.payload.iss, issuer)
    assert.deepEqual(audiences(token.payload), [mcpUrl])
    assert.equal(token.payload.client_id, registered.client_id)
    assert.equal(token.payload.scope, SCOPE)
    assert.equal(provider.tokens().refresh_token, undefined, 'no refresh token for client credentials')

    assert.equal(result.client_id, registered.client_id, 'the MCP server saw the client')
    assert.deepEqual(result.scopes, [SCOPE])
    assert.equal(result.aud, mcpUrl)
    console.log(`  # A: client ${registered.client_id}, sub ${token.payload.sub}`)
  })

  // B: authorization code + PKCE with a person, then a refresh.
  let providerB
  let tokensB
  await check('B. authorization code + PKCE, pre-registered public client, login and consent pages, finishAuth, tool call', async () => {
    const registered = await register({
      client_name: 'MCP e2e public client',
      redirect_uris: [callbackUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: SCOPE,
    })
    assert.equal(registered.client_secret, undefined)
    providerB = new PersonClientProvider({
      username: person,
      clientInformation: registered,
      clientName: 'MCP e2e public client',
    })
    const { redirect, result } = await authorizeAndCall(providerB, 40, 2)

    const consent = unescapeHtml(redirect.pages.consent ?? '')
    assert.ok(redirect.pages.login, 'the login page was shown')
    assert.ok(consent.includes('MCP e2e public client'), 'consent names the client')
    assert.ok(consent.includes(`<code>${SCOPE}</code>`), 'consent lists the scope')
    assert.ok(consent.includes(`<code>${mcpUrl}</code>`), 'consent lists the MCP server')
    assert.ok(!consent.includes('class="host"'), 'a registered client has no document host')

    tokensB = providerB.tokens()
    const token = claims(tokensB.access_token)
    assert.equal(token.header.typ, 'at+jwt')
    assert.deepEqual(audiences(token.payload), [mcpUrl])
    assert.equal(token.payload.client_id, registered.client_id)
    assert.equal(token.payload.scope, SCOPE)
    assert.ok(tokensB.refresh_token, 'a refresh token')
    assert.equal(providerB.clientInformation().issuer, issuer, 'the SDK bound the client information to custos')

    assert.equal(result.client_id, registered.client_id)
    assert.equal(result.sub, token.payload.sub)
    assert.notEqual(result.sub, registered.client_id, 'the token is for the person, not the client')
    assert.equal(result.aud, mcpUrl)
    console.log(`  # B: client ${registered.client_id}, person ${person} -> sub ${token.payload.sub}`)
  })

  await check('B. refresh through the SDK: an access token the MCP server refuses, the refresh token gets a new one', async () => {
    assert.ok(tokensB?.refresh_token, 'B gave a refresh token')
    providerB.saveTokens({ ...tokensB, access_token: 'not-a-token' })
    const before = tokenRequests.length
    const result = await callAdd(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: providerB }), 7, 8)
    const sent = tokenRequests.slice(before)
    assert.equal(sent.length, 1)
    assert.equal(sent[0].params.grant_type, 'refresh_token')
    assert.equal(sent[0].params.resource, mcpUrl)
    const refreshed = providerB.tokens()
    assert.notEqual(refreshed.access_token, tokensB.access_token)
    assert.notEqual(refreshed.refresh_token, tokensB.refresh_token, 'OAuth 2.1: a public client\'s refresh token rotates')
    assert.deepEqual(audiences(claims(refreshed.access_token).payload), [mcpUrl])
    assert.equal(result.sub, claims(tokensB.access_token).payload.sub)
    assert.equal(providerB.redirects.length, 1, 'no new trip to the authorization endpoint')
  })

  // C: Client ID Metadata Document.
  await check('C. the SDK refuses an http clientMetadataUrl (SEP-991 wants https), before any request to custos', async () => {
    const provider = new PersonClientProvider({
      username: person,
      clientMetadataUrl: documentUrl,
      clientName: 'MCP e2e document client',
    })
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider })
    const client = new Client({ name: 'custos-e2e-client', version: '1.0.0' })
    await assert.rejects(client.connect(transport), /clientMetadataUrl must be a valid HTTPS URL/)
    assert.equal(provider.redirects.length, 0)
  })

  await check('C. Client ID Metadata Document client (client_id = the URL): custos fetches it, shows its host, issues to it; tool call', async () => {
    clientDocument = {
      client_id: documentUrl,
      client_name: 'MCP e2e document client',
      redirect_uris: [callbackUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: SCOPE,
    }
    // The SDK only takes an https clientMetadataUrl; an http one on loopback
    // (what custos accepts with CUSTOS_ALLOW_PRIVATE_URLS) goes in as client
    // information whose client_id is the URL, which is what the SDK itself
    // would have made of an https one.
    const provider = new PersonClientProvider({
      username: person,
      clientInformation: { client_id: documentUrl },
      clientName: 'MCP e2e document client',
    })
    const fetchesBefore = documentFetches.length
    const { redirect, result } = await authorizeAndCall(provider, 20, 22)

    assert.ok(documentFetches.length > fetchesBefore, 'custos fetched the document')
    assert.equal(redirect.url.searchParams.get('client_id'), documentUrl)
    const login = redirect.pages.login ?? ''
    const consent = redirect.pages.consent ?? ''
    assert.ok(consent, 'the consent page was shown')
    assert.ok(consent.includes('<strong class="host">127.0.0.1</strong>'), 'consent shows the document host')
    assert.ok(login.includes('<strong class="host">127.0.0.1</strong>'), 'login shows the document host')
    assert.ok(unescapeHtml(consent).includes('MCP e2e document client'), 'consent names the client from the document')

    const token = claims(provider.tokens().access_token)
    assert.equal(token.header.typ, 'at+jwt')
    assert.equal(token.payload.client_id, documentUrl)
    assert.deepEqual(audiences(token.payload), [mcpUrl])
    assert.equal(token.payload.scope, SCOPE)
    assert.equal(result.client_id, documentUrl, 'the MCP server saw the document client')
    assert.equal(result.aud, mcpUrl)

    const inventory = await admin('clients')
    const listed = (Array.isArray(inventory) ? inventory : inventory.clients ?? []).find((c) => c.client_id === documentUrl)
    assert.ok(listed, 'the document client is in the inventory once something was issued to it')
    assert.equal(listed.client_id_metadata_document?.url, documentUrl)
    const fetched = documentFetches.slice(fetchesBefore)
    console.log(`  # C: client ${documentUrl}; custos fetched the document ${fetched.length} time(s): ${JSON.stringify(fetched)}`)
  })

  await check('a token for the MCP server is refused by the MCP server once tampered with (verifier sanity)', async () => {
    const good = providerB.tokens().access_token
    const [h, p, s] = good.split('.')
    const payload = JSON.parse(Buffer.from(p, 'base64url'))
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, scope: `${SCOPE} admin` })).toString('base64url')}.${s}`
    const response = await fetch(mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${forged}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    })
    assert.equal(response.status, 401)
    assert.match(response.headers.get('www-authenticate'), /error="invalid_token"/)
  })
}

await check('custos answered no request with a 5xx', async () => {
  assert.deepEqual(serverErrors, [])
})

mcpHttp.closeAllConnections()
clientSide.server.closeAllConnections()
await Promise.all([
  new Promise((resolve) => mcpHttp.close(resolve)),
  new Promise((resolve) => clientSide.server.close(resolve)),
])
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
