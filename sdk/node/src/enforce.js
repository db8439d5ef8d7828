// enforce(): a function wrapped so that every call asks Aegis first; policyEnforced(): the same as
// a class-method decorator (TC39 standard decorators and TypeScript's experimentalDecorators);
// configure() and the process-wide client they use by default. The Python SDK's
// policy_enforced, configure and current_decision.

import { AsyncLocalStorage } from 'node:async_hooks';
import { Client } from './client.js';
import { Outcome } from './decision.js';
import { ConfigurationError, ProtocolError } from './errors.js';
import { argumentMapper, isPlainObject } from './params.js';

let defaultClientInstance = null;
const current = new AsyncLocalStorage();

/**
 * Makes the process-wide client that enforce() and policyEnforced() use: Client.fromEnv(options),
 * so AEGIS_URL, AEGIS_AGENT_TOKEN, AEGIS_AGENT, AEGIS_FAIL_MODE, ... fill in what the options
 * leave out. Replaces (and closes) a previous one. Returns the client. Wrapped functions look the
 * client up at each call, so configure() may come after the wrapping.
 */
export function configure(options = {}) {
  const client = options instanceof Client ? options : Client.fromEnv(options);
  const old = defaultClientInstance;
  defaultClientInstance = client;
  if (old && old !== client) old.close();
  return client;
}

/** The client configure() made; on first use without configure(), one from the environment. */
export function defaultClient() {
  if (!defaultClientInstance) defaultClientInstance = Client.fromEnv();
  return defaultClientInstance;
}

/** defaultClient().decide(...). */
export function decide(tool, action, params, options) {
  return defaultClient().decide(tool, action, params, options);
}

/** Settles the actual cost of a call: defaultClient().reportUsage(decision, costUsd). */
export function reportUsage(decision, costUsd) {
  return defaultClient().reportUsage(decision, costUsd);
}

/** Reports queued fail-open calls now: defaultClient().flush(). */
export function flush() {
  return defaultClient().flush();
}

/** defaultClient().stats(). */
export function stats() {
  return defaultClient().stats();
}

/**
 * Inside a function run by enforce() or policyEnforced(): the Decision that let it run (for
 * reportUsage, logging, the decision id). Undefined elsewhere.
 */
export function currentDecision() {
  return current.getStore();
}

/**
 * Wraps `fn` so that every call is decided by Aegis first. Options:
 *   tool, action     the call's tool and action (action: fn.name by default).
 *   agent, tenant    override the client's (with an agent token they must match the token's).
 *   cost             the estimated cost in dollars sent as cost_usd: a number, or a function of
 *                    the params returning one (or null for the catalog's cost).
 *   actualCost       a function of fn's result returning the actual cost in dollars (or null):
 *                    settled with POST /v1/usage after the call; failures are counted
 *                    (usageErrors), never thrown.
 *   waitForApproval  true, ms, or {timeoutMs, pollMs}: wait for a human approval instead of
 *                    throwing ApprovalRequired; the call then runs once approved.
 *   params, paramNames, defaults, applyParams: how arguments become params (README; params.js).
 *   client           a Client; by default defaultClient(), looked up at each call.
 *
 * The wrapper is async. A sanitize decision runs fn with the redacted values put back onto the
 * arguments. Errors: PolicyDenied, RateLimited, BudgetExceeded, ApprovalRequired,
 * ApprovalDenied, ApprovalTimeout, AegisUnavailable (per the fail mode), ParamsError (before
 * anything is sent), AuthenticationError. Throws ConfigurationError or ParamsError now when the
 * options cannot work for fn.
 */
export function enforce(options, fn) {
  if (typeof fn !== 'function') throw new TypeError('aegis: enforce(options, fn): fn must be a function');
  if (!options || typeof options !== 'object') {
    throw new ConfigurationError('aegis: enforce needs options {tool, action, ...}');
  }
  const { tool, agent, tenant, cost, actualCost, client } = options;
  if (!tool || typeof tool !== 'string') throw new ConfigurationError('aegis: enforce needs tool');
  const action = options.action || fn.name;
  if (!action || typeof action !== 'string') {
    throw new ConfigurationError('aegis: enforce needs action (the function has no name)');
  }
  if (cost !== undefined && cost !== null && typeof cost !== 'function' &&
      typeof cost !== 'number') {
    throw new ConfigurationError('aegis: cost is a number of dollars or a function of the params');
  }
  if (actualCost !== undefined && actualCost !== null && typeof actualCost !== 'function') {
    throw new ConfigurationError('aegis: actualCost must be a function (result) => dollars');
  }
  const mapper = argumentMapper(fn, options);
  const waitForApproval = options.waitForApproval;

  const wrapped = async function (...args) {
    const params = mapper.toParams(args);
    const c = client || defaultClient();
    const d = await c.enforce(tool, action, params, {
      cost: typeof cost === 'function' ? cost(params) : cost,
      agent,
      tenant,
      waitForApproval,
      encoded: true,
    });
    let runArgs = args;
    if (d.outcome === Outcome.SANITIZE && d.sanitizedParams != null) {
      if (!isPlainObject(d.sanitizedParams)) {
        throw new ProtocolError('aegis: a sanitize decision whose sanitized_params is not an object');
      }
      runArgs = mapper.applySanitized(args, params, d.sanitizedParams);
    }
    const result = await current.run(d, () => fn.apply(this, runArgs));
    if (actualCost) await c.reportActual(d, actualCost, result);
    return result;
  };
  Object.defineProperty(wrapped, 'name', { value: fn.name, configurable: true });
  wrapped.aegisTool = tool;
  wrapped.aegisAction = action;
  return wrapped;
}

/**
 * enforce() as a decorator of class methods, in both forms TypeScript compiles: standard
 * (TC39; TypeScript 5 without experimentalDecorators) and legacy (experimentalDecorators). The
 * action defaults to the method's name; parameter names are read from the method's source (or
 * give paramNames). `this` is passed through.
 */
export function policyEnforced(options) {
  if (!options || typeof options !== 'object') {
    throw new ConfigurationError('aegis: @policyEnforced needs options {tool, ...}');
  }
  return function decorate(target, context, descriptor) {
    if (context && typeof context === 'object' && 'kind' in context) {
      if (context.kind !== 'method') {
        throw new ConfigurationError(`aegis: @policyEnforced decorates methods, not a ${context.kind}`);
      }
      return enforce({ ...options, action: options.action || String(context.name) }, target);
    }
    if (descriptor && typeof descriptor.value === 'function') {
      descriptor.value = enforce({ ...options, action: options.action || String(context) },
        descriptor.value);
      return descriptor;
    }
    throw new ConfigurationError('aegis: @policyEnforced decorates methods');
  };
}
