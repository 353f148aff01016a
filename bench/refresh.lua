-- wrk script: the refresh token grant with rotation (RFC 6749 §6,
-- draft-ietf-oauth-v2-1 §4.3) for a public client: every answer carries a
-- new refresh token, which goes back into the thread's pool for a later
-- request; the presented one is used up.
--
--   TOKENS=/tmp/tokens CLIENT_ID=… THREADS=2 \
--     wrk -t2 -c64 -d20s -s bench/refresh.lua http://127.0.0.1:PORT/token
--
-- TOKENS is a file with one refresh token per line (of different
-- authorizations; bench/codeflow.py makes them): line i goes to thread
-- (i - 1) % THREADS. A thread needs one token per connection, plus one:
-- wrk calls request() once before the run to check it.
--
-- Prints one machine-readable line at the end:
--   RESULT requests=… rps=… p50_ms=… p99_ms=… max_ms=… non2xx=… errors=…
--          fail=… lost=… starved=…
-- non2xx counts responses whose status is not 2xx; lost counts answers
-- that brought no new refresh token back (non-2xx or no refresh_token in
-- the body); starved counts requests sent while the thread's pool was
-- empty (they carry no valid token and are refused). fail = non2xx + 2xx
-- answers without a new token: any fail makes the run invalid.

local tokens_file = os.getenv("TOKENS")
assert(tokens_file and #tokens_file > 0, "set TOKENS to a file of refresh tokens")
local client_id = os.getenv("CLIENT_ID")
assert(client_id and #client_id > 0, "set CLIENT_ID to the public client's id")
local nthreads = tonumber(os.getenv("THREADS") or "")
assert(nthreads and nthreads > 0, "set THREADS to wrk's -t")

-- Percent-encodes what is not unreserved (RFC 3986 §2.3).
local function enc(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local prefix = "grant_type=refresh_token&client_id=" .. enc(client_id) .. "&refresh_token="
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Accept"] = "application/json",
}

-- setup/done run in the main Lua state; init/request/response run in one
-- state per thread, so each thread counts for itself and done() adds up.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local pool = {}
local n = 0

function init(args)
  local i = 0
  for line in io.lines(tokens_file) do
    if line ~= "" then
      if i % nthreads == id then
        n = n + 1
        pool[n] = line
      end
      i = i + 1
    end
  end
  initial = n
end

non2xx = 0
lost = 0
starved = 0
first_bad = ""

function request()
  local token
  if n > 0 then
    token = pool[n]
    pool[n] = nil
    n = n - 1
  else
    starved = starved + 1
    token = "starved"
  end
  return wrk.format("POST", nil, headers, prefix .. enc(token))
end

function response(status, _, body)
  local ok = status >= 200 and status <= 299
  local token = ok and string.match(body or "", '"refresh_token":%s*"([^"]+)"')
  if token then
    n = n + 1
    pool[n] = token
    return
  end
  lost = lost + 1
  if not ok then non2xx = non2xx + 1 end
  if first_bad == "" then
    first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200)
  end
end

function done(summary, latency, requests)
  local bad, gone, st, tokens = 0, 0, 0, 0
  local sample = ""
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    gone = gone + (thread:get("lost") or 0)
    st = st + (thread:get("starved") or 0)
    tokens = tokens + (thread:get("initial") or 0)
    local s = thread:get("first_bad") or ""
    if sample == "" and s ~= "" then sample = s end
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d errors=%d fail=%d lost=%d starved=%d tokens=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    bad, socket_errors, gone, gone, st, tokens))
  if sample ~= "" then
    io.write("FIRST_NON2XX " .. string.gsub(sample, "\n", " ") .. "\n")
  end
end
