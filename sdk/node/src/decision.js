// Decision: the decision JSON of docs/decide-api.md, read-only, with the HTTP details an SDK needs
// (status, Retry-After, approval id) and what the SDK makes of it (`outcome`). The same as the
// Python SDK's aegis.Decision, with camelCase properties.

/** Outcomes, as the SDK acts on them (and as sdk/cases/cases.json names them). */
export const Outcome = Object.freeze({
  ALLOW: 'allow',
  SANITIZE: 'sanitize',
  DENY: 'deny',
  APPROVAL_NEEDED: 'approval_needed',
  RATE_LIMITED: 'rate_limited',
  BUDGET_EXCEEDED: 'budget_exceeded',
});

/**
 * One decision. `raw` is the JSON object as Aegis sent it; the properties read it.
 *
 * `outcome` is what the SDK does: allow and sanitize run the call (sanitize with
 * sanitizedParams); deny, approval_needed, rate_limited and budget_exceeded do not. It follows
 * effective_decision, so in shadow mode a denied call is allow (and `decision` says what
 * enforcement would have done). `failOpen` is true for a decision the SDK made itself because
 * Aegis was unreachable (README: fail modes).
 */
export class Decision {
  constructor(raw, { status = 200, retryAfterHeader = null, approvalIdHeader = null,
    failOpen = false } = {}) {
    this.raw = raw;
    this.status = status;
    this.retryAfterHeader = retryAfterHeader;
    this.approvalIdHeader = approvalIdHeader;
    this.failOpen = failOpen;
    Object.freeze(this);
  }

  get decisionId() { return this.raw.decision_id ?? null; }
  get decision() { return this.raw.decision ?? null; }
  get effectiveDecision() { return this.raw.effective_decision ?? this.raw.decision ?? null; }
  get enforced() { return this.raw.enforced ?? true; }
  get mode() { return this.raw.mode ?? null; }
  get reasons() { return Array.isArray(this.raw.reasons) ? this.raw.reasons : []; }
  get policy() { return this.raw.policy ?? null; }
  get policyVersion() { return this.raw.policy_version ?? null; }
  get tenant() { return this.raw.tenant ?? ''; }
  get agent() { return this.raw.agent ?? null; }
  get tool() { return this.raw.tool ?? null; }
  get action() { return this.raw.action ?? null; }
  get costUsd() { return this.raw.cost_usd ?? null; }
  get sanitizedParams() { return this.raw.sanitized_params ?? null; }
  get redactedPaths() { return this.raw.redacted_paths ?? null; }
  get redact() { return this.raw.redact ?? null; }
  get approval() { return this.raw.approval ?? null; }
  get budget() { return this.raw.budget ?? null; }
  get reserved() { return Boolean(this.raw.reserved); }

  /** The deciding reason's code (rule, default, rate_limited, ...). */
  get reasonCode() {
    const r = this.reasons;
    return r.length && r[0] ? r[0].code ?? null : null;
  }

  /** The id of the first rule among the reasons (the deciding one), or null. */
  get rule() {
    for (const r of this.reasons) if (r && r.rule) return r.rule;
    return null;
  }

  /** The first reason's message or detail, for error texts. */
  get message() {
    for (const r of this.reasons) if (r && r.message) return r.message;
    for (const r of this.reasons) if (r && r.detail) return r.detail;
    return null;
  }

  get approvalId() {
    const a = this.raw.approval || {};
    return a.id || this.approvalIdHeader || null;
  }

  /** Seconds until the same call would be admitted (rate_limited), else null. */
  get retryAfter() {
    const ms = this.raw.retry_after_ms;
    if (typeof ms === 'number') return ms / 1000;
    if (this.retryAfterHeader != null) {
      const s = Number(this.retryAfterHeader);
      return Number.isFinite(s) ? s : null;
    }
    return null;
  }

  get outcome() {
    const code = this.reasonCode;
    if (this.enforced && code === 'rate_limited') return Outcome.RATE_LIMITED;
    if (this.enforced && code === 'budget_exceeded') return Outcome.BUDGET_EXCEEDED;
    const effective = this.effectiveDecision;
    if (effective === 'allow' || effective === 'sanitize' || effective === 'approval_needed') {
      return effective;
    }
    return Outcome.DENY;
  }

  /** True when the call may run (allow or sanitize, or anything in shadow mode). */
  get allowed() {
    const o = this.outcome;
    return o === Outcome.ALLOW || o === Outcome.SANITIZE;
  }

  toJSON() {
    return this.raw;
  }

  toString() {
    return `Decision(${this.outcome} ${this.tool}/${this.action}, id=${this.decisionId}, ` +
      `rule=${this.rule})`;
  }
}
