// Client: one agent's connection to Aegis. Asks for decisions (POST /v1/decide), waits for
// approvals (GET /v1/approvals/ID), settles usage (POST /v1/usage), keeps the agent token fresh,
// and keeps to its fail mode when Aegis cannot answer (reporting fail-open calls to
// POST /v1/fail-open). The same semantics as the Python SDK's aegis.Client.

import { randomUUID } from 'node:crypto';
import { Decision, Outcome } from './decision.js';
import { callDigest } from './digest.js';
import {
  AegisUnavailable, ApprovalDenied, ApprovalRequired, ApprovalTimeout,
  AuthenticationError, BudgetExceeded, ConfigurationError, InvalidCall, ParamsError, PolicyDenied,
  ProtocolError, RateLimited,
} from './errors.js';
import { encodeValue } from './params.js';
import { errorOf, issuerTokenProvider, jsonObject, TokenSource } from './token.js';
import { Transport, USER_AGENT } from './transport.js';

export const FAIL_CLOSED = 'fail_closed';
export const FAIL_OPEN = 'fail_open';
export const DEFAULT_URL = 'http://127.0.0.1:8181';
const MAX_REPORT = 1000; // calls per POST /v1/fail-open
const DECISIONS = new Set(['allow', 'deny', 'sanitize', 'approval_needed']);
const COUNTERS = ['decisions', 'allow', 'sanitize', 'deny', 'approvalNeeded', 'rateLimited',
  'budgetExceeded', 'unavailable', 'failOpenAllowed', 'failOpenRefused', 'failOpenReported',
  'failOpenReportRefused', 'failOpenDropped', 'tokenRefreshes', 'reconnects', 'usageReported',
  'usageErrors'];
const OUTCOME_COUNTER = {
  [Outcome.ALLOW]: 'allow',
  [Outcome.SANITIZE]: 'sanitize',
  [Outcome.DENY]: 'deny',
  [Outcome.APPROVAL_NEEDED]: 'approvalNeeded',
  [Outcome.RATE_LIMITED]: 'rateLimited',
  [Outcome.BUDGET_EXCEEDED]: 'budgetExceeded',
};

/**
 * Client options from the environment, as the Python SDK reads it (same variables, seconds):
 * AEGIS_URL, AEGIS_AGENT_TOKEN, AEGIS_AGENT, AEGIS_TENANT, AEGIS_TIMEOUT, AEGIS_FAIL_MODE,
 * AEGIS_FAIL_OPEN_TTL, AEGIS_TOKEN_REFRESH_MARGIN, AEGIS_APPROVAL_POLL_INTERVAL; and
 * AEGIS_ISSUER_CREDENTIAL (with AEGIS_AGENT, AEGIS_TENANT, AEGIS_TOKEN_TTL) for tokens minted by
 * an issuerTokenProvider. `overrides` (Client options) win over the environment.
 */
export function optionsFromEnv(overrides = {}, env = process.env) {
  const o = {};
  const seconds = (name) => {
    const v = env[name];
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) {
      throw new ConfigurationError(`aegis: ${name}=${JSON.stringify(v)} is not a number`);
    }
    return n * 1000;
  };
  const table = [['url', 'AEGIS_URL'], ['agentToken', 'AEGIS_AGENT_TOKEN'], ['agent', 'AEGIS_AGENT'],
    ['tenant', 'AEGIS_TENANT'], ['failMode', 'AEGIS_FAIL_MODE']];
  for (const [key, name] of table) if (env[name]) o[key] = env[name];
  const times = [['timeoutMs', 'AEGIS_TIMEOUT'], ['failOpenTtlMs', 'AEGIS_FAIL_OPEN_TTL'],
    ['tokenRefreshMarginMs', 'AEGIS_TOKEN_REFRESH_MARGIN'],
    ['approvalPollMs', 'AEGIS_APPROVAL_POLL_INTERVAL']];
  for (const [key, name] of times) if (env[name]) o[key] = seconds(name);
  const credential = env.AEGIS_ISSUER_CREDENTIAL;
  if (credential && !o.agentToken && !('tokenProvider' in overrides) &&
      !('agentToken' in overrides)) {
    const agent = overrides.agent ?? o.agent;
    if (!agent) throw new ConfigurationError('aegis: AEGIS_ISSUER_CREDENTIAL needs AEGIS_AGENT');
    const ttl = env.AEGIS_TOKEN_TTL;
    o.tokenProvider = issuerTokenProvider({
      url: overrides.url ?? o.url ?? DEFAULT_URL, credential, agent,
      tenant: overrides.tenant ?? o.tenant, ttlSeconds: ttl ? Number(ttl) : undefined });
  }
  if ('tokenProvider' in overrides) delete o.agentToken;
  if ('agentToken' in overrides) delete o.tokenProvider;
  return { ...o, ...overrides };
}

