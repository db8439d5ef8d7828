// The bundle the Node SDK's own tests run against: one rule per outcome the SDK must handle.

export const POLICY = `\
apiVersion: aegis/v1
kind: Policy
metadata: {name: sdk-node-test}
tools:
  stripe:
    actions:
      create_payment: {cost_usd: 0.01}
      refund: {cost_usd: 0.01}
  crm:
    actions:
      lookup_customer: {}
      export_all: {}
  search:
    actions:
      query: {}
  llm:
    actions:
      complete: {cost_usd: 0.001}
  weather:
    # One call per agent, then rate limited for about 1000 s.
    max_requests_per_second: 0.001
    burst: 1
    actions:
      forecast: {}
agents:
  finance-agent: {tools: [stripe, crm, search, llm, weather]}
  fail-agent: {tools: [stripe, crm, search, llm, weather]}
  token-agent: {tools: [search]}
  decorator-agent: {tools: [stripe, crm, search]}
  weather-agent: {tools: [weather]}
  budget-agent:
    tools: [llm]
    max_daily_budget_usd: 1
rules:
  - id: payment-ceiling
    match: {tools: [stripe], actions: [create_payment]}
    if: params.amount > 5000
    effect: approval_needed
    approval: {quorum: 1, ttl: 1h}
    message: Payments above $5,000 need an approver
  - id: large-refund
    match: {tools: [stripe], actions: [refund]}
    if: params.amount > 1000
    effect: approval_needed
    approval: {quorum: 1, ttl: 1s}
    message: Refunds above $1,000 need an approver within a second
  - id: payments
    match: {tools: [stripe]}
    effect: allow
  - id: crm-pii
    match: {tools: [crm], actions: [lookup_customer]}
    effect: sanitize
    redact: {fields: [params.ssn], detectors: [email]}
    message: Customer lookups go out without SSNs and e-mail addresses
  - id: no-bulk-export
    match: {tools: [crm], actions: [export_all]}
    effect: deny
    message: Bulk exports are not allowed
  - id: search-safe
    match: {tools: [search]}
    if: params.q != "forbidden"
    effect: allow
  - id: read-only-tools
    match: {tools: [llm, weather]}
    effect: allow
`;

// Tenant "lab" runs in shadow mode: decided and recorded, never enforced.
export const LAB = `\
apiVersion: aegis/v1
kind: Policy
metadata: {tenant: lab}
mode: shadow
`;

export const BUNDLE = { 'policy.yaml': POLICY, 'lab.yaml': LAB };
