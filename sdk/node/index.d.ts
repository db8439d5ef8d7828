// Type declarations of the Aegis SDK for Node (src/index.js). README.md has the guide.

/** A JSON value as the SDK sends it in params. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export const FAIL_CLOSED: 'fail_closed';
export const FAIL_OPEN: 'fail_open';
export const DEFAULT_URL: string;
export type FailMode = 'fail_closed' | 'fail_open';

/** Outcomes, as the SDK acts on them. */
export const Outcome: {
  readonly ALLOW: 'allow';
  readonly SANITIZE: 'sanitize';
  readonly DENY: 'deny';
  readonly APPROVAL_NEEDED: 'approval_needed';
  readonly RATE_LIMITED: 'rate_limited';
  readonly BUDGET_EXCEEDED: 'budget_exceeded';
};
export type OutcomeName = (typeof Outcome)[keyof typeof Outcome];
export type PolicyDecision = 'allow' | 'deny' | 'sanitize' | 'approval_needed';

export interface Reason {
  code: string;
  rule?: string;
  message?: string;
  detail?: string;
}

/** The decision JSON of docs/decide-api.md, as Aegis sent it. */
export interface DecisionJson {
  decision_id: string;
  decision: PolicyDecision;
  effective_decision?: PolicyDecision;
  enforced?: boolean;
  mode?: string;
  reasons?: Reason[];
  policy?: string;
  policy_version?: string;
  tenant?: string;
  agent?: string;
  tool?: string;
  action?: string;
  cost_usd?: number;
  redact?: { fields?: string[]; detectors?: string[]; style?: string };
  sanitized_params?: JsonObject;
  redacted_paths?: string[];
  approval?: { id?: string; poll?: string; quorum: number; ttl_seconds: number; notify: string[] };
  reserved?: boolean;
  retry_after_ms?: number;
  budget?: { remaining_usd: number; resets_at: string };
  limits_fail_open?: boolean;
  [key: string]: unknown;
}

/**
 * One decision, read-only. `outcome` is what the SDK does with it: allow and sanitize run the
 * call; the others do not. It follows effective_decision (shadow mode runs everything).
 */
export class Decision {
  constructor(raw: DecisionJson, options?: { status?: number; retryAfterHeader?: string | null;
    approvalIdHeader?: string | null; failOpen?: boolean });
  readonly raw: DecisionJson;
  /** The HTTP status (200, 403, 429, 402, 503), 0 for a fail-open decision. */
  readonly status: number;
  /** True for a decision the SDK made itself because Aegis was unreachable (fail_open). */
  readonly failOpen: boolean;
  readonly decisionId: string | null;
  readonly decision: PolicyDecision | null;
  readonly effectiveDecision: PolicyDecision | null;
  readonly enforced: boolean;
  readonly mode: string | null;
  readonly reasons: Reason[];
  readonly policy: string | null;
  readonly policyVersion: string | null;
  readonly tenant: string;
  readonly agent: string | null;
  readonly tool: string | null;
  readonly action: string | null;
  readonly costUsd: number | null;
  readonly sanitizedParams: JsonObject | null;
  readonly redactedPaths: string[] | null;
  readonly redact: DecisionJson['redact'] | null;
  readonly approval: DecisionJson['approval'] | null;
  readonly budget: DecisionJson['budget'] | null;
  readonly reserved: boolean;
  /** The deciding reason's code (rule, default, rate_limited, ...). */
  readonly reasonCode: string | null;
  /** The id of the first rule among the reasons, or null. */
  readonly rule: string | null;
  /** The first reason's message or detail. */
  readonly message: string | null;
  readonly approvalId: string | null;
  /** Seconds until the same call would be admitted (rate_limited), else null. */
  readonly retryAfter: number | null;
  readonly outcome: OutcomeName;
  /** True when the call may run. */
  readonly allowed: boolean;
  toJSON(): DecisionJson;
}

/** The approval JSON of GET /v1/approvals/ID. */
export interface ApprovalJson {
  id: string;
  state: 'pending' | 'approved' | 'denied' | 'expired';
  tenant: string;
  agent: string;
  tool: string;
  action: string;
  call_digest: string;
  rule: string;
  message: string;
  quorum: number;
  approvals: number;
  votes: { approver: string; verdict: 'approve' | 'deny'; at: string; comment?: string }[];
  override_token?: string;
  [key: string]: unknown;
}

/** A function returning a fresh agent token. */
export type TokenProvider = () => string | Promise<string>;