/**
 * A connection to one Aegis gateway, for one agent.
 *
 *   url                   Aegis's HTTP listener (default http://127.0.0.1:8181).
 *   agentToken            the agent's token (x-aegis-token); or
 *   tokenProvider         a function returning a fresh token (or a Promise of one), called before
 *                         the current one expires (issuerTokenProvider mints them).
 *   agent, tenant         named in every call; with a token they may be left out.
 *   timeoutMs             for connecting and each answer (default 2000).
 *   failMode              'fail_closed' (default): no answer throws AegisUnavailable.
 *                         'fail_open': a (tool, action) this agent was recently allowed
 *                         unconditionally runs anyway and is reported to Aegis once it answers
 *                         again; others throw.
 *   failOpenTtlMs         how long an unconditional allow keeps its pair on the fail-open
 *                         allowlist (default 300000).
 *   tokenRefreshMarginMs  refresh this long before expiry, at most half the token's life
 *                         (default 30000).
 *   approvalPollMs        between polls of an approval (default 1000).
 *   maxFailOpenQueue      fail-open calls kept for reporting; beyond that the oldest are dropped
 *                         (counted as failOpenDropped). Default 10000.
 *   failOpenFlushMs       how often queued fail-open calls are offered to Aegis while it is away
 *                         (default 5000; they are also sent after its next answer).
 *   now                   a clock in ms (tests).
 *
 * new Client(options) takes the options as given; Client.fromEnv(options) and configure() fill in
 * the rest from the environment. Methods may be called concurrently; connections are kept alive
 * and reused.
 */
export class Client {
  #transport;
  #tokens;
  #counts = Object.fromEntries(COUNTERS.map((k) => [k, 0]));
  #allowedAt = new Map();
  #refusedAt = new Map();
  #queue = []; // [{id, call}]
  #queuedById = new Map();
  #flushing = null;
  #flushTimer = null;

