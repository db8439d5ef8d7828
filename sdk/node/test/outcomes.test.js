// Every outcome through enforce() and Client against a real `aegis serve`: allow, sanitize, deny,
// approval_needed, rate limited, over budget, shadow mode, usage settlement, bad calls.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  ApprovalRequired, AuthenticationError, BudgetExceeded, Client, ConfigurationError,
  currentDecision, enforce, InvalidCall, ParamsError, PolicyDenied, RateLimited,
} from '../src/index.js';
import { caught, identityConfig, startAegis } from './support/aegis.js';
import { BUNDLE } from './support/policy.js';

let aegis;
let client;

before(async () => {
  aegis = await startAegis({ bundle: BUNDLE, config: identityConfig() });
  client = new Client({ url: aegis.url, agentToken: await aegis.token('finance-agent') });
});

after(async () => {
  client.close();
  await aegis.close();
});

// What the agent's daily budget has spent, as Aegis reports it.
async function spentToday(agent) {
  const res = await aegis.request('GET', `/v1/spend?agent=${agent}&window=day`);
  assert.equal(res.body.budgets.length, 1, JSON.stringify(res.body));
  return res.body.budgets[0].spent_usd;
}

describe('enforce', () => {
  test('allow runs the function with its arguments and returns its result', async () => {
    const seen = [];
    const pay = enforce({ tool: 'stripe', action: 'create_payment', client },
      async (amount, currency = 'usd') => {
        seen.push([amount, currency]);
        return { id: 'pi_1', decision: currentDecision().decisionId };
      });
    const out = await pay(120);
    assert.deepEqual(seen, [[120, 'usd']]);
    assert.match(out.decision, /^[0-9a-f-]{36}$/);
    assert.equal(currentDecision(), undefined);
    assert.equal(pay.name, '');
  });

  test('a plain function (not async) is wrapped too, and this is passed through', async () => {
    const account = {
      balance: 100,
      refund: enforce({ tool: 'stripe', client, paramNames: ['amount'] }, function refund(amount) {
        this.balance -= amount;
        return this.balance;
      }),
    };
    assert.equal(await account.refund(30), 70);
    assert.equal(account.refund.aegisAction, 'refund');
  });

  test('sanitize runs the function with the redacted arguments, others untouched', async () => {
    const calls = [];
    const when = new Date('2026-01-02T03:04:05Z');
    const lookup = enforce({ tool: 'crm', action: 'lookup_customer', client },
      async (name, ssn, email, since) => {
        calls.push({ name, ssn, email, since });
        return 'ok';
      });
    assert.equal(await lookup('Jane', '123-45-6789', 'jane@example.com', when), 'ok');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, 'Jane');
    assert.equal(calls[0].ssn, '[REDACTED]');
    assert.equal(calls[0].email, '[REDACTED:email]');
    assert.equal(calls[0].since, when, 'an argument nothing was redacted in keeps its object');
  });

  test('sanitize with a single object argument redacts its keys', async () => {
    let got;
    const lookup = enforce({ tool: 'crm', action: 'lookup_customer', client },
      async ({ name, ssn, note = 'none' }) => {
        got = { name, ssn, note };
      });
    await lookup({ name: 'Jane', ssn: '123-45-6789' });
    assert.deepEqual(got, { name: 'Jane', ssn: '[REDACTED]', note: 'none' });
  });

  test('deny throws PolicyDenied with the decision, and the function does not run', async () => {
    let ran = false;
    const exportAll = enforce({ tool: 'crm', action: 'export_all', client }, async () => {
      ran = true;
    });
    const err = await caught(exportAll(), PolicyDenied);
    assert.equal(ran, false);
    assert.equal(err.rule, 'no-bulk-export');
    assert.equal(err.decision.decision, 'deny');
    assert.equal(err.decision.status, 403);
    assert.match(err.message, /Bulk exports are not allowed/);
  });

  test('a condition that does not hold is a deny too (default)', async () => {
    const search = enforce({ tool: 'search', action: 'query', client }, async (q) => q);
    assert.equal(await search('weather'), 'weather');
    const err = await caught(search('forbidden'), PolicyDenied);
    assert.equal(err.decision.reasonCode, 'default');
  });

  test('approval_needed throws ApprovalRequired with the approval id', async () => {
    let ran = false;
    const pay = enforce({ tool: 'stripe', action: 'create_payment', client }, async (amount) => {
      ran = true;
      return amount;
    });
    const err = await caught(pay(9000), ApprovalRequired);
    assert.equal(ran, false);
    assert.match(err.approvalId, /^apr_/);
    assert.equal(err.decision.approval.quorum, 1);
    const approval = await client.approval(err.approvalId);
    assert.equal(approval.state, 'pending');
  });

  test('rate limited throws RateLimited with retryAfter', async () => {
    const c = new Client({ url: aegis.url, agentToken: await aegis.token('weather-agent') });
    const forecast = enforce({ tool: 'weather', action: 'forecast', client: c }, async (city) => city);
    assert.equal(await forecast('Oslo'), 'Oslo');
    const err = await caught(forecast('Oslo'), RateLimited);
    assert.ok(err instanceof PolicyDenied);
    assert.ok(err.retryAfter > 900 && err.retryAfter <= 1000, String(err.retryAfter));
    assert.equal(err.retryAfterMs, err.retryAfter * 1000);
    assert.equal(err.decision.status, 429);
    assert.equal(c.stats().rateLimited, 1);
    c.close();
  });

  test('cost is reserved up front; actualCost settles it; over budget is BudgetExceeded', async () => {
    const c = new Client({ url: aegis.url, agentToken: await aegis.token('budget-agent') });
    const complete = enforce({
      tool: 'llm', action: 'complete', client: c,
      cost: (params) => params.maxTokens * 0.001,
      actualCost: (result) => result.tokens * 0.001,
    }, async (prompt, maxTokens) => ({ text: `re: ${prompt}`, tokens: 100 }));
    await complete('hello', 600); // reserves $0.60, settles at $0.10
    assert.equal(await spentToday('budget-agent'), 0.1);
    assert.equal(c.stats().usageReported, 1);
    await complete('again', 600); // settled at $0.10 too: $0.20 spent
    // $0.90 does not fit the $0.80 left.
    const err = await caught(complete('once more', 900), BudgetExceeded);
    assert.equal(err.decision.status, 402);
    assert.ok(Math.abs(err.budget.remaining_usd - 0.8) < 1e-9, JSON.stringify(err.budget));
    assert.equal(await spentToday('budget-agent'), 0.2);
    c.close();
  });

  test('reportUsage settles a decision once; the second time is InvalidCall 409', async () => {
    const c = new Client({ url: aegis.url, agentToken: await aegis.token('budget-agent') });
    const d = await c.decide('llm', 'complete', { prompt: 'x' }, { cost: 0.05 });
    assert.equal(d.reserved, true);
    assert.equal(await c.reportUsage(d, 0.01), true);
    const err = await caught(c.reportUsage(d.decisionId, 0.01), InvalidCall);
    assert.equal(err.status, 409);
    // A decision that reserved nothing has nothing to settle.
    const free = await client.decide('search', 'query', { q: 'x' });
    assert.equal(await client.reportUsage(free, 1), false);
    c.close();
  });

  test('shadow mode: a denied call runs, and the decision says what would have happened', async () => {
    const c = new Client({ url: aegis.url, agentToken: await aegis.token('finance-agent', { tenant: 'lab' }) });
    const exportAll = enforce({ tool: 'crm', action: 'export_all', client: c }, async () =>
      currentDecision());
    const d = await exportAll();
    assert.equal(d.decision, 'deny');
    assert.equal(d.effectiveDecision, 'allow');
    assert.equal(d.enforced, false);
    assert.equal(d.outcome, 'allow');
    // Sanitize is not applied in shadow mode either.
    let ssn;
    const lookup = enforce({ tool: 'crm', action: 'lookup_customer', client: c },
      async (s) => { ssn = s; });
    await lookup('123-45-6789');
    assert.equal(ssn, '123-45-6789');
    c.close();
  });

  test('arguments that are not JSON are a ParamsError before anything is sent', async () => {
    const c = new Client({ url: aegis.url, agentToken: await aegis.token('finance-agent') });
    const pay = enforce({ tool: 'stripe', action: 'create_payment', client: c },
      async (amount, meta) => amount);
    const cyclic = {};
    cyclic.self = cyclic;
    for (const [args, path] of [
      [[10n], 'params.amount'],
      [[10, { cb: () => 1 }], 'params.meta.cb'],
      [[10, cyclic], 'params.meta.self'],
      [[10, { s: Symbol('x') }], 'params.meta.s'],
      [[NaN], 'params.amount'],
      [[10, new Set([1])], 'params.meta'],
      [[10, '\ud800'], 'params.meta'],
      [[10, 2, 3], undefined],
    ]) {
      const err = await caught(pay(...args), ParamsError);
      if (path) assert.equal(err.path, path, err.message);
    }
    assert.equal(c.stats().decisions, 0);
    assert.equal(c.stats().unavailable, 0);
    c.close();
  });
});