export interface ClientOptions {
  /** Aegis's HTTP listener; default http://127.0.0.1:8181. */
  url?: string;
  /** The agent's token (x-aegis-token). */
  agentToken?: string | null;
  /** Called for a fresh token before the current one expires, and after a 401. */
  tokenProvider?: TokenProvider | null;
  agent?: string | null;
  tenant?: string | null;
  /** For connecting and each answer; default 2000. */
  timeoutMs?: number;
  /** Default 'fail_closed'. */
  failMode?: FailMode;
  /** How long an unconditional allow keeps its pair on the fail-open allowlist; default 300000. */
  failOpenTtlMs?: number;
  /** Refresh this long before expiry, at most half the token's life; default 30000. */
  tokenRefreshMarginMs?: number;
  /** Between polls of an approval; default 1000. */
  approvalPollMs?: number;
  /** Fail-open calls kept for reporting; default 10000. */
  maxFailOpenQueue?: number;
  /** How often queued fail-open calls are offered to Aegis while it is away; default 5000. */
  failOpenFlushMs?: number;
  /** A clock in ms (tests). */
  now?: () => number;
}

export interface CallOptions {
  /** The call's estimated cost in dollars, sent as cost_usd. */
  cost?: number | null;
  agent?: string | null;
  tenant?: string | null;
  /** Set when params were encoded already (encodeValue). */
  encoded?: boolean;
}

/** true: wait until the approval expires; ms; or {timeoutMs, pollMs}. */
export type WaitForApproval = boolean | number | { timeoutMs?: number; pollMs?: number };

export interface Stats {
  decisions: number;
  allow: number;
  sanitize: number;
  deny: number;
  approvalNeeded: number;
  rateLimited: number;
  budgetExceeded: number;
  unavailable: number;
  failOpenAllowed: number;
  failOpenRefused: number;
  failOpenPending: number;
  failOpenReported: number;
  failOpenReportRefused: number;
  failOpenDropped: number;
  tokenRefreshes: number;
  reconnects: number;
  usageReported: number;
  usageErrors: number;
}

/** The call JSON of POST /v1/decide. */
export interface CallJson {
  tenant?: string;
  agent?: string;
  tool: string;
  action: string;
  params: JsonObject;
  cost_usd?: number;
}

/** A connection to one Aegis gateway, for one agent. */
export class Client {
  constructor(options?: ClientOptions);
  /** A client configured from the environment (AEGIS_URL, AEGIS_AGENT_TOKEN, ...). */
  static fromEnv(options?: ClientOptions, env?: Record<string, string | undefined>): Client;
  readonly url: string;
  readonly agent: string | null;
  readonly tenant: string | null;
  readonly timeoutMs: number;
  readonly failMode: FailMode;
  readonly failOpenTtlMs: number;
  /** Resolves to the Decision of any answer; rejects when there is none (per the fail mode). */
  decide(tool: string, action: string, params?: object,
    options?: CallOptions & { overrideToken?: string | null }): Promise<Decision>;
  /** Like decide(), but rejects for every outcome that does not let the call run. */
  enforce(tool: string, action: string, params?: object,
    options?: CallOptions & { waitForApproval?: WaitForApproval }): Promise<Decision>;
  callBody(tool: string, action: string, params: JsonObject, options?: CallOptions): CallJson;
  /** The approval as Aegis shows it to this agent, once. */
  approval(approvalId: string): Promise<ApprovalJson>;
  /** Polls until approved and resolves to the override token. */
  waitForApproval(approvalId: string, options?: { timeoutMs?: number | null; pollMs?: number;
    decision?: Decision | null; params?: JsonObject | null }): Promise<string>;
  /** Settles a call's actual cost; false when there was nothing to settle. */
  reportUsage(decision: Decision | string, costUsd: number): Promise<boolean>;
  /** Reports queued fail-open calls now; resolves to how many. */
  flush(): Promise<number>;
  /** The fail-open calls waiting to be reported. */
  pendingFailOpen(): CallJson[];
  /** [agent, tenant, tool, action] pairs a fail_open client would run now without a decision. */
  failOpenAllowlist(): [string | null, string | null, string, string][];
  stats(): Stats;
  /** The claims of the current agent token, not verified. */
  readonly tokenClaims: Record<string, unknown>;
  close(): void;
}

/** Client options from the environment, `overrides` winning. */
export function optionsFromEnv(overrides?: ClientOptions,
  env?: Record<string, string | undefined>): ClientOptions;
/** Returns `d` when its outcome lets the call run; throws the matching DecisionError. */
export function raiseForOutcome(d: Decision): Decision;

/** How a wrapped function's arguments become the call's params (README: Arguments and params). */
export interface ParamsOptions<Args extends unknown[] = unknown[]> {
  /** Names of the arguments in order ('...rest' for a rest parameter). */
  paramNames?: string[];
  /** Values of defaults that are not literals in the source. */
  defaults?: Record<string, unknown>;
  /** The params of a call, when the arguments need more than naming. */
  params?: (...args: Args) => object;
  /** With `params`: the arguments to run with after a sanitize decision redacted the params. */
  applyParams?: (sanitizedParams: JsonObject, args: Args) => unknown[];
}

