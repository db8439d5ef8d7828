// The shared conformance cases, sdk/cases/cases.json (written with the Python SDK, run by every
// SDK so they cannot drift apart): each case's function is built with its signature, wrapped by
// enforce(), called against a real `aegis serve` with sdk/cases/bundle, and the outcome, the params
// sent, their digest, the arguments the function ran with and the gateway's own digest of
// approvals are compared with the file. Also the file's digest vectors.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AegisError, ApprovalRequired, BudgetExceeded, callDigest, canonicalize, Client, currentDecision,
  enforce, ParamsError, PolicyDenied, RateLimited,
} from '../src/index.js';
import { argumentMapper } from '../src/params.js';
import { identityConfig, REPO, SECRETS, startAegis } from './support/aegis.js';

const CASES_DIR = path.join(REPO, 'sdk', 'cases');
const CASES_FILE = path.join(CASES_DIR, 'cases.json');
// The case file comes with the Python SDK; until it is in the tree there is nothing to run.
const CASES = existsSync(CASES_FILE) ? JSON.parse(readFileSync(CASES_FILE, 'utf8'))
  : { digests: [], cases: [], missing: true };

const ERRORS = {
  deny: PolicyDenied,
  approval_needed: ApprovalRequired,
  rate_limited: RateLimited,
  budget_exceeded: BudgetExceeded,
  params_error: ParamsError,
};

class Opaque {}

// The case file's placeholders for values JSON cannot hold, as JavaScript values.
function native(value) {
  if (Array.isArray(value)) return value.map(native);
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === '$unencodable') return new Opaque();
    if (keys.length === 1 && keys[0] === '$number') {
      return { NaN, Infinity, '-Infinity': -Infinity }[value.$number];
    }
    return Object.fromEntries(keys.map((k) => [k, native(value[k])]));
  }
  return value;
}

// A function with the case's signature in its source (so the SDK reads the names and defaults as
// it would from user code), recording the values it runs with.
function makeFunction(spec, received) {
  const list = spec.parameters.map((p) =>
    ('default' in p ? `${p.name} = ${JSON.stringify(p.default)}` : p.name)).join(', ');
  const names = spec.parameters.map((p) => p.name).join(', ');
  const source = `return async function ${spec.action}(${list}) {\n` +
    `  record({ ${names} });\n  return 'ran';\n}`;
  // eslint-disable-next-line no-new-func
  return new Function('record', source)((values) => received.push([values, currentDecision()]));
}

describe('shared digest vectors', () => {
  for (const v of CASES.digests) {
    test(v.name, () => {
      const canonical = canonicalize({ action: v.action, agent: v.agent, params: v.params,
        tenant: v.tenant, tool: v.tool });
      assert.equal(canonical, v.canonical);
      assert.equal(callDigest(v.tenant, v.agent, v.tool, v.action, v.params), v.digest);
    });
  }
});

describe('shared cases', { skip: CASES.missing && `no ${CASES_FILE}` }, () => {
  let aegis;
  let client;

  before(async () => {
    const serve = CASES.serve_config ?? {};
    // The approver credential lets the runner read approvals; the case file's settings win.
    const credentials = identityConfig().identity.credentials;
    const config = { ...serve, identity: { credentials, ...(serve.identity ?? {}) } };
    aegis = await startAegis({ bundle: { dir: path.join(CASES_DIR, CASES.bundle) }, config });
    client = new Client({ url: aegis.url, timeoutMs: 5000 });
  });

  after(async () => {
    client.close();
    await aegis.close();
  });

  test('every case, in order, against one server', async (t) => {
    assert.ok(CASES.cases.length >= 10);
    const approvals = new Map(); // case name -> approval id
    for (const c of CASES.cases) {
      const fnSpec = c.function;
      const received = [];
      const fn = makeFunction(fnSpec, received);
      for (const [i, call] of c.calls.entries()) {
        await t.test(`${c.name} #${i}`, async () => {
          const { expect } = call;
          const wrapped = enforce({ tool: fnSpec.tool, action: fnSpec.action, agent: c.agent,
            tenant: c.tenant, cost: call.cost, client }, fn);
          const args = native(call.args);
          const decisionsBefore = client.stats().decisions;
          received.length = 0;
          let error = null;
          let result = null;
          try {
            result = await wrapped(...args);
          } catch (e) {
            if (!(e instanceof AegisError)) throw e;
            error = e;
          }
          if (error === null) {
            assert.equal(result, 'ran');
            assert.equal(received.length, 1);
          } else {
            assert.ok(error instanceof ERRORS[expect.outcome], `${expect.outcome}: ${error}`);
            assert.deepEqual(received, [], `the function ran despite ${error}`);
          }
          if (expect.outcome === 'params_error') {
            assert.equal(error.path, expect.path);
            assert.equal(client.stats().decisions, decisionsBefore, 'a request was sent');
            return;
          }
          // What was sent (read from the source, and the same with paramNames and defaults),
          // and its digest.
          const sent = argumentMapper(fn).toParams(args);
          assert.deepEqual(sent, expect.params);
          const defaults = Object.fromEntries(fnSpec.parameters.filter((p) => 'default' in p)
            .map((p) => [p.name, p.default]));
          assert.deepEqual(argumentMapper(() => {}, {
            paramNames: fnSpec.parameters.map((p) => p.name), defaults }).toParams(args),
          expect.params);
          assert.equal(callDigest(c.tenant ?? '', c.agent, fnSpec.tool, fnSpec.action, sent),
            expect.digest);
          const d = error !== null ? error.decision : received[0][1];
          assert.equal(d.outcome, expect.outcome, JSON.stringify(d.raw));
          if ('rule' in expect) assert.equal(d.rule, expect.rule);
          if ('reason' in expect) assert.equal(d.reasonCode, expect.reason);
          if ('decision' in expect) assert.equal(d.decision, expect.decision);
          if ('message' in expect) assert.equal(d.message, expect.message);
          if ('ran_with' in expect) assert.deepEqual(received[0][0], expect.ran_with);
          if ('redacted_paths' in expect) assert.deepEqual(d.redactedPaths, expect.redacted_paths);
          if ('cost_usd' in expect) assert.equal(d.costUsd, expect.cost_usd);
          if ('retry_after_min_seconds' in expect) {
            assert.ok(error.retryAfter >= expect.retry_after_min_seconds, String(error.retryAfter));
          }
          if ('remaining_usd' in expect) {
            assert.equal(error.budget.remaining_usd, expect.remaining_usd);
          }
          if (expect.outcome === 'approval_needed') {
            const res = await aegis.request('GET', `/v1/approvals/${error.approvalId}`,
              { headers: { authorization: `Bearer ${SECRETS.alice}` } });
            assert.equal(res.status, 200, JSON.stringify(res.body));
            // The gateway's digest of the call is the one computed here.
            assert.equal(res.body.call_digest, expect.digest);
            if ('quorum' in expect) assert.equal(res.body.quorum, expect.quorum);
            if ('same_approval_as' in expect) {
              assert.equal(error.approvalId, approvals.get(expect.same_approval_as));
            }
            approvals.set(c.name, error.approvalId);
          }
        });
      }
    }
    for (const outcome of Object.keys(ERRORS).concat(['allow', 'sanitize'])) {
      assert.ok(CASES.cases.some((c) => c.calls.some((x) => x.expect.outcome === outcome)),
        `no case for ${outcome}`);
    }
  });
});
