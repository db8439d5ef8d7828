// Agent tokens against a real `aegis serve`: minted by issuerTokenProvider, refreshed before they
// expire (read from `exp`), fetched again after a 401, kept while a refresh fails; configuration
// from the environment; configure() and the default client.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  AegisUnavailable, AuthenticationError, Client, configure, ConfigurationError, defaultClient,
  enforce, InvalidCall, issuerTokenProvider, tokenClaims,
} from '../src/index.js';
import { caught, identityConfig, SECRETS, startAegis } from './support/aegis.js';
import { BUNDLE } from './support/policy.js';

let aegis;

before(async () => {
  aegis = await startAegis({ bundle: BUNDLE, config: identityConfig() });
});

after(async () => {
  defaultClient().close();
  await aegis.close();
});

// A provider minting real tokens, recording each one it hands out.
function countingProvider(ttlSeconds) {
  const mint = issuerTokenProvider({ url: aegis.url, credential: SECRETS.orchestrator,
    agent: 'token-agent', ttlSeconds });
  const provider = async () => {
    const token = await mint();
    provider.tokens.push(token);
    return token;
  };
  provider.tokens = [];
  return provider;
}

test('a token is refreshed before it expires: half its life, at most the margin', async () => {
  let clock = Date.now();
  const provider = countingProvider(60);
  const client = new Client({ url: aegis.url, tokenProvider: provider, now: () => clock });
  assert.equal((await client.decide('search', 'query', { q: 'a' })).outcome, 'allow');
  assert.equal((await client.decide('search', 'query', { q: 'b' })).outcome, 'allow');
  assert.equal(provider.tokens.length, 1, 'one token for both calls');
  const claims = tokenClaims(provider.tokens[0]);
  assert.equal(claims.sub, 'token-agent');
  assert.equal(claims.exp - claims.iat, 60);
  // 29 s into a 60 s token: still fine. 31 s: within the 30 s margin, refreshed first.
  clock = claims.iat * 1000 + 29_000;
  await client.decide('search', 'query', { q: 'c' });
  assert.equal(provider.tokens.length, 1);
  clock = claims.iat * 1000 + 31_000;
  const d = await client.decide('search', 'query', { q: 'd' });
  assert.equal(d.outcome, 'allow');
  assert.equal(provider.tokens.length, 2);
  assert.equal(client.stats().tokenRefreshes, 2);
  assert.equal(client.tokenClaims.jti, tokenClaims(provider.tokens[1]).jti);
  client.close();
});

test('a short token is refreshed halfway through its life, not on every call', async () => {
  let clock = Date.now();
  const provider = countingProvider(10);
  const client = new Client({ url: aegis.url, tokenProvider: provider, now: () => clock,
    tokenRefreshMarginMs: 30_000 });
  await client.decide('search', 'query', { q: 'a' });
  const { iat } = tokenClaims(provider.tokens[0]);
  clock = iat * 1000 + 4000;
  await client.decide('search', 'query', { q: 'b' });
  assert.equal(provider.tokens.length, 1);
  clock = iat * 1000 + 5500;
  await client.decide('search', 'query', { q: 'c' });
  assert.equal(provider.tokens.length, 2);
  client.close();
});

test('a 401 fetches a new token and tries once more', async () => {
  const real = countingProvider(600);
  let calls = 0;
  const provider = async () => {
    calls++;
    // First a token Aegis did not sign (a well-formed JWT with a far expiry), then real ones.
    if (calls === 1) return fakeJwt({ sub: 'token-agent', iat: 1, exp: 4102444800 });
    return real();
  };
  const client = new Client({ url: aegis.url, tokenProvider: provider });
  assert.equal((await client.decide('search', 'query', { q: 'a' })).outcome, 'allow');
  assert.equal(calls, 2);
  // A fixed token has no way to refresh: 401 is AuthenticationError.
  const fixed = new Client({ url: aegis.url, agentToken: fakeJwt({ sub: 'token-agent' }) });
  const err = await caught(fixed.decide('search', 'query', { q: 'a' }), AuthenticationError);
  assert.equal(err.status, 401);
  client.close();
  fixed.close();
});

