-- wrk script for the sidecar-proxy benchmark (scripts/bench-proxy.sh): every request POSTs the
-- same small payment as JSON on a keep-alive connection, with the agent named in x-aegis-agent,
-- to whichever URL wrk is given (the upstream directly, the aegis route, the nginx proxy). The
-- header is sent on every path so that the requests are byte for byte the same.
--
-- WRK_DELAY_MS=n makes each connection wait n ms after every response before sending the next
-- request (wrk's delay() hook): a fixed, modest rate of about connections * 1000 / (n + latency)
-- requests/s for the latency runs. wrk times each request from when it starts writing it.
--
-- done() prints one machine-readable line that bench-proxy.sh parses:
--   wrk-result requests=N seconds=S rps=R p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
--              errors=E non2xx=N

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-aegis-agent"] = "bench-agent"
wrk.body = '{"amount":100,"currency":"usd"}'

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  -- No response() hook: it would hand every response to Lua and slow wrk down. wrk counts
  -- statuses >= 400 itself (errors.status); the script checks 200 before measuring.
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "wrk-result requests=%d seconds=%.3f rps=%.0f p50_us=%d p90_us=%d p99_us=%d p999_us=%d " ..
    "max_us=%d errors=%d non2xx=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
