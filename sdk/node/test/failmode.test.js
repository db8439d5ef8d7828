// Fail modes with the real `aegis serve` stopped and started again on the same port:
// fail_closed refuses, fail_open runs only what was recently allowed by a rule (within the TTL),
// counts it, and reports it to POST /v1/fail-open once Aegis is back.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AegisUnavailable, Client, currentDecision, enforce, FAIL_OPEN } from '../src/index.js';
import { caught, eventually, identityConfig, startAegis } from './support/aegis.js';
import { BUNDLE } from './support/policy.js';

let aegis;
let token;

before(async () => {
  aegis = await startAegis({ bundle: BUNDLE, config: identityConfig() });
  token = await aegis.token('fail-agent', { ttlSeconds: 3600 });
});

after(async () => {
  await aegis.close();
});

// Decisions Aegis recorded for front door `door`, from /metrics.
async function decisionsAt(door) {
  const res = await aegis.request('GET', '/metrics');
  let total = 0;
  for (const line of res.body.split('\n')) {
    if (line.startsWith('aegis_decisions_total{') && line.includes(`front_door="${door}"`)) {
      total += Number(line.split(' ').at(-1));
    }
  }
  return total;
}

test('fail_closed (the default): Aegis down is AegisUnavailable and nothing runs', async () => {
  const client = new Client({ url: aegis.url, agentToken: token, timeoutMs: 1000 });
  let runs = 0;
  const search = enforce({ tool: 'search', action: 'query', client }, async (q) => {
    runs++;
    return q;
  });
  assert.equal(await search('up'), 'up');
  await aegis.stop();
  try {
    const err = await caught(search('down'), AegisUnavailable);
    assert.match(err.message, /ECONNREFUSED|unreachable/);
    assert.equal(err.status, null);
    assert.equal(runs, 1);
    assert.equal(client.stats().unavailable, 1);
    assert.equal(client.stats().failOpenAllowed, 0);
  } finally {
    await aegis.start();
  }
  assert.equal(await search('back'), 'back');
  client.close();
});

test('fail_open: recently allowed calls run while Aegis is away, and are reported after', async () => {
  let clock = Date.now();
  const client = new Client({ url: aegis.url, agentToken: token, failMode: FAIL_OPEN,
    timeoutMs: 1000, failOpenTtlMs: 60_000, failOpenFlushMs: 100, now: () => clock });
  const ran = [];
  const tool = (t, a, name) => enforce({ tool: t, action: a, client, paramNames: [name] }, async () => {
    ran.push(`${t}/${a}`);
    return currentDecision();
  });
  const search = tool('search', 'query', 'q');
  const refund = tool('stripe', 'refund', 'amount');
  const pay = tool('stripe', 'create_payment', 'amount');
  const lookup = tool('crm', 'lookup_customer', 'name');
  const exportAll = tool('crm', 'export_all', 'format');
  const complete = tool('llm', 'complete', 'prompt');

  // While Aegis answers: allowed by rules, sanitized, denied, held for approval.
  assert.equal((await search('a')).outcome, 'allow');
  assert.equal((await refund(10)).outcome, 'allow');
  assert.equal((await pay(10)).outcome, 'allow');
  await caught(pay(9999), Error); // approval_needed: create_payment is off the allowlist now
  assert.equal((await lookup('x')).outcome, 'sanitize');
  await caught(exportAll('csv'), Error);
  assert.deepEqual(client.failOpenAllowlist(), [
    [null, null, 'search', 'query'],
    [null, null, 'stripe', 'refund'],
  ]);
  const before = await decisionsAt('fail_open_report');
  ran.length = 0;

  await aegis.stop();
  try {
    const d = await search('while down');
    assert.equal(d.failOpen, true);
    assert.equal(d.outcome, 'allow');
    assert.equal(d.reasonCode, 'fail_open');
    assert.match(d.decisionId, /^fail-open-/);
    await refund(20);
    // Never allowed, refused, sanitized or held for approval: not run.
    for (const call of [pay(10), lookup('y'), exportAll('csv'), complete('z')]) {
      await caught(call, AegisUnavailable);
    }
    assert.deepEqual(ran, ['search/query', 'stripe/refund']);
    // Past the TTL the allowlist is empty.
    clock += 61_000;
    await caught(search('too late'), AegisUnavailable);
    clock -= 61_000;
    const s = client.stats();
    assert.equal(s.failOpenAllowed, 2);
    assert.equal(s.failOpenRefused, 5);
    assert.equal(s.failOpenPending, 2);
    assert.deepEqual(client.pendingFailOpen().map((c) => [c.tool, c.action, c.params]), [
      ['search', 'query', { q: 'while down' }],
      ['stripe', 'refund', { amount: 20 }],
    ]);
    // The report cannot go out yet: the calls stay queued.
    await caught(client.flush(), AegisUnavailable);
    assert.equal(client.stats().failOpenPending, 2);
  } finally {
    await aegis.start();
  }
  // Back: the timer reports the queue without any new call.
  await eventually(() => client.stats().failOpenPending === 0, 10_000, 'the fail-open report');
  const s = client.stats();
  assert.equal(s.failOpenReported, 2);
  assert.equal(s.failOpenReportRefused, 0);
  assert.equal(await decisionsAt('fail_open_report') - before, 2);
  client.close();
});

test('fail_open: the report goes out with the next decision; the actual cost goes with it', async () => {
  const client = new Client({ url: aegis.url, agentToken: token, failMode: FAIL_OPEN,
    timeoutMs: 1000, failOpenFlushMs: 60_000 });
  const search = enforce({ tool: 'search', action: 'query', client,
    actualCost: () => 0.25 }, async (q) => q);
  await search('a');
  await aegis.stop();
  try {
    await search('b');
    assert.deepEqual(client.pendingFailOpen().map((c) => c.cost_usd), [0.25]);
  } finally {
    await aegis.start();
  }
  const before = await decisionsAt('fail_open_report');
  await search('c');
  await eventually(() => client.stats().failOpenReported === 1, 10_000, 'the report');
  assert.equal(await decisionsAt('fail_open_report') - before, 1);
  client.close();
});
