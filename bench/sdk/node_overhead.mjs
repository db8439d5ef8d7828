#!/usr/bin/env node
// Per-call overhead of the Node SDK's enforce() wrapper against calling the function bare, with
// keep-alive to a local `aegis serve` (started here, on the SDK tests' bundle, agent tokens on).
//
// Measured in one run, interleaved call by call so that all three see the same machine state:
//   bare      the unwrapped async function
//   raw http  one POST /v1/decide with a prebuilt body over node:http with a keep-alive Agent:
//             the floor any Node client pays (event loop, network stack, gateway)
//   wrapped   the enforce()d function: mapping and encoding the arguments, the decision, the
//             outcome, the function
// Overhead = wrapped - bare p50, per call. Prints p50 and p99 per run and the median over runs,
// and the SDK's own share (overhead - raw http p50). Target: p50 overhead <= 200 us.
//
// Usage: node bench/sdk/node_overhead.mjs [--aegis PATH] [--runs 5] [--calls 2000]
//        (PATH defaults to $AEGIS_BIN, else build/release/src/cli/aegis)

import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SDK = path.join(HERE, '..', '..', 'sdk', 'node');
const { Client, enforce } = await import(path.join(SDK, 'src', 'index.js'));
const { identityConfig, startAegis } = await import(path.join(SDK, 'test', 'support', 'aegis.js'));
const { BUNDLE } = await import(path.join(SDK, 'test', 'support', 'policy.js'));

const { values: args } = parseArgs({ options: {
  aegis: { type: 'string' }, runs: { type: 'string', default: '5' },
  calls: { type: 'string', default: '2000' } } });
if (args.aegis) process.env.AEGIS_BIN = path.resolve(args.aegis);
const runs = Number(args.runs);
const calls = Number(args.calls);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round((p / 100) * (s.length - 1)))];
};
const us = (ns) => Number(ns) / 1e3;

const aegis = await startAegis({ bundle: BUNDLE, config: identityConfig({ log_level: 'warn' }) });
let code = 1;
try {
  const token = await aegis.token('finance-agent');
  const client = new Client({ url: aegis.url, agentToken: token, timeoutMs: 5000 });
  const bare = async (q, filters = null, limit = 10) => q;
  const wrapped = enforce({ tool: 'search', action: 'query', client }, bare);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const body = JSON.stringify({ tool: 'search', action: 'query',
    params: { q: 'invoices', filters: null, limit: 10 } });
  const headers = { 'content-type': 'application/json', 'x-aegis-token': token,
    'content-length': Buffer.byteLength(body) };
  const raw = () => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: aegis.port, path: '/v1/decide',
      method: 'POST', headers, agent }, (res) => {
      res.on('data', () => {});
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${res.statusCode}`))));
    });
    req.on('socket', (s) => s.setNoDelay(true));
    req.on('error', reject);
    req.end(body);
  });

  for (let i = 0; i < 500; i++) { // warm up: connections, JIT, the token cache
    await wrapped('invoices');
    await raw();
  }
  const clock = process.hrtime.bigint;
  const rows = [];
  for (let run = 1; run <= runs; run++) {
    const b = [];
    const r = [];
    const w = [];
    for (let i = 0; i < calls; i++) {
      const t0 = clock();
      await bare('invoices');
      const t1 = clock();
      await raw();
      const t2 = clock();
      await wrapped('invoices');
      const t3 = clock();
      b.push(us(t1 - t0));
      r.push(us(t2 - t1));
      w.push(us(t3 - t2));
    }
    const bareP50 = median(b);
    const over = w.map((x) => x - bareP50);
    const row = { bareP50, rawP50: median(r), rawP99: percentile(r, 99), overP50: median(over),
      overP99: percentile(over, 99) };
    row.sdkP50 = row.overP50 - row.rawP50;
    rows.push(row);
    console.log(`run ${run}: bare p50 ${row.bareP50.toFixed(2)} us | raw http p50 ` +
      `${row.rawP50.toFixed(1)} p99 ${row.rawP99.toFixed(1)} us | wrapper overhead p50 ` +
      `${row.overP50.toFixed(1)} p99 ${row.overP99.toFixed(1)} us | SDK's own share p50 ` +
      `${row.sdkP50.toFixed(1)} us`);
  }
  const med = Object.fromEntries(Object.keys(rows[0]).map((k) => [k, median(rows.map((x) => x[k]))]));
  const s = client.stats();
  if (s.allow !== s.decisions || s.decisions < runs * calls) throw new Error(`decisions: ${JSON.stringify(s)}`);
  console.log(`\nmedian of ${runs} runs x ${calls} calls (Node ${process.version}, keep-alive, ` +
    'agent token, audit on):');
  console.log(`  wrapper overhead    p50 ${med.overP50.toFixed(1).padStart(7)} us   p99 ` +
    `${med.overP99.toFixed(1).padStart(7)} us   (target p50 <= 200 us)`);
  console.log(`  raw POST /v1/decide p50 ${med.rawP50.toFixed(1).padStart(7)} us   p99 ` +
    `${med.rawP99.toFixed(1).padStart(7)} us   (the floor)`);
  console.log(`  SDK's own share     p50 ${med.sdkP50.toFixed(1).padStart(7)} us   ratio ` +
    `wrapped/raw ${(med.overP50 / med.rawP50).toFixed(2)}x`);
  const ok = med.overP50 <= 200;
  console.log(`  ${ok ? 'PASS' : 'ABOVE TARGET'}`);
  client.close();
  agent.destroy();
  code = ok ? 0 : 1;
} finally {
  await aegis.close();
}
process.exit(code);
