-- wrk script: OAuth client_credentials token requests (RFC 6749 §4.4) with
-- HTTP Basic client authentication and a DPoP proof (RFC 9449) on every
-- request, so every access token is bound to the proof's key.
--
--   BASIC=$(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0) \
--   PROOFS=/tmp/proofs THREADS=2 \
--     wrk -t2 -c64 -d20s -s bench/dpop.lua http://127.0.0.1:PORT/token
--
-- PROOFS is the prefix of one file per wrk thread (PROOFS.0, PROOFS.1, …),
-- one proof per line, made ahead of the run by
-- crates/custos/examples/dpop_proofs.rs: each proof is used once, in order.
-- Optional: SCOPE (default "read").
--
-- Prints one machine-readable line at the end:
--   RESULT requests=… rps=… p50_ms=… p99_ms=… max_ms=… non2xx=… errors=…
--          fail=… unbound=… exhausted=…
-- non2xx counts responses whose status is not 2xx; unbound counts 2xx
-- answers whose token_type is not DPoP (the token is not bound); exhausted
-- counts requests sent after the thread's proofs ran out (they carry no
-- valid proof and are refused). fail = non2xx + unbound: any fail makes
-- the run invalid.

local basic = os.getenv("BASIC")
assert(basic and #basic > 0, "set BASIC to base64(client_id:client_secret)")
local proofs_prefix = os.getenv("PROOFS")
assert(proofs_prefix and #proofs_prefix > 0, "set PROOFS to the proof files' prefix")
local scope = os.getenv("SCOPE") or "read"

local body = "grant_type=client_credentials&scope=" .. scope
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic " .. basic,
  ["Accept"] = "application/json",
  ["DPoP"] = "",
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

local file

function init(args)
  local path = proofs_prefix .. "." .. tostring(id)
  file = assert(io.open(path, "r"), "cannot open " .. path)
end

non2xx = 0
unbound = 0
exhausted = 0
first_bad = ""

function request()
  local proof = file:read("*l")
  if proof == nil then
    exhausted = exhausted + 1
    proof = "exhausted"
  end
  headers["DPoP"] = proof
  return wrk.format("POST", nil, headers, body)
end

function response(status, _, resp_body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(resp_body or "", 1, 200)
    end
  elseif not string.find(resp_body or "", '"token_type":%s*"DPoP"') then
    unbound = unbound + 1
    if first_bad == "" then
      first_bad = "unbound " .. tostring(status) .. " " .. string.sub(resp_body or "", 1, 200)
    end
  end
end

function done(summary, latency, requests)
  local bad, nb, ex = 0, 0, 0
  local sample = ""
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    nb = nb + (thread:get("unbound") or 0)
    ex = ex + (thread:get("exhausted") or 0)
    local s = thread:get("first_bad") or ""
    if sample == "" and s ~= "" then sample = s end
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d errors=%d fail=%d unbound=%d exhausted=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    bad, socket_errors, bad + nb, nb, ex))
  if sample ~= "" then
    io.write("FIRST_NON2XX " .. string.gsub(sample, "\n", " ") .. "\n")
  end
end
