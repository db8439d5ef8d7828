// The errors the SDK throws. Every one is an AegisError.
//
// Two families matter to callers:
//  - DecisionError and its subclasses carry the Decision Aegis made: the policy (or a limit, or a
//    human) refused the call. The function did not run.
//  - AegisUnavailable means no decision could be had: Aegis was unreachable, too slow, answered
//    5xx, or answered something that is not its protocol (ProtocolError). Only these are subject
//    to the client's fail mode.
// The rest are mistakes to fix rather than retry: ConfigurationError, ParamsError (an argument that
// cannot be sent as JSON), InvalidCall (Aegis refused the call as malformed) and
// AuthenticationError (the agent token or issuer credential was refused).
//
// The hierarchy is the Python SDK's (sdk/python/aegis/errors.py), with camelCase properties.

/** Base class of every error this SDK throws. */
export class AegisError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The client is configured wrongly (a bad URL or fail mode, no agent, no token). */
export class ConfigurationError extends AegisError {}

/**
 * An argument cannot be encoded as JSON params. Thrown before anything is sent. `path` names the
 * offending value (`params.when`, `params.items[2]`).
 */
export class ParamsError extends AegisError {
  constructor(message, path = null) {
    super(message);
    this.path = path;
  }
}

/** Aegis refused the agent token (401) or the issuer credential (401/403). */
export class AuthenticationError extends AegisError {
  constructor(message, status = null) {
    super(message);
    this.status = status;
  }
}

/**
 * Aegis refused the request as malformed (400, 404, 409, 413, 415): `status`, `code` and the
 * server's message. Retrying the same request gets the same answer.
 */
export class InvalidCall extends AegisError {
  constructor(message, status = null, code = null) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * No decision: Aegis was unreachable, timed out, answered 5xx, or could not decide (503
 * limits_unavailable, not_ready). `status` is the HTTP status when there was an answer, else null;
 * `decision` the Decision when the 503 carried one.
 */
export class AegisUnavailable extends AegisError {
  constructor(message, { status = null, decision = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.status = status;
    this.decision = decision;
  }
}

/**
 * Aegis (or something in its place) answered with something that is not the Aegis protocol: not
 * JSON, not a decision, an unexpected status. Treated as unavailability.
 */
export class ProtocolError extends AegisUnavailable {}

/** Aegis decided and the call may not run. `decision` is the Decision. */
export class DecisionError extends AegisError {
  constructor(message, decision) {
    super(message);
    this.decision = decision;
  }

  get decisionId() {
    return this.decision ? this.decision.decisionId : null;
  }

  get reasons() {
    return this.decision ? this.decision.reasons : [];
  }

  get rule() {
    return this.decision ? this.decision.rule : null;
  }
}

/** The call was denied: by a rule, a scope check, or (subclasses) a limit or an approver. */
export class PolicyDenied extends DecisionError {}

/** The agent's rate limit is used up (HTTP 429). `retryAfter` in seconds, `retryAfterMs` in ms. */
export class RateLimited extends PolicyDenied {
  constructor(message, decision, retryAfter) {
    super(message, decision);
    this.retryAfter = retryAfter;
  }

  get retryAfterMs() {
    return this.retryAfter == null ? null : Math.round(this.retryAfter * 1000);
  }
}

/**
 * The call's cost does not fit a budget (HTTP 402). `budget` is
 * `{remaining_usd, resets_at}` of the budget that refused.
 */
export class BudgetExceeded extends PolicyDenied {
  constructor(message, decision) {
    super(message, decision);
    this.budget = decision ? decision.budget : null;
  }
}

/**
 * The call needs a human approval. `approvalId` names it; poll it with
 * Client.waitForApproval, or wrap with `waitForApproval`.
 */
export class ApprovalRequired extends DecisionError {
  constructor(message, decision, approvalId) {
    super(message, decision);
    this.approvalId = approvalId;
  }
}

/** An approver denied the call. `approval` is the approval JSON (votes, comments). */
export class ApprovalDenied extends PolicyDenied {
  constructor(message, decision, approval) {
    super(message, decision);
    this.approval = approval;
    this.approvalId = approval ? approval.id : null;
  }
}

/**
 * No approval in time: `state` is `expired` (the approval's own TTL ran out, which is a denial)
 * or `pending` (the wait ran out first; the approval may still be approved, and `approvalId` can
 * be polled again).
 */
export class ApprovalTimeout extends ApprovalRequired {
  constructor(message, decision, approvalId, state, approval = null) {
    super(message, decision, approvalId);
    this.state = state;
    this.approval = approval;
  }
}