  constructor({
    url = DEFAULT_URL, agentToken = null, tokenProvider = null, agent = null, tenant = null,
    timeoutMs = 2000, failMode = FAIL_CLOSED, failOpenTtlMs = 300_000,
    tokenRefreshMarginMs = 30_000, approvalPollMs = 1000, maxFailOpenQueue = 10_000,
    failOpenFlushMs = 5000, now = Date.now,
  } = {}) {
    if (failMode !== FAIL_CLOSED && failMode !== FAIL_OPEN) {
      throw new ConfigurationError(
        `aegis: failMode is fail_closed or fail_open, got ${JSON.stringify(failMode)}`);
    }
    if (agentToken && tokenProvider) {
      throw new ConfigurationError('aegis: give agentToken or tokenProvider, not both');
    }
    for (const [name, value] of [['timeoutMs', timeoutMs], ['failOpenTtlMs', failOpenTtlMs],
      ['approvalPollMs', approvalPollMs], ['failOpenFlushMs', failOpenFlushMs]]) {
      if (typeof value !== 'number' || !(value > 0)) {
        throw new ConfigurationError(
          `aegis: ${name} must be a positive number of milliseconds, got ${value}`);
      }
    }
    this.url = url || DEFAULT_URL;
    this.agent = agent || null;
    this.tenant = tenant || null;
    this.timeoutMs = timeoutMs;
    this.failMode = failMode;
    this.failOpenTtlMs = failOpenTtlMs;
    this.approvalPollMs = approvalPollMs;
    this.maxFailOpenQueue = maxFailOpenQueue;
    this.failOpenFlushMs = failOpenFlushMs;
    this.now = now;
    this.#transport = new Transport(this.url, { count: (name) => this.#count(name) });
    this.#tokens = new TokenSource({
      token: agentToken || null,
      provider: tokenProvider || null,
      marginMs: tokenRefreshMarginMs,
      now,
      onRefresh: () => this.#count('tokenRefreshes'),
    });
  }

  /** A client configured from the environment (optionsFromEnv); `options` win over it. */
  static fromEnv(options = {}, env = process.env) {
    return new Client(optionsFromEnv(options, env));
  }

  #count(name, n = 1) {
    this.#counts[name] += n;
  }

  /**
   * Counters since the client was made: decisions by outcome (allow, sanitize, deny,
   * approvalNeeded, rateLimited, budgetExceeded), unavailable (no answer), failOpenAllowed (calls
   * run without a decision), failOpenRefused (calls refused for want of one), failOpenPending
   * (waiting to be reported), failOpenReported, failOpenReportRefused (reported calls the policy
   * now refuses), failOpenDropped, tokenRefreshes, reconnects, usageReported, usageErrors.
   */
  stats() {
    return { ...this.#counts, failOpenPending: this.#queue.length };
  }

  // ---- requests ------------------------------------------------------------------------------

  // One request with the agent token; a 401 with a token provider fetches a new token and tries
  // once more. Resolves to {status, headers, text}; a final 401 throws AuthenticationError.
  async #request(method, path, body = null, overrideToken = null) {
    let res;
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = await this.#tokens.get();
      const headers = { 'content-type': 'application/json', 'user-agent': USER_AGENT };
      if (token) headers['x-aegis-token'] = token;
      if (overrideToken) headers['x-aegis-override'] = overrideToken;
      res = await this.#transport.request(method, path, { body, headers, timeoutMs: this.timeoutMs });
      if (res.status === 401 && attempt === 0 && token && this.#tokens.invalidate(token)) continue;
      break;
    }
    if (res.status === 401) {
      const { code, message } = errorOf(jsonObject(res.text), res.text);
      throw new AuthenticationError(`aegis: ${method} ${path}: 401 ${code}: ${message}`, 401);
    }
    return res;
  }

  /** The call JSON as /v1/decide takes it. `params` must be encoded already. */
  callBody(tool, action, params, { cost, agent, tenant } = {}) {
    if (typeof tool !== 'string' || !tool) throw new ConfigurationError('aegis: tool must be a name');
    if (typeof action !== 'string' || !action) {
      throw new ConfigurationError('aegis: action must be a name');
    }
    const call = {};
    const a = agent || this.agent;
    const t = tenant ?? this.tenant;
    if (a) call.agent = a;
    else if (!this.#tokens.enabled) {
      throw new ConfigurationError(
        'aegis: no agent: pass agent, configure one (AEGIS_AGENT), or give an agent token');
    }
    if (t) call.tenant = t;
    call.tool = tool;
    call.action = action;
    call.params = params;
    if (cost !== undefined && cost !== null) {
      if (typeof cost !== 'number' || !(cost >= 0) || cost > 1e9) {
        throw new ConfigurationError(
          `aegis: cost must be a non-negative number of dollars, got ${cost}`);
      }
      call.cost_usd = cost;
    }
    return call;
  }

  /**
   * Asks Aegis about one call; resolves to its Decision whatever it is (allow, sanitize, deny,
   * approval_needed, rate limited, over budget): read `decision.outcome`. Options: cost (dollars,
   * sent as cost_usd), agent and tenant (else the client's), overrideToken.
   *
   * `params` must be JSON (ParamsError otherwise, before anything is sent). Rejects with
   * AuthenticationError, InvalidCall, and, when no decision can be had, AegisUnavailable — unless
   * the fail mode is fail_open and the call's (tool, action) is on the allowlist: then the
   * Decision has failOpen true (outcome allow) and the call is queued for reporting.
   */
  async decide(tool, action, params = {}, { cost, agent, tenant, overrideToken, encoded = false } = {}) {
    const p = encoded ? params : encodeValue(params ?? {}, 'params');
    if (p === null || typeof p !== 'object' || Array.isArray(p)) {
      throw new ParamsError('aegis: params must be an object', 'params');
    }
    return this.#decideCall(this.callBody(tool, action, p, { cost, agent, tenant }), overrideToken);
  }

  async #decideCall(call, overrideToken = null) {
    const key = JSON.stringify([call.agent ?? null, call.tenant ?? null, call.tool, call.action]);
    let d;
    try {
      const res = await this.#request('POST', '/v1/decide', JSON.stringify(call), overrideToken);
      d = readDecision(res);
    } catch (e) {
      if (!(e instanceof AegisUnavailable)) throw e;
      this.#count('unavailable');
      return this.#fail(call, key, e);
    }
    this.#learn(key, d);
    this.#count('decisions');
    this.#count(OUTCOME_COUNTER[d.outcome]);
    if (this.#queue.length) this.#flushQuietly();
    return d;
  }

  /**
   * Like decide(), but resolves only to a Decision that lets the call run (allow, sanitize,
   * shadow mode, fail_open) and rejects for the others: PolicyDenied, RateLimited,
   * BudgetExceeded, ApprovalRequired. With `waitForApproval` (true, ms, or {timeoutMs, pollMs}),
   * an approval_needed call waits for its approval, then is decided again with the override
   * token: ApprovalDenied, ApprovalTimeout, or the new decision's error if it is refused.
   */
  async enforce(tool, action, params = {}, { cost, agent, tenant, waitForApproval,
    encoded = false } = {}) {
    const p = encoded ? params : encodeValue(params ?? {}, 'params');
    const call = this.callBody(tool, action, p, { cost, agent, tenant });
    let d = await this.#decideCall(call);
    const wait = waitOptions(waitForApproval);
    if (d.outcome === Outcome.APPROVAL_NEEDED && wait && d.approvalId) {
      const token = await this.waitForApproval(d.approvalId,
        { ...wait, decision: d, params: p });
      d = await this.#decideCall(call, token);
    }
    return raiseForOutcome(d);
  }

  // ---- fail modes ----------------------------------------------------------------------------

  // Keeps the fail-open allowlist: a pair is on it after an allow decided by a rule (reason
  // "rule" first, no condition errors, enforced) and off it for failOpenTtlMs after any refusal
  // by the policy (deny, approval_needed, sanitize). Limits (rate, budget) count neither way.
  #learn(key, d) {
    if (this.failMode !== FAIL_OPEN) return;
    const now = this.now();
    if (d.decision === 'allow' && d.effectiveDecision === 'allow' && d.enforced &&
        d.reasonCode === 'rule' && !d.reasons.some((r) => r && r.code === 'condition_error')) {
      this.#allowedAt.set(key, now);
    } else if ((d.decision === 'deny' || d.decision === 'approval_needed' ||
                d.decision === 'sanitize') &&
               d.outcome !== Outcome.RATE_LIMITED && d.outcome !== Outcome.BUDGET_EXCEEDED) {
      this.#refusedAt.set(key, now);
    }
  }

  #eligible(key, now) {
    const allowed = this.#allowedAt.get(key);
    if (allowed === undefined || now - allowed > this.failOpenTtlMs) return false;
    const refused = this.#refusedAt.get(key);
    return refused === undefined || now - refused > this.failOpenTtlMs;
  }

  /**
   * The [agent, tenant, tool, action] a fail_open client would run now without a decision
   * (agent and tenant as the calls named them; null: from the token).
   */
  failOpenAllowlist() {
    const now = this.now();
    return [...this.#allowedAt.keys()].filter((k) => this.#eligible(k, now)).sort()
      .map((k) => JSON.parse(k));
  }

  #fail(call, key, error) {
    if (this.failMode !== FAIL_OPEN) throw error;
    if (!this.#eligible(key, this.now())) {
      this.#count('failOpenRefused');
      throw error;
    }
    const id = `fail-open-${randomUUID()}`;
    const entry = { ...call };
    this.#queue.push({ id, call: entry });
    this.#queuedById.set(id, entry);
    while (this.#queue.length > this.maxFailOpenQueue) {
      this.#queuedById.delete(this.#queue.shift().id);
      this.#count('failOpenDropped');
    }
    this.#count('failOpenAllowed');
    this.#armFlushTimer();
    return new Decision({
      decision_id: id,
      decision: 'allow',
      effective_decision: 'allow',
      enforced: false,
      mode: 'fail_open',
      reasons: [{ code: 'fail_open', detail: error.message }],
      tenant: call.tenant ?? '',
      agent: call.agent ?? null,
      tool: call.tool,
      action: call.action,
      cost_usd: call.cost_usd ?? 0,
    }, { status: 0, failOpen: true });
  }

  #armFlushTimer() {
    if (this.#flushTimer) return;
    this.#flushTimer = setInterval(() => this.#flushQuietly(), this.failOpenFlushMs);
    this.#flushTimer.unref();
  }

  /** The fail-open calls waiting to be reported (copies of the call JSON). */
  pendingFailOpen() {
    return this.#queue.map(({ call }) => structuredClone(call));
  }

  /**
   * Reports every queued fail-open call to Aegis (POST /v1/fail-open, up to 1000 per request) now.
   * Resolves to how many were reported. Rejects with AegisUnavailable (the calls stay queued)
   * when Aegis cannot take them. Also done automatically after the next answer from Aegis, and
   * every failOpenFlushMs while calls wait. Concurrent calls share one flush.
   */
  flush() {
    if (!this.#flushing) {
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = null;
      });
    }
    return this.#flushing;
  }

  async #flush() {
    let reported = 0;
    while (this.#queue.length) {
      const batch = this.#queue.slice(0, MAX_REPORT);
      const res = await this.#request('POST', '/v1/fail-open',
        JSON.stringify({ calls: batch.map((b) => b.call) }));
      const answer = jsonObject(res.text);
      const decisions = answer ? answer.decisions : null;
      if (res.status !== 200 || !Array.isArray(decisions) || decisions.length !== batch.length) {
        const { code, message } = errorOf(answer, res.text);
        if (res.status === 200 || (res.status >= 400 && res.status < 500)) {
          // Aegis refuses the report itself: keeping it would block every later one. Drop it,
          // loudly.
          this.#drop(batch.length);
          this.#count('failOpenDropped', batch.length);
          throw new ProtocolError(`aegis: POST /v1/fail-open: ${res.status} ${code}: ${message}; ` +
            `${batch.length} fail-open calls dropped`, { status: res.status });
        }
        throw new AegisUnavailable(`aegis: POST /v1/fail-open: ${res.status} ${code}: ${message}`,
          { status: res.status });
      }
      let refused = 0;
      for (const raw of decisions) {
        const ok = raw && typeof raw === 'object' && DECISIONS.has(raw.decision) &&
          new Decision(raw).allowed;
        if (!ok) refused++;
      }
      this.#drop(batch.length);
      this.#count('failOpenReported', batch.length);
      this.#count('failOpenReportRefused', refused);
      reported += batch.length;
    }
    if (this.#flushTimer) {
      clearInterval(this.#flushTimer);
      this.#flushTimer = null;
    }
    return reported;
  }

  #drop(n) {
    for (const { id } of this.#queue.splice(0, n)) this.#queuedById.delete(id);
  }

  #flushQuietly() {
    if (this.#flushing) return;
    this.flush().catch(() => {
      // Kept queued (or dropped and counted); tried again after the next answer or on the timer.
    });
  }

  // ---- approvals -----------------------------------------------------------------------------

  /** The approval as Aegis shows it to this agent (GET /v1/approvals/ID), once. */
  async approval(approvalId) {
    if (typeof approvalId !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(approvalId)) {
      throw new ConfigurationError(`aegis: approval id ${JSON.stringify(approvalId)} is malformed`);
    }
    const res = await this.#request('GET', `/v1/approvals/${approvalId}`);
    const answer = jsonObject(res.text);
    if (res.status === 200 && answer && typeof answer.state === 'string') return answer;
    const { code, message } = errorOf(answer, res.text);
    const what = `aegis: approval ${approvalId}: ${res.status} ${code}: ${message}`;
    if (res.status === 400 || res.status === 404) throw new InvalidCall(what, res.status, code);
    if (res.status >= 500) throw new AegisUnavailable(what, { status: res.status });
    throw new ProtocolError(`aegis: approval ${approvalId}: unexpected answer ${res.status}: ` +
      res.text.slice(0, 200), { status: res.status });
  }

  /**
   * Polls GET /v1/approvals/ID with the agent token until the approval is decided or timeoutMs
   * has passed (default: until it expires). Resolves to the override token.
   *
   * Rejects with ApprovalDenied (an approver denied it), ApprovalTimeout (state "expired", or
   * "pending" when the wait ran out), InvalidCall (unknown approval, or another agent's). Aegis
   * being unreachable is retried until the deadline, then thrown. With `decision` and `params`,
   * the approval's call digest is checked against this call's (ProtocolError if they differ).
   */
  async waitForApproval(approvalId, { timeoutMs, pollMs, decision = null, params = null } = {}) {
    const interval = pollMs || this.approvalPollMs;
    const deadline = timeoutMs == null ? null : this.now() + timeoutMs;
    for (;;) {
      let approval = null;
      let lastError = null;
      try {
        approval = await this.approval(approvalId);
        const token = approvalStep(approvalId, approval, decision, params);
        if (token !== null) return token;
      } catch (e) {
        if (!(e instanceof AegisUnavailable) || e instanceof ProtocolError) throw e;
        lastError = e;
      }
      const remaining = deadline === null ? null : deadline - this.now();
      if (remaining !== null && remaining <= 0) {
        if (lastError) throw lastError;
        throw new ApprovalTimeout(`aegis: approval ${approvalId} still pending after ${timeoutMs} ms`,
          decision, approvalId, 'pending', approval);
      }
      await sleep(remaining === null ? interval : Math.min(interval, remaining));
    }
  }

  // ---- usage ---------------------------------------------------------------------------------

  /**
   * Settles a call's actual cost (POST /v1/usage): `decision` is the Decision (or its
   * decision_id) of the call, `costUsd` what it really cost. Replaces the estimate reserved in the
   * agent's budgets. Resolves to true when settled, false when there was nothing to settle (the
   * decision reserved nothing, or it was a fail-open call: then the cost is reported with the
   * call). Rejects with InvalidCall for an unknown, expired or already settled decision,
   * AegisUnavailable when Aegis cannot be reached.
   */
  async reportUsage(decision, costUsd) {
    if (typeof costUsd !== 'number' || !(costUsd >= 0) || costUsd > 1e9) {
      throw new ConfigurationError(`aegis: costUsd must be 0 ... 1e9 dollars, got ${costUsd}`);
    }
    const body = {};
    if (decision instanceof Decision) {
      if (decision.failOpen) {
        const entry = this.#queuedById.get(decision.decisionId);
        if (entry) entry.cost_usd = costUsd;
        return false;
      }
      if (!decision.reserved) return false;
      body.decision_id = decision.decisionId;
    } else {
      body.decision_id = String(decision);
    }
    body.cost_usd = costUsd;
    const res = await this.#request('POST', '/v1/usage', JSON.stringify(body));
    if (res.status === 200) {
      this.#count('usageReported');
      return true;
    }
    const { code, message } = errorOf(jsonObject(res.text), res.text);
    const what = `aegis: /v1/usage: ${res.status} ${code}: ${message}`;
    if (res.status === 400 || res.status === 404 || res.status === 409) {
      throw new InvalidCall(what, res.status, code);
    }
    if (res.status >= 500) throw new AegisUnavailable(what, { status: res.status });
    throw new ProtocolError(`aegis: /v1/usage: unexpected answer ${res.status}: ${message}`,
      { status: res.status });
  }

  /**
   * The enforce wrapper's actual-cost hook: errors are counted (usageErrors), never thrown (the
   * call has already happened).
   */
  async reportActual(decision, actualCost, result) {
    try {
      const cost = await actualCost(result);
      if (cost !== null && cost !== undefined) await this.reportUsage(decision, cost);
    } catch {
      this.#count('usageErrors');
    }
  }

  /** The claims of the current agent token (not verified), or {}. */
  get tokenClaims() {
    return this.#tokens.claims;
  }

  /** Closes the client's connections (they reopen if it is used again) and its report timer. */
  close() {
    if (this.#flushTimer) {
      clearInterval(this.#flushTimer);
      this.#flushTimer = null;
    }
    this.#transport.close();
  }
}