export interface EnforceOptions<Result = unknown, Args extends unknown[] = unknown[]>
  extends ParamsOptions<Args> {
  tool: string;
  /** Default: the function's (or method's) name. */
  action?: string;
  agent?: string;
  tenant?: string;
  /** Estimated cost in dollars, or a function of the params returning it. */
  cost?: number | ((params: JsonObject) => number | null | undefined) | null;
  /** The actual cost in dollars from the result, settled after the call. */
  actualCost?: ((result: Result) => number | null | undefined | Promise<number | null | undefined>) | null;
  waitForApproval?: WaitForApproval;
  /** Default: defaultClient(), looked up at each call. */
  client?: Client;
}

export type Enforced<This, Args extends unknown[], R> =
  ((this: This, ...args: Args) => Promise<Awaited<R>>) & { aegisTool: string; aegisAction: string };

/** Wraps fn so that every call is decided by Aegis first. The wrapper is async. */
export function enforce<This, Args extends unknown[], R>(
  options: EnforceOptions<Awaited<R>, Args>, fn: (this: This, ...args: Args) => R): Enforced<This, Args, R>;

/**
 * enforce() as a class-method decorator: standard (TC39) or experimentalDecorators. The method
 * should be async (the decorated method returns a Promise).
 */
export function policyEnforced(options: EnforceOptions): {
  <This, Args extends unknown[], R>(
    target: (this: This, ...args: Args) => Promise<R>,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: Args) => Promise<R>>,
  ): (this: This, ...args: Args) => Promise<R>;
  (target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor;
};

/** Makes the process-wide client (Client.fromEnv(options)); replaces and closes a previous one. */
export function configure(options?: ClientOptions | Client): Client;
/** The client configure() made, or one from the environment. */
export function defaultClient(): Client;
export function decide(tool: string, action: string, params?: object,
  options?: CallOptions & { overrideToken?: string | null }): Promise<Decision>;
export function reportUsage(decision: Decision | string, costUsd: number): Promise<boolean>;
export function flush(): Promise<number>;
export function stats(): Stats;
/** Inside a wrapped function: the Decision that let it run. */
export function currentDecision(): Decision | undefined;

/** RFC 8785 canonical JSON text. */
export function canonicalize(value: JsonValue): string;
/** hex SHA-256 of canonicalize({action, agent, params, tenant, tool}). */
export function callDigest(tenant: string | null | undefined, agent: string, tool: string,
  action: string, params: JsonObject | null | undefined): string;
/** The strict JSON encoding of params (ParamsError for what JSON cannot carry). */
export function encodeValue(value: unknown, path?: string): JsonValue;
export function readParameters(fn: Function): unknown;

export function issuerTokenProvider(options: { url: string; credential: string; agent: string;
  tenant?: string; ttlSeconds?: number; timeoutMs?: number }): TokenProvider & {
  last: Record<string, unknown> | null; close(): void };
/** The payload of a JWT, not verified; {} when it is not one. */
export function tokenClaims(token: string): Record<string, unknown>;

export class AegisError extends Error {}
export class ConfigurationError extends AegisError {}
export class ParamsError extends AegisError {
  constructor(message: string, path?: string | null);
  readonly path: string | null;
}
export class AuthenticationError extends AegisError {
  constructor(message: string, status?: number | null);
  readonly status: number | null;
}
export class InvalidCall extends AegisError {
  constructor(message: string, status?: number | null, code?: string | null);
  readonly status: number | null;
  readonly code: string | null;
}
export class AegisUnavailable extends AegisError {
  constructor(message: string, options?: { status?: number | null; decision?: Decision | null;
    cause?: unknown });
  readonly status: number | null;
  readonly decision: Decision | null;
}
export class ProtocolError extends AegisUnavailable {}
export class DecisionError extends AegisError {
  constructor(message: string, decision: Decision | null);
  readonly decision: Decision | null;
  readonly decisionId: string | null;
  readonly reasons: Reason[];
  readonly rule: string | null;
}
export class PolicyDenied extends DecisionError {}
export class RateLimited extends PolicyDenied {
  constructor(message: string, decision: Decision | null, retryAfter: number | null);
  /** Seconds. */
  readonly retryAfter: number | null;
  readonly retryAfterMs: number | null;
}
export class BudgetExceeded extends PolicyDenied {
  readonly budget: DecisionJson['budget'] | null;
}
export class ApprovalRequired extends DecisionError {
  constructor(message: string, decision: Decision | null, approvalId: string | null);
  readonly approvalId: string | null;
}
export class ApprovalDenied extends PolicyDenied {
  constructor(message: string, decision: Decision | null, approval: ApprovalJson | null);
  readonly approval: ApprovalJson | null;
  readonly approvalId: string | null;
}
export class ApprovalTimeout extends ApprovalRequired {
  constructor(message: string, decision: Decision | null, approvalId: string | null,
    state: 'pending' | 'expired', approval?: ApprovalJson | null);
  readonly state: 'pending' | 'expired';
  readonly approval: ApprovalJson | null;
}