describe('Client', () => {
  test('decide resolves to the decision of every outcome', async () => {
    const cases = [
      ['stripe', 'create_payment', { amount: 10 }, 'allow', 200],
      ['crm', 'lookup_customer', { ssn: '1' }, 'sanitize', 200],
      ['crm', 'export_all', {}, 'deny', 403],
      ['stripe', 'create_payment', { amount: 6000 }, 'approval_needed', 403],
    ];
    for (const [tool, action, params, outcome, status] of cases) {
      const d = await client.decide(tool, action, params);
      assert.equal(d.outcome, outcome, `${tool}/${action}`);
      assert.equal(d.status, status);
      assert.equal(d.agent, 'finance-agent');
    }
  });

  test('client.enforce throws for refusals and resolves for allowed calls', async () => {
    const d = await client.enforce('stripe', 'create_payment', { amount: 10 });
    assert.equal(d.rule, 'payments');
    await caught(client.enforce('crm', 'export_all', {}), PolicyDenied);
  });

  test('a call the gateway refuses as malformed is InvalidCall', async () => {
    const err = await caught(client.decide('bad tool name', 'x', {}), InvalidCall);
    assert.equal(err.status, 400);
  });

  test('an invalid agent token is AuthenticationError; no token at all too', async () => {
    const bad = new Client({ url: aegis.url, agentToken: 'not.a.token' });
    const err = await caught(bad.decide('search', 'query', {}), AuthenticationError);
    assert.equal(err.status, 401);
    const none = new Client({ url: aegis.url, agent: 'finance-agent' });
    await caught(none.decide('search', 'query', {}), AuthenticationError);
    assert.throws(() => new Client({ url: aegis.url }).callBody('search', 'query', {}),
      ConfigurationError);
    bad.close();
    none.close();
  });

  test('calls reuse one keep-alive connection', async () => {
    // A TCP relay in front of Aegis counts the connections the client opens.
    let connections = 0;
    const relay = net.createServer((inbound) => {
      connections++;
      const outbound = net.connect(aegis.port, '127.0.0.1');
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    await new Promise((r) => relay.listen(0, '127.0.0.1', r));
    const c = new Client({ url: `http://127.0.0.1:${relay.address().port}`,
      agentToken: await aegis.token('finance-agent') });
    for (let i = 0; i < 20; i++) await c.decide('search', 'query', { q: `q${i}` });
    assert.equal(c.stats().decisions, 20);
    assert.equal(connections, 1);
    c.close();
    relay.close();
  });
});
