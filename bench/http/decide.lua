-- wrk script for the HTTP benchmark (scripts/bench-http.sh): every request POSTs the same ~1 KB
-- call JSON (keep-alive), to aegis's /v1/decide or to nginx's fixed response, whichever URL wrk
-- is given.
--
-- WRK_DELAY_MS=n makes each connection wait n ms after every response before sending the next
-- request (wrk's delay() hook): a fixed-rate load of about connections * 1000 / (n + latency)
-- requests/s, used for the "p99 at half the maximum rate" run since wrk2 is not packaged.
--
-- done() prints one machine-readable line that bench-http.sh parses:
--   wrk-result requests=N seconds=S rps=R p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
--              errors=E non2xx=N

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- A payment as an agent would send it: a few identifiers, a description, metadata. ~1 KB.
wrk.body = [[{"agent":"finance-agent","tool":"stripe","action":"create_payment",]] ..
  [["params":{"amount":120,"currency":"usd","customer":"cus_Q2x8Jm4TzK1aB9",]] ..
  [["payment_method":"pm_1PqRsT2eZvKYlo2C8xYzAbCd","confirm":true,]] ..
  [["description":"Invoice INV-2024-000871 for consulting services rendered in October: ]] ..
  [[architecture review, two workshops and the follow-up report with recommendations",]] ..
  [["statement_descriptor":"ACME CONSULTING","receipt_email":"accounts@example.com",]] ..
  [["metadata":{"invoice_id":"INV-2024-000871","order_id":"ORD-55102","project":"phoenix",]] ..
  [["cost_center":"CC-4410","requested_by":"finance-agent","approved_budget":"Q4-2024",]] ..
  [["trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",]] ..
  [["session":"sess_9f8e7d6c5b4a39281706f5e4d3c2b1a0","note":"recurring monthly retainer, ]] ..
  [[net 30, customer reference PO-77812, contact j.doe@example.com"},]] ..
  [["shipping":{"name":"ACME Corp","address":{"line1":"1 Main Street","line2":"Suite 400",]] ..
  [["city":"Springfield","postal_code":"12345","country":"US"}},]] ..
  [["idempotency_key":"inv-2024-000871-attempt-1"}}]]

-- WRK_TOKEN=t sends an agent token with every call (x-aegis-token), for scripts/bench-identity.sh.
local token = os.getenv("WRK_TOKEN")
if token and token ~= "" then
  wrk.headers["x-aegis-token"] = token
end

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  -- No response() hook: it would hand every response to Lua and slow wrk down. wrk counts
  -- statuses outside 2xx/3xx itself (errors.status).
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
