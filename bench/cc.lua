-- wrk script: OAuth client_credentials token requests (RFC 6749 §4.4) with
-- HTTP Basic client authentication (client_secret_basic).
--
--   BASIC=$(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0) \
--     wrk -t2 -c64 -d20s -s bench/cc.lua http://127.0.0.1:PORT/token
--
-- Optional: SCOPE (default "read"); BODY replaces the whole form body (the
-- exchange scenario posts a fixed token exchange request).
--
-- Prints one machine-readable line at the end:
--   RESULT requests=… rps=… p50_ms=… p99_ms=… max_ms=… non2xx=… errors=…
-- non2xx counts every response whose status is not 2xx (wrk's own counter
-- only sees statuses >= 400); errors counts socket errors (connect, read,
-- write, timeout). A run with non2xx > 0 is not a valid throughput figure:
-- an error answer is cheaper than a token.

local basic = os.getenv("BASIC")
assert(basic and #basic > 0, "set BASIC to base64(client_id:client_secret)")
local scope = os.getenv("SCOPE") or "read"

wrk.method = "POST"
wrk.body = os.getenv("BODY") or ("grant_type=client_credentials&scope=" .. scope)
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. basic
wrk.headers["Accept"] = "application/json"

-- setup/done run in the main Lua state; request/response run in one state
-- per thread, so each thread counts for itself and done() adds them up.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

non2xx = 0
first_bad = ""

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200)
    end
  end
end

function done(summary, latency, requests)
  local bad = 0
  local sample = ""
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    local s = thread:get("first_bad") or ""
    if sample == "" and s ~= "" then sample = s end
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    bad, socket_errors))
  if sample ~= "" then
    io.write("FIRST_NON2XX " .. string.gsub(sample, "\n", " ") .. "\n")
  end
end
