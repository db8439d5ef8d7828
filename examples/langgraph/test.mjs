// Runs the example against a real `aegis serve` (the example's policy and aegis.yaml, a temporary
// data directory, port 0) and checks that its run shows the four outcomes: allowed, sanitized,
// denied and approved tool calls. Usage: AEGIS_BIN=<path to aegis> node --test test.mjs

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const AEGIS = process.env.AEGIS_BIN;
let server;
let url;
let dataDir;

before(async () => {
  assert.ok(AEGIS, 'set AEGIS_BIN to the aegis binary');
  dataDir = mkdtempSync(path.join(tmpdir(), 'aegis-langgraph-'));
  server = spawn(AEGIS, ['serve', '--config', path.join(HERE, 'aegis.yaml'),
    '--bundle', path.join(HERE, 'policy'), '--http', '127.0.0.1:0', '--grpc', '127.0.0.1:0',
    '--proxy', 'off'], { env: { ...process.env, AEGIS_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`aegis serve not ready:\n${output}`)), 30_000);
    let port = null;
    const onData = (chunk) => {
      output += chunk;
      port = port ?? /aegis: http listening on 127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      if (port && /aegis: ready/.test(output)) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${port}`);
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', (code) => reject(new Error(`aegis serve exited ${code}:\n${output}`)));
  });
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

test('the agent run shows allowed, sanitized, denied and approved tool calls', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(HERE, 'agent.mjs'),
    '--json'], { env: { ...process.env, AEGIS_URL: url,
    AEGIS_ISSUER_CREDENTIAL: 'example-issuer-secret-0123',
    AEGIS_APPROVER_CREDENTIAL: 'example-approver-secret-0123' }, timeout: 50_000 });
  const { outcomes, answer } = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.deepEqual(outcomes.map((o) => [o.tool, o.outcome, o.rule]), [
    ['search_docs', 'allow', 'docs-are-public'],
    ['lookup_customer', 'sanitize', 'crm-pii'],
    ['export_customers', 'deny', 'no-bulk-export'],
    ['refund', 'approved', 'large-refund'],
  ]);
  // The CRM tool ran with the redacted values, never the SSN or the address.
  assert.deepEqual(outcomes[1].ran_with, { customer_id: 'cus_42', ssn: '[REDACTED]',
    note: 'prefers mail to [REDACTED:email]' });
  assert.equal(outcomes[2].error, 'PolicyDenied');
  assert.deepEqual(outcomes[3].ran_with, { charge_id: 'ch_3PZ', amount: 750 });
  assert.match(answer, /Refunded \$750/);
  // Aegis agrees: the refund's approval was approved by the supervisor.
  const res = await fetch(`${url}/v1/approvals?state=approved`, {
    headers: { authorization: 'Bearer example-approver-secret-0123' } });
  const { approvals } = await res.json();
  assert.equal(approvals.length, 1);
  assert.equal(approvals[0].votes[0].approver, 'supervisor');
});
