// Aegis for Node: govern in-process tool calls of AI agents with a one-line wrapper.
//
//   import { configure, enforce } from 'aegis';
//   configure({ url: 'http://127.0.0.1:8181', agentToken: TOKEN });   // or from AEGIS_* env
//   const createPayment = enforce({ tool: 'stripe', action: 'create_payment' },
//     async (amount, currency = 'usd') => { ... });
//
// No dependencies. README.md has the whole API, fail modes and the error types.

export {
  Client, DEFAULT_URL, FAIL_CLOSED, FAIL_OPEN, optionsFromEnv, raiseForOutcome,
} from './client.js';
export {
  configure, currentDecision, decide, defaultClient, enforce, flush, policyEnforced, reportUsage,
  stats,
} from './enforce.js';
export { Decision, Outcome } from './decision.js';
export { callDigest, canonicalize } from './digest.js';
export { encodeValue, readParameters } from './params.js';
export { issuerTokenProvider, tokenClaims } from './token.js';
export {
  AegisError, AegisUnavailable, ApprovalDenied, ApprovalRequired, ApprovalTimeout,
  AuthenticationError, BudgetExceeded, ConfigurationError, DecisionError, InvalidCall, ParamsError,
  PolicyDenied, ProtocolError, RateLimited,
} from './errors.js';