test('a failing refresh keeps the current token while it is valid', async () => {
  let clock = Date.now();
  const real = countingProvider(60);
  let fail = false;
  const provider = async () => {
    if (fail) throw new Error('vault unreachable');
    return real();
  };
  const client = new Client({ url: aegis.url, tokenProvider: provider, now: () => clock });
  await client.decide('search', 'query', { q: 'a' });
  const { iat } = tokenClaims(real.tokens[0]);
  fail = true;
  clock = iat * 1000 + 45_000; // due for refresh, not expired
  assert.equal((await client.decide('search', 'query', { q: 'b' })).outcome, 'allow');
  clock = iat * 1000 + 61_000; // expired: the provider's failure is the caller's
  const err = await caught(client.decide('search', 'query', { q: 'c' }), AuthenticationError);
  assert.match(err.message, /vault unreachable/);
  client.close();
});

test('issuerTokenProvider: a refused credential or an unknown agent is a clear error', async () => {
  const wrong = issuerTokenProvider({ url: aegis.url, credential: 'wrong-secret-0123456789',
    agent: 'token-agent' });
  assert.equal((await caught(wrong(), AuthenticationError)).status, 403);
  const approver = issuerTokenProvider({ url: aegis.url, credential: SECRETS.alice,
    agent: 'token-agent' });
  await caught(approver(), AuthenticationError);
  const unknown = issuerTokenProvider({ url: aegis.url, credential: SECRETS.orchestrator,
    agent: 'nobody' });
  assert.equal((await caught(unknown(), InvalidCall)).status, 404);
  const down = issuerTokenProvider({ url: 'http://127.0.0.1:9', credential: SECRETS.orchestrator,
    agent: 'token-agent' });
  await caught(down(), AegisUnavailable);
  // Through a client, a provider that cannot reach Aegis is Aegis unavailable.
  const client = new Client({ url: 'http://127.0.0.1:9', tokenProvider: down });
  await caught(client.decide('search', 'query', { q: 'a' }), AegisUnavailable);
  assert.equal(client.stats().unavailable, 1);
  client.close();
});

test('the environment configures the client; options win over it', async () => {
  const env = { AEGIS_URL: aegis.url, AEGIS_AGENT: 'token-agent',
    AEGIS_ISSUER_CREDENTIAL: SECRETS.orchestrator, AEGIS_TOKEN_TTL: '120', AEGIS_TIMEOUT: '1.5',
    AEGIS_FAIL_MODE: 'fail_open', AEGIS_FAIL_OPEN_TTL: '30' };
  const client = Client.fromEnv({}, env);
  assert.equal(client.failMode, 'fail_open');
  assert.equal(client.timeoutMs, 1500);
  assert.equal(client.failOpenTtlMs, 30_000);
  assert.equal((await client.decide('search', 'query', { q: 'env' })).agent, 'token-agent');
  assert.equal(client.tokenClaims.exp - client.tokenClaims.iat, 120);
  client.close();
  const token = await aegis.token('token-agent');
  const fromToken = Client.fromEnv({ failMode: 'fail_closed' },
    { AEGIS_URL: aegis.url, AEGIS_AGENT_TOKEN: token, AEGIS_FAIL_MODE: 'fail_open' });
  assert.equal(fromToken.failMode, 'fail_closed');
  assert.equal((await fromToken.decide('search', 'query', { q: 'env' })).outcome, 'allow');
  fromToken.close();
  assert.throws(() => Client.fromEnv({}, { AEGIS_FAIL_MODE: 'maybe' }), ConfigurationError);
  assert.throws(() => Client.fromEnv({}, { AEGIS_TIMEOUT: 'soon' }), ConfigurationError);
  assert.throws(() => Client.fromEnv({}, { AEGIS_ISSUER_CREDENTIAL: 'x' }), ConfigurationError);
  assert.throws(() => new Client({ url: 'ftp://x' }), ConfigurationError);
});

test('configure() sets the client that wrapped functions use, looked up at call time', async () => {
  const search = enforce({ tool: 'search', action: 'query' }, async (q) => q);
  configure({ url: aegis.url, agentToken: await aegis.token('token-agent') });
  assert.equal(await search('configured'), 'configured');
  assert.equal(defaultClient().stats().allow, 1);
});

function fakeJwt(payload) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'EdDSA', kid: 'fake', typ: 'aegis-agent+jwt' })}.${b64(payload)}.` +
    Buffer.alloc(64).toString('base64url');
}