function isDecision(raw) {
  return raw !== null && DECISIONS.has(raw.decision) && typeof raw.decision_id === 'string' &&
    DECISIONS.has(raw.effective_decision ?? raw.decision) &&
    (raw.reasons === undefined ||
     (Array.isArray(raw.reasons) && raw.reasons.every((r) => r && typeof r === 'object'))) &&
    (raw.decision !== 'sanitize' || raw.sanitized_params === undefined ||
     (raw.sanitized_params !== null && typeof raw.sanitized_params === 'object' &&
      !Array.isArray(raw.sanitized_params)));
}

function readDecision({ status, headers, text }) {
  if (status === 200 || status === 402 || status === 403 || status === 429 || status === 503) {
    const raw = jsonObject(text);
    if (raw !== null && 'decision' in raw) {
      if (!isDecision(raw)) {
        throw new ProtocolError(`aegis: /v1/decide answered ${status} with a malformed decision: ` +
          text.slice(0, 200), { status });
      }
      if (status === 503) {
        const d = new Decision(raw, { status });
        throw new AegisUnavailable(
          `aegis: Aegis could not decide (503 ${d.reasonCode}): ${d.message}`, { status, decision: d });
      }
      return new Decision(raw, {
        status,
        retryAfterHeader: headers['retry-after'] ?? null,
        approvalIdHeader: headers['x-aegis-approval-id'] ?? null,
      });
    }
    if (status === 503) {
      const { code, message } = errorOf(raw, text);
      throw new AegisUnavailable(`aegis: /v1/decide: 503 ${code}: ${message}`, { status });
    }
    throw new ProtocolError(`aegis: /v1/decide answered ${status} without a decision: ` +
      JSON.stringify(text.slice(0, 200)), { status });
  }
  const { code, message } = errorOf(jsonObject(text), text);
  if (status === 400 || status === 413 || status === 415 || status === 431) {
    throw new InvalidCall(`aegis: /v1/decide refused the call: ${status} ${code}: ${message}`,
      status, code);
  }
  if (status >= 500) {
    throw new AegisUnavailable(`aegis: /v1/decide: ${status} ${code}: ${message}`, { status });
  }
  throw new ProtocolError(`aegis: /v1/decide: unexpected answer ${status} ${code}: ${message}`,
    { status });
}

