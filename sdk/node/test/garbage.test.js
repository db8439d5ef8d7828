// Answers the real Aegis never gives, from a small fake HTTP server in its place: garbage, 5xx,
// wrong statuses, malformed decisions, a body too large, a connection cut, no answer at all, a
// kept-alive connection closed under the client. Each is a typed error, never an allow — unless
// fail_open was chosen and the call was on the allowlist, and then it is counted.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import {
  AegisUnavailable, Client, enforce, FAIL_OPEN, InvalidCall, ParamsError, ProtocolError, RateLimited,
} from '../src/index.js';
import { caught } from './support/aegis.js';

let server;
let url;
let answer; // (req, res, body) => void, set by each test
const requests = [];

const decision = (extra = {}) => ({
  decision_id: '01a219fa-a3a7-782b-9aa9-42e0a22a0d8c', decision: 'allow',
  effective_decision: 'allow', enforced: true, mode: 'enforce',
  reasons: [{ code: 'rule', rule: 'r' }], tenant: '', agent: 'a', tool: 't', action: 'x', ...extra,
});

function json(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

before(async () => {
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      requests.push({ method: req.method, url: req.url, headers: req.headers, body,
        socket: req.socket });
      answer(req, res, body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

function client(options = {}) {
  return new Client({ url, agent: 'a', timeoutMs: 500, ...options });
}

test('answers that are not the Aegis protocol are ProtocolError (an AegisUnavailable)', async () => {
  const c = client();
  const cases = [
    [(req, res) => json(res, 200, 'not json at all'), /not json|without a decision/i],
    [(req, res) => json(res, 200, { hello: 'world' }), /without a decision/],
    [(req, res) => json(res, 200, decision({ decision: 'maybe' })), /malformed decision/],
    [(req, res) => json(res, 200, decision({ decision_id: 42 })), /malformed decision/],
    [(req, res) => json(res, 200, decision({ reasons: 'because' })), /malformed decision/],
    [(req, res) => json(res, 200, decision({ decision: 'sanitize', effective_decision: 'sanitize',
      sanitized_params: [1] })), /malformed decision/],
    [(req, res) => json(res, 403, '<html>Forbidden</html>'), /without a decision/],
    [(req, res) => json(res, 404, { error: { code: 'not_found', message: 'no such route' } }),
      /unexpected answer 404/],
    [(req, res) => json(res, 302, '', { location: 'http://elsewhere/' }), /unexpected answer 302/],
    [(req, res) => json(res, 200, '['.repeat(10) + 'x'.repeat(9 * 1024 * 1024)), /over 8 MiB/],
  ];
  for (const [fn, message] of cases) {
    answer = fn;
    const err = await caught(c.decide('t', 'x', {}), ProtocolError);
    assert.ok(err instanceof AegisUnavailable);
    assert.match(err.message, message);
  }
  assert.equal(c.stats().unavailable, cases.length);
  assert.equal(c.stats().decisions, 0);
  c.close();
});

test('5xx, a cut connection and no answer at all are AegisUnavailable', async () => {
  const c = client();
  answer = (req, res) => json(res, 500, { error: { code: 'internal', message: 'boom' } });
  assert.equal((await caught(c.decide('t', 'x', {}), AegisUnavailable)).status, 500);
  answer = (req, res) => json(res, 502, '<html>Bad Gateway</html>');
  assert.equal((await caught(c.decide('t', 'x', {}), AegisUnavailable)).status, 502);
  answer = (req, res) => json(res, 503, { error: { code: 'not_ready', message: 'no policy' } });
  assert.match((await caught(c.decide('t', 'x', {}), AegisUnavailable)).message, /not_ready/);
  // A 503 that carries a decision: the Redis limit store was unreachable under fail_closed.
  answer = (req, res) => json(res, 503, decision({ decision: 'deny', effective_decision: 'deny',
    reasons: [{ code: 'limits_unavailable', detail: 'redis down' }] }));
  const err = await caught(c.decide('t', 'x', {}), AegisUnavailable);
  assert.equal(err.decision.reasonCode, 'limits_unavailable');
  answer = (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
    res.write('{"decision_id":');
    setTimeout(() => res.socket.destroy(), 10);
  };
  assert.ok(!((await caught(c.decide('t', 'x', {}), AegisUnavailable)) instanceof ProtocolError));
  answer = () => {}; // never answers
  const started = Date.now();
  const slow = await caught(c.decide('t', 'x', {}), AegisUnavailable);
  assert.match(slow.message, /within 500 ms/);
  assert.ok(Date.now() - started >= 450 && Date.now() - started < 3000);
  c.close();
});

test('a bad request is InvalidCall, not subject to the fail mode', async () => {
  const c = client({ failMode: FAIL_OPEN });
  answer = (req, res) => json(res, 400, { error: { code: 'invalid_call', message: 'bad name' } });
  const err = await caught(c.decide('t', 'x', {}), InvalidCall);
  assert.equal(err.code, 'invalid_call');
  assert.equal(c.stats().unavailable, 0);
  c.close();
});

test('fail_open runs an allowlisted call on garbage too, and counts it', async () => {
  const c = client({ failMode: FAIL_OPEN });
  let runs = 0;
  const fn = enforce({ tool: 't', action: 'x', client: c }, async () => ++runs);
  answer = (req, res) => json(res, 200, decision());
  await fn();
  answer = (req, res) => json(res, 200, 'garbage');
  assert.equal(await fn(), 2);
  answer = (req, res) => json(res, 500, 'oops');
  assert.equal(await fn(), 3);
  assert.equal(c.stats().failOpenAllowed, 2);
  assert.equal(c.stats().failOpenPending, 2);
  // A report Aegis refuses outright (4xx) is dropped, counted, and not retried forever.
  answer = (req, res) => json(res, 400, { error: { code: 'invalid_request', message: 'no' } });
  await caught(c.flush(), ProtocolError);
  assert.equal(c.stats().failOpenDropped, 2);
  assert.equal(c.stats().failOpenPending, 0);
  c.close();
});

test('429 without retry_after_ms takes Retry-After from the header', async () => {
  const c = client();
  answer = (req, res) => json(res, 429, decision({ decision: 'deny', effective_decision: 'deny',
    reasons: [{ code: 'rate_limited' }] }), { 'retry-after': '7' });
  const fn = enforce({ tool: 't', action: 'x', client: c }, async () => 1);
  const err = await caught(fn(), RateLimited);
  assert.equal(err.retryAfter, 7);
  c.close();
});

test('what the SDK sends: the call JSON, the token header, the override header', async () => {
  const c = new Client({ url, agentToken: 'tok', tenant: 'acme', timeoutMs: 500 });
  answer = (req, res) => json(res, 200, decision());
  requests.length = 0;
  await c.decide('stripe', 'create_payment', { amount: 7000, when: new Date(0), skip: undefined },
    { cost: 0.5, overrideToken: 'ovr' });
  const [r] = requests;
  assert.equal(r.method, 'POST');
  assert.equal(r.url, '/v1/decide');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers['x-aegis-token'], 'tok');
  assert.equal(r.headers['x-aegis-override'], 'ovr');
  assert.match(r.headers['user-agent'], /^aegis-node\//);
  assert.deepEqual(JSON.parse(r.body), { tenant: 'acme', tool: 'stripe', action: 'create_payment',
    params: { amount: 7000, when: '1970-01-01T00:00:00.000Z' }, cost_usd: 0.5 });
  // A ParamsError sends nothing.
  requests.length = 0;
  await caught(c.decide('t', 'x', { n: 1n }), ParamsError);
  assert.equal(requests.length, 0);
  c.close();
});

test('a kept-alive connection the server closes under a request is retried once, fresh', async () => {
  const c = client();
  let n = 0;
  answer = (req, res) => {
    n++;
    if (n === 2) {
      req.socket.destroy(); // as if the idle timeout closed it just as the request arrived
      return;
    }
    json(res, 200, decision());
  };
  requests.length = 0;
  await c.decide('t', 'x', {});
  assert.equal((await c.decide('t', 'x', {})).outcome, 'allow');
  assert.equal(n, 3);
  assert.equal(requests[0].socket, requests[1].socket, 'the second request reused the connection');
  assert.notEqual(requests[2].socket, requests[1].socket);
  assert.equal(c.stats().reconnects, 1);
  c.close();
});
