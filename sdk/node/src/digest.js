// The call digest of docs/approvals.md: SHA-256 of the RFC 8785 (JCS) canonical JSON of
// {"action", "agent", "params", "tenant", "tool"}. Approvals and override tokens are bound to it;
// the server computes it in src/engine/call_digest.cc and this must agree byte for byte.

import { createHash } from 'node:crypto';

/**
 * The RFC 8785 canonical text of a JSON value: object members sorted by the UTF-16 code units of
 * their names, no whitespace, strings escaped as JSON.stringify escapes them (which is JCS's
 * rule), numbers as ECMAScript writes them. Throws TypeError for a value JSON cannot carry
 * (undefined, functions, symbols, BigInt, non-finite numbers, lone surrogates).
 */
export function canonicalize(value) {
  const out = [];
  write(value, out);
  return out.join('');
}

function write(value, out) {
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${value} is not a JSON number`);
      // ECMAScript Number::toString, which is JCS's number format (-0 is written 0).
      out.push(JSON.stringify(value));
      return;
    case 'string':
      if (!isWellFormed(value)) throw new TypeError('string has a lone surrogate');
      out.push(JSON.stringify(value));
      return;
    case 'object':
      break;
    default:
      throw new TypeError(`a ${typeof value} is not JSON`);
  }
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i) out.push(',');
      write(value[i], out);
    }
    out.push(']');
    return;
  }
  // Array.prototype.sort compares strings by UTF-16 code units, as JCS requires.
  const keys = Object.keys(value).sort();
  out.push('{');
  let first = true;
  for (const key of keys) {
    if (value[key] === undefined) continue;
    if (!first) out.push(',');
    first = false;
    write(key, out);
    out.push(':');
    write(value[key], out);
  }
  out.push('}');
}

/**
 * The digest Aegis binds approvals and override tokens to: lower-case hex SHA-256 of
 * canonicalize({action, agent, params, tenant, tool}). `tenant` is "" for a call without one;
 * `params` are the params as sent (see encodeParams).
 */
export function callDigest(tenant, agent, tool, action, params) {
  const text = canonicalize({
    action,
    agent,
    params: params ?? {},
    tenant: tenant ?? '',
    tool,
  });
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether a string is valid UTF-16 (no lone surrogate), so that it encodes as UTF-8. */
export function isWellFormed(s) {
  return typeof s.isWellFormed === 'function' ? s.isWellFormed() : !LONE_SURROGATE.test(s);
}