// The override token of an approved approval, null while pending; throws otherwise.
function approvalStep(approvalId, approval, decision, params) {
  const { state } = approval;
  if (state === 'pending') return null;
  if (state === 'approved') {
    const token = approval.override_token;
    if (typeof token !== 'string' || !token) {
      throw new ProtocolError(`aegis: approval ${approvalId} is approved but came without an ` +
        'override token (poll with the agent\'s token; the gateway needs identity configured)');
    }
    if (decision && params && approval.call_digest) {
      const ours = callDigest(decision.tenant, decision.agent, decision.tool, decision.action, params);
      if (ours !== approval.call_digest) {
        throw new ProtocolError(`aegis: approval ${approvalId} is for call digest ` +
          `${approval.call_digest}, this call's is ${ours}`);
      }
    }
    return token;
  }
  if (state === 'denied') {
    const who = (approval.votes || []).filter((v) => v.verdict === 'deny')
      .map((v) => `${v.approver}${v.comment ? `: ${v.comment}` : ''}`).join(', ');
    throw new ApprovalDenied(`aegis: approval ${approvalId} was denied${who ? ` by ${who}` : ''}`,
      decision, approval);
  }
  if (state === 'expired') {
    throw new ApprovalTimeout(`aegis: approval ${approvalId} expired undecided`, decision,
      approvalId, 'expired', approval);
  }
  throw new ProtocolError(`aegis: approval ${approvalId} has an unknown state ${JSON.stringify(state)}`);
}

