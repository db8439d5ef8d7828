// Agent tokens: reading their claims, refreshing them before they expire, and minting them.
//
// A token provider is any function returning a fresh agent token (a string, or a Promise of one).
// TokenSource asks it for one when there is none yet, when the current one expires within the
// refresh margin (read from the token's `exp`, decoded without verifying: Aegis verifies), and
// after Aegis refused the current one (401). issuerTokenProvider() mints tokens from Aegis itself
// with an issuer credential (POST /v1/tokens, docs/identity.md). Same rules as the Python SDK's
// aegis/tokens.py.

import {
  AegisError, AegisUnavailable, AuthenticationError, ConfigurationError, InvalidCall, ProtocolError,
} from './errors.js';
import { Transport, USER_AGENT } from './transport.js';

/** The payload of a JWT as an object, not verified; {} when it is not a readable JWT. */
export function tokenClaims(token) {
  if (typeof token !== 'string') return {};
  const parts = token.split('.');
  if (parts.length < 2) return {};
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : {};
  } catch {
    return {};
  }
}

const intClaim = (claims, name) => (Number.isInteger(claims[name]) ? claims[name] : null);

/**
 * The agent token to send, refreshed through `provider` when one is given. `marginMs`: refresh
 * when the token expires within it, but at most halfway through the token's life, so a token of a
 * few seconds is not fetched again on every call. Concurrent callers share one refresh; while it
 * fails, a token that has not expired yet keeps being used (and the provider is asked again a
 * second later).
 */
export class TokenSource {
  constructor({ token = null, provider = null, marginMs = 30_000, now = Date.now,
    onRefresh = () => {} } = {}) {
    if (token !== null && typeof token !== 'string') {
      throw new ConfigurationError('agentToken must be a string');
    }
    if (provider !== null && typeof provider !== 'function') {
      throw new ConfigurationError('tokenProvider must be a function returning a token');
    }
    this.provider = provider;
    this.marginMs = marginMs;
    this.now = now;
    this.onRefresh = onRefresh;
    this.retryAt = 0;
    this.pending = null;
    this.#set(token);
  }

  #set(token) {
    this.token = token;
    this.claims = token ? tokenClaims(token) : {};
    const exp = intClaim(this.claims, 'exp');
    const iat = intClaim(this.claims, 'iat');
    if (exp === null) {
      this.refreshAt = null;
      this.expiresAt = null;
    } else {
      const margin = iat === null ? this.marginMs : Math.min(this.marginMs, ((exp - iat) * 1000) / 2);
      this.refreshAt = exp * 1000 - margin;
      this.expiresAt = exp * 1000;
    }
  }

  /** The token's `sub`, or null. */
  get agent() {
    return typeof this.claims.sub === 'string' ? this.claims.sub : null;
  }

  get enabled() {
    return Boolean(this.token || this.provider);
  }

  /** The token to send now (null without token or provider); may ask the provider. */
  get() {
    const token = this.token;
    if (!this.provider) return token;
    if (token !== null && (this.refreshAt === null || this.now() < this.refreshAt)) return token;
    return this.#refresh(token);
  }

  /**
   * Aegis refused `rejected` (401): the next get() asks the provider. Returns true when a
   * provider can do so.
   */
  invalidate(rejected) {
    if (!this.provider) return false;
    if (this.token === rejected) {
      this.#set(null);
      this.retryAt = 0;
    }
    return true;
  }

  async #refresh(seen) {
    if (this.pending) return this.pending;
    const now = this.now();
    const stillValid = seen !== null && (this.expiresAt === null || now < this.expiresAt);
    if (stillValid && now < this.retryAt) return seen;
    this.pending = (async () => {
      let token;
      try {
        token = await this.provider();
        if (typeof token !== 'string' || token === '') {
          throw new AuthenticationError(
            `aegis: the token provider returned ${token === '' ? 'an empty string' : typeof token}, ` +
              'not a token');
        }
      } catch (e) {
        if (stillValid) {
          // Keep the current token while it lasts; try again in a second.
          this.retryAt = this.now() + 1000;
          return seen;
        }
        if (e instanceof AegisError) throw e;
        throw new AuthenticationError(`aegis: the token provider failed: ${e && e.message}`);
      }
      this.#set(token);
      this.onRefresh(token);
      return token;
    })().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }
}

/**
 * A token provider that mints agent tokens from Aegis: POST /v1/tokens with an issuer credential.
 *
 *   const tokenProvider = issuerTokenProvider({url, credential, agent: 'finance-agent',
 *                                              tenant: 'acme', ttlSeconds: 900});
 *
 * Each call resolves to a new token. Rejects with AuthenticationError when the credential is
 * refused (401/403), InvalidCall for an unknown agent (404) or a ttl over the gateway's maximum
 * (400), AegisUnavailable when Aegis cannot be reached. `provider.last` is the last answer
 * (token, jti, expires_in, expires_at).
 */
export function issuerTokenProvider({ url, credential, agent, tenant, ttlSeconds, timeoutMs = 5000 }) {
  if (!credential || !agent) {
    throw new ConfigurationError('aegis: issuerTokenProvider needs a credential and an agent');
  }
  const transport = new Transport(url);
  const body = { agent };
  if (tenant) body.tenant = tenant;
  if (ttlSeconds != null) body.ttl_seconds = Math.trunc(ttlSeconds);
  const text = JSON.stringify(body);
  const provider = async () => {
    const res = await transport.request('POST', '/v1/tokens', {
      body: text,
      headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT,
        authorization: `Bearer ${credential}` },
      timeoutMs,
    });
    const answer = jsonObject(res.text);
    if (res.status === 200 && answer && typeof answer.token === 'string') {
      provider.last = answer;
      return answer.token;
    }
    const { code, message } = errorOf(answer, res.text);
    const what = `aegis: POST /v1/tokens: ${res.status} ${code}: ${message}`;
    if (res.status === 401 || res.status === 403) {
      throw new AuthenticationError(
        `aegis: POST /v1/tokens refused the issuer credential (${res.status} ${code}): ${message}`,
        res.status);
    }
    if (res.status === 400 || res.status === 404) throw new InvalidCall(what, res.status, code);
    if (res.status >= 500) throw new AegisUnavailable(what, { status: res.status });
    throw new ProtocolError(`aegis: POST /v1/tokens: unexpected answer ${res.status}: ${message}`,
      { status: res.status });
  };
  provider.last = null;
  provider.close = () => transport.close();
  return provider;
}

/** The JSON object in `text`, or null. */
export function jsonObject(text) {
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

/** {code, message} of an error answer {"error": {"code", "message"}}, or of the raw text. */
export function errorOf(answer, text) {
  const err = answer ? answer.error : null;
  if (err && typeof err === 'object') {
    return { code: String(err.code ?? ''), message: String(err.message ?? '') };
  }
  return { code: '', message: (text || '').slice(0, 200) };
}
