// Human approvals through a real `aegis serve`: a call waits for its approval, a person approves
// it through the API, the SDK fetches the override token and the call runs once; denied, expired
// and timed-out waits; and the call digest computed here equal to the gateway's.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ApprovalDenied, ApprovalRequired, ApprovalTimeout, callDigest, Client, currentDecision, enforce,
  InvalidCall,
} from '../src/index.js';
import { caught, eventually, identityConfig, startAegis } from './support/aegis.js';
import { BUNDLE } from './support/policy.js';

let aegis;
let client;

before(async () => {
  aegis = await startAegis({ bundle: BUNDLE, config: identityConfig() });
  client = new Client({ url: aegis.url, agentToken: await aegis.token('finance-agent'),
    approvalPollMs: 20 });
});

after(async () => {
  client.close();
  await aegis.close();
});

// The pending approval of this exact call, found by its digest (as an approver lists them).
async function approvalOf(tool, action, params) {
  const digest = callDigest('', 'finance-agent', tool, action, params);
  let found;
  await eventually(async () => {
    found = (await aegis.pending('finance-agent')).find((a) => a.call_digest === digest);
    return found;
  }, 10_000, `a pending approval with digest ${digest}`);
  return found;
}

test('waitForApproval: the call waits, a human approves, it runs once with the override', async () => {
  const runs = [];
  const pay = enforce({ tool: 'stripe', action: 'create_payment', client,
    waitForApproval: { timeoutMs: 20_000, pollMs: 20 } },
  async (amount, currency = 'usd') => {
    runs.push([amount, currency]);
    return currentDecision();
  });
  const pending = pay(7000);
  const approval = await approvalOf('stripe', 'create_payment', { amount: 7000, currency: 'usd' });
  assert.equal(runs.length, 0, 'nothing runs before the approval');
  await aegis.vote(approval.id, 'alice');
  const decision = await pending;
  assert.deepEqual(runs, [[7000, 'usd']]);
  assert.equal(decision.outcome, 'allow');
  assert.deepEqual(decision.reasons[0], { code: 'approved', detail: approval.id });
  // The override token was used: the same call needs a new approval.
  const err = await caught(
    enforce({ tool: 'stripe', action: 'create_payment', client }, async (amount) => amount)(7000),
    ApprovalRequired);
  assert.notEqual(err.approvalId, approval.id);
});

test('the explicit API: decide, waitForApproval, decide with the override token', async () => {
  const params = { amount: 8000, currency: 'eur', memo: 'invoice 42' };
  const first = await client.decide('stripe', 'create_payment', params);
  assert.equal(first.outcome, 'approval_needed');
  await aegis.vote(first.approvalId, 'bob');
  const token = await client.waitForApproval(first.approvalId,
    { timeoutMs: 5000, decision: first, params });
  const second = await client.decide('stripe', 'create_payment', params, { overrideToken: token });
  assert.equal(second.outcome, 'allow');
  assert.equal(second.reasonCode, 'approved');
  // Replayed: refused, and the reason says so.
  const third = await client.decide('stripe', 'create_payment', params, { overrideToken: token });
  assert.equal(third.outcome, 'approval_needed');
  assert.equal(third.reasons.at(-1).code, 'override_invalid');
  const err = await caught(client.enforce('stripe', 'create_payment', params,
    { waitForApproval: 1 }), ApprovalTimeout);
  assert.equal(err.state, 'pending');
});

test('a denied approval is ApprovalDenied with the votes', async () => {
  let ran = false;
  const pay = enforce({ tool: 'stripe', action: 'create_payment', client, waitForApproval: 20_000 },
    async (amount) => {
      ran = amount;
    });
  const pending = caught(pay(9100), ApprovalDenied);
  const approval = await approvalOf('stripe', 'create_payment', { amount: 9100 });
  await aegis.vote(approval.id, 'alice', 'deny');
  const err = await pending;
  assert.equal(ran, false);
  assert.equal(err.approvalId, approval.id);
  assert.equal(err.approval.state, 'denied');
  assert.match(err.message, /denied by alice/);
  assert.equal(err.decision.outcome, 'approval_needed');
});

test('an approval that expires undecided is ApprovalTimeout, state expired', async () => {
  // large-refund approvals live one second.
  const refund = enforce({ tool: 'stripe', action: 'refund', client,
    waitForApproval: { timeoutMs: 15_000, pollMs: 50 } }, async (amount) => amount);
  const err = await caught(refund(2500), ApprovalTimeout);
  assert.equal(err.state, 'expired');
  assert.ok(err instanceof ApprovalRequired);
  assert.equal(err.approval.state, 'expired');
});

test('a wait that runs out first is ApprovalTimeout, state pending, and can be resumed', async () => {
  const pay = enforce({ tool: 'stripe', action: 'create_payment', client,
    waitForApproval: { timeoutMs: 100, pollMs: 20 } }, async (amount) => amount);
  const err = await caught(pay(9200), ApprovalTimeout);
  assert.equal(err.state, 'pending');
  await aegis.vote(err.approvalId, 'alice');
  const token = await client.waitForApproval(err.approvalId, { timeoutMs: 5000 });
  assert.equal(typeof token, 'string');
});

test('another agent cannot poll the approval', async () => {
  const first = await client.decide('stripe', 'create_payment', { amount: 9300 });
  const other = new Client({ url: aegis.url, agentToken: await aegis.token('decorator-agent') });
  const err = await caught(other.approval(first.approvalId), InvalidCall);
  assert.equal(err.status, 404);
  other.close();
});

test('the call digest computed here is the one the gateway binds the approval to', async () => {
  const shapes = [
    { amount: 7000, currency: 'usd' },
    { amount: 7000.5, rate: 0.1, tiny: 1e-7, huge: 1e21, negative: -0, exp: 1.5e300 },
    { amount: 6000, 'é': 1, 'z': 2, 'A': 3, '\u{1F600}': 4, '\uFB01': 5, '': 6 },
    { amount: 6001, text: 'tab\there "quoted" back\\slash \u0001 \u001f \u007f é 😀 \u2028' },
    { amount: 6002, nested: { b: [1, { d: null, c: true }], a: [] }, list: [3, 2, 1] },
    { amount: 9007199254740993, big: 12345678901234567890 },
  ];
  for (const params of shapes) {
    const d = await client.decide('stripe', 'create_payment', params);
    assert.equal(d.outcome, 'approval_needed', JSON.stringify(params));
    const approval = await client.approval(d.approvalId);
    const ours = callDigest('', 'finance-agent', 'stripe', 'create_payment', params);
    assert.equal(ours, approval.call_digest, JSON.stringify(params));
  }
  // The documented example.
  assert.equal(callDigest('acme', 'finance-agent', 'stripe', 'create_payment',
    { currency: 'usd', amount: 7000 }),
  '158090f2a96b1c21d3201b2670858c7d27258ac8797d7dfcd30ae6b2f0fa2448');
});