/** {timeoutMs, pollMs} from enforce's waitForApproval option, or null for "do not wait". */
export function waitOptions(w) {
  if (w === undefined || w === null || w === false || w === 0) return null;
  if (w === true) return {};
  if (typeof w === 'number' && w > 0) return { timeoutMs: w };
  if (typeof w === 'object') return { timeoutMs: w.timeoutMs, pollMs: w.pollMs };
  throw new ConfigurationError('aegis: waitForApproval is true, a number of ms or {timeoutMs, pollMs}');
}

function describe(d) {
  const { rule, message } = d;
  return `${d.tool}/${d.action}${rule ? ` by rule ${rule}` : ` (${d.reasonCode})`}` +
    `${message ? `: ${message}` : ''} (decision ${d.decisionId})`;
}

/** Returns `d` when its outcome lets the call run; throws the matching DecisionError. */
export function raiseForOutcome(d) {
  switch (d.outcome) {
    case Outcome.ALLOW:
    case Outcome.SANITIZE:
      return d;
    case Outcome.RATE_LIMITED:
      throw new RateLimited(`aegis: rate limited, retry after ${d.retryAfter}s: ${describe(d)}`, d,
        d.retryAfter);
    case Outcome.BUDGET_EXCEEDED:
      throw new BudgetExceeded(`aegis: over budget: ${describe(d)}`, d);
    case Outcome.APPROVAL_NEEDED: {
      const last = d.reasons.length ? d.reasons[d.reasons.length - 1] : {};
      const extra = last.code === 'override_invalid' ? `; override token refused: ${last.detail}` : '';
      throw new ApprovalRequired(
        `aegis: approval needed (approval ${d.approvalId}): ${describe(d)}${extra}`, d, d.approvalId);
    }
    default:
      throw new PolicyDenied(`aegis: denied: ${describe(d)}`, d);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
