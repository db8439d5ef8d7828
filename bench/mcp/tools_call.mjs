#!/usr/bin/env node
// What Aegis adds to an MCP tools/call: server-everything's `echo`, called without the MCP SDK
// (hand-written JSON-RPC, so that the client's own cost is as small as it can be and the same on
// every path), one call at a time, on four paths:
//
//   http direct   POST /mcp to server-everything (streamable HTTP, keep-alive, one session)
//   http aegis    POST /everything to the aegis proxy's MCP route (a rule allows echo; audit
//                 trail on, as configured by default) -> server-everything /mcp
//   stdio direct  node server-everything stdio, newline-delimited JSON-RPC on its pipes
//   stdio wrap    aegis mcp wrap -- node server-everything stdio: each call decided by the same
//                 aegis serve's POST /v1/decide before the server sees it
//
// Each run makes CALLS calls per path, interleaved call by call (one call on each path in turn)
// so that all paths see the same machine state; every answer is checked (the echo, and through
// the proxy `x-aegis-decision: allow`). Prints p50/p99 per run, the medians over RUNS runs, and
// what each aegis path adds to its direct path. The latency of a call is from the request's
// first byte written to its answer parsed.
//
// Usage: node bench/mcp/tools_call.mjs --aegis PATH [--runs 3] [--calls 2000] [--warmup 1000]
//        [--modules DIR]   (DIR: the node_modules holding @modelcontextprotocol/server-everything;
//                           default tests/mcp/node_modules)
// Exits non-zero when something fails to start or any call fails.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({ options: {
  aegis: { type: 'string' }, runs: { type: 'string', default: '3' },
  calls: { type: 'string', default: '2000' }, warmup: { type: 'string', default: '1000' },
  modules: { type: 'string', default: path.join(HERE, '..', '..', 'tests', 'mcp', 'node_modules') },
} });
if (!args.aegis) {
  console.error('usage: node bench/mcp/tools_call.mjs --aegis PATH [--runs 3] [--calls 2000] ' +
                '[--warmup 1000] [--modules DIR]');
  process.exit(2);
}
const AEGIS = path.resolve(args.aegis);
const EVERYTHING = path.join(path.resolve(args.modules), '@modelcontextprotocol',
                             'server-everything', 'dist', 'index.js');
const RUNS = Number(args.runs);
const CALLS = Number(args.calls);
const WARMUP = Number(args.warmup);
const PROTOCOL = '2025-06-18';

const POLICY = `\
apiVersion: aegis/v1
kind: Policy
metadata: {name: bench-mcp}
tools:
  everything:
    actions: {echo: {}}
agents:
  bench-agent: {tools: [everything]}
rules:
  - {id: echo, match: {tools: [everything], actions: [echo]}, effect: allow}
`;

// --- processes ------------------------------------------------------------------------------

const processes = [];
process.on('exit', () => {
  for (const p of processes) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

// Spawns `cmd args`; resolves with the process once a line of its output (stdout and stderr when
// stdout is not `piped`) matches `ready`, with the match.
function start(cmd, argv, { env = process.env, ready, piped = false, ms = 15000 }) {
  const proc = spawn(cmd, argv, { env, stdio: [piped ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  processes.push(proc);
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start:\n${output}`)), ms);
    const watch = (chunk) => {
      output += chunk;
      const m = output.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, match: m, output: () => output });
      }
    };
    proc.stderr.setEncoding('utf8').on('data', watch);
    if (!piped) proc.stdout.setEncoding('utf8').on('data', watch);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited (${code ?? signal}) before starting:\n${output}`));
    });
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// --- the streamable HTTP client ---------------------------------------------------------------

// One MCP session over keep-alive HTTP/1.1 (one connection): `call(message)` POSTs a JSON-RPC
// request and resolves with its answer, from a JSON body or from the text/event-stream events.
class HttpSession {
  constructor(port, urlPath, headers = {}) {
    this.port = port;
    this.path = urlPath;
    this.headers = headers;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.sessionId = undefined;
    this.lastHeaders = undefined;
  }

  post(message) {
    const body = JSON.stringify(message);
    const headers = {
      'content-type': 'application/json', accept: 'application/json, text/event-stream',
      'content-length': Buffer.byteLength(body), ...this.headers,
    };
    if (this.sessionId) {
      headers['mcp-session-id'] = this.sessionId;
      headers['mcp-protocol-version'] = PROTOCOL;
    }
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: this.port, path: this.path,
                                 method: 'POST', agent: this.agent, headers }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
                                      body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  async call(message) {
    const r = await this.post(message);
    this.lastHeaders = r.headers;
    if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body}`);
    const type = r.headers['content-type'] || '';
    let messages;
    if (type.startsWith('text/event-stream')) {
      messages = r.body.split(/\r?\n\r?\n/).flatMap((event) => {
        const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        return data ? [JSON.parse(data)] : [];
      });
    } else {
      messages = [JSON.parse(r.body)];
    }
    const answer = messages.find((m) => m.id === message.id && !m.method);
    if (!answer) throw new Error(`no answer to ${message.id} in: ${r.body}`);
    return answer;
  }

  async initialize() {
    const init = await this.post({ jsonrpc: '2.0', id: 0, method: 'initialize',
                                   params: { protocolVersion: PROTOCOL, capabilities: {},
                                             clientInfo: { name: 'bench-mcp', version: '1' } } });
    if (init.status !== 200) throw new Error(`initialize: HTTP ${init.status}: ${init.body}`);
    this.sessionId = init.headers['mcp-session-id'];
    if (!this.sessionId) throw new Error(`initialize: no session id: ${JSON.stringify(init.headers)}`);
    const note = await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    if (note.status !== 202) throw new Error(`notifications/initialized: HTTP ${note.status}`);
  }
}

// --- the stdio client -----------------------------------------------------------------------

// newline-delimited JSON-RPC on a child's standard input and output.
class StdioSession {
  constructor(proc) {
    this.proc = proc;
    this.pending = new Map();
    let rest = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) {
        let m;
        try {
          m = JSON.parse(line);
        } catch {
          continue;
        }
        const waiter = m.method ? undefined : this.pending.get(m.id);
        if (waiter) {
          this.pending.delete(m.id);
          waiter(m);
        }
      }
    });
  }

  call(message) {
    return new Promise((resolve) => {
      this.pending.set(message.id, resolve);
      this.proc.stdin.write(`${JSON.stringify(message)}\n`);
    });
  }

  async initialize() {
    const init = await this.call({ jsonrpc: '2.0', id: 0, method: 'initialize',
                                   params: { protocolVersion: PROTOCOL, capabilities: {},
                                             clientInfo: { name: 'bench-mcp', version: '1' } } });
    if (!init.result) throw new Error(`initialize: ${JSON.stringify(init)}`);
    this.proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0',
                                              method: 'notifications/initialized' })}\n`);
  }

  close() {
    this.proc.stdin.end();
    return new Promise((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) resolve();
      else this.proc.on('exit', () => resolve());
    });
  }
}

// --- measuring ------------------------------------------------------------------------------

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round((p / 100) * (s.length - 1)))];
};
const median = (xs) => percentile(xs, 50);
const us = (x) => x.toFixed(0);

let nextId = 1;
// One echo call on `path`; returns its latency in microseconds. Throws on a wrong answer.
async function echo(p) {
  const id = nextId++;
  const message = `bench ${id}`;
  const request = { jsonrpc: '2.0', id, method: 'tools/call',
                    params: { name: 'echo', arguments: { message } } };
  const t0 = process.hrtime.bigint();
  const answer = await p.session.call(request);
  const t1 = process.hrtime.bigint();
  const text = answer.result?.content?.[0]?.text;
  if (text !== `Echo: ${message}` || answer.result.isError) {
    throw new Error(`${p.name}: ${JSON.stringify(answer)}`);
  }
  if (p.decided && p.session.lastHeaders && p.session.lastHeaders['x-aegis-decision'] !== 'allow') {
    throw new Error(`${p.name}: x-aegis-decision ${p.session.lastHeaders['x-aegis-decision']}`);
  }
  return Number(t1 - t0) / 1e3;
}

const tmp = mkdtempSync(path.join(tmpdir(), 'aegis-bench-mcp-'));
let status = 1;
const paths = [];
try {
  // server-everything over streamable HTTP, and aegis serve with an MCP route to it.
  const everythingPort = await freePort();
  await start(process.execPath, [EVERYTHING, 'streamableHttp'], {
    env: { PATH: process.env.PATH, PORT: String(everythingPort) },
    ready: /MCP Streamable HTTP Server listening on port \d+/,
  });
  mkdirSync(path.join(tmp, 'bundle'));
  writeFileSync(path.join(tmp, 'bundle', 'policy.yaml'), POLICY);
  writeFileSync(path.join(tmp, 'aegis.yaml'), JSON.stringify({
    data_dir: path.join(tmp, 'data'),
    log_level: 'warn',
    identity: { require_agent_token: false },
    proxy: { routes: { everything: { mcp: true,
                                     upstream: `http://127.0.0.1:${everythingPort}/mcp` } } },
  }));
  const aegis = await start(AEGIS, ['serve', '--bundle', path.join(tmp, 'bundle'),
                                    '--config', path.join(tmp, 'aegis.yaml'),
                                    '--http', '127.0.0.1:0', '--grpc', '127.0.0.1:0',
                                    '--proxy', '127.0.0.1:0'], {
    ready: /aegis: ready \(policy/,
  });
  const listening = (kind) => Number(aegis.output()
    .match(new RegExp(`aegis: ${kind} listening on \\S+:(\\d+)`))[1]);
  const httpPort = listening('http');
  const proxyPort = listening('proxy');

  const agent = { 'x-aegis-agent': 'bench-agent' };  // sent on both HTTP paths: the same bytes
  paths.push({ name: 'http direct', session: new HttpSession(everythingPort, '/mcp', agent) });
  paths.push({ name: 'http aegis', session: new HttpSession(proxyPort, '/everything', agent),
               decided: true, base: 'http direct' });
  const direct = await start(process.execPath, [EVERYTHING, 'stdio'], {
    env: { PATH: process.env.PATH }, ready: /./, piped: true });
  paths.push({ name: 'stdio direct', session: new StdioSession(direct.proc) });
  const wrap = await start(AEGIS, ['mcp', 'wrap', '--agent', 'bench-agent', '--tool', 'everything',
                                   '--server', `http://127.0.0.1:${httpPort}`, '--',
                                   process.execPath, EVERYTHING, 'stdio'], {
    env: { PATH: process.env.PATH }, ready: /./, piped: true });
  paths.push({ name: 'stdio wrap', session: new StdioSession(wrap.proc), decided: true,
               base: 'stdio direct' });
  for (const p of paths) await p.session.initialize();

  const cpu = cpus()[0]?.model?.trim() ?? 'unknown CPU';
  console.log(`== MCP tools/call (server-everything echo), one call at a time, ${cpus().length} ` +
              `cores, ${cpu}`);
  console.log(`   ${CALLS} calls per path per run, interleaved across the paths, after ${WARMUP} ` +
              `warm-up calls each; ${RUNS} runs; node ${process.version} client without the SDK`);
  for (let i = 0; i < WARMUP; i++) for (const p of paths) await echo(p);
  for (const p of paths) {
    p.p50 = [];
    p.p99 = [];
  }
  for (let run = 0; run < RUNS; run++) {
    const samples = new Map(paths.map((p) => [p, []]));
    for (let i = 0; i < CALLS; i++) for (const p of paths) samples.get(p).push(await echo(p));
    for (const p of paths) {
      p.p50.push(percentile(samples.get(p), 50));
      p.p99.push(percentile(samples.get(p), 99));
    }
  }

  console.log();
  const row = (...cells) => console.log(cells[0].padEnd(14) +
                                        cells.slice(1).map((c) => String(c).padStart(14)).join(''));
  row('path', 'p50 us', 'p99 us', 'added p50 us', 'added p99 us');
  const byName = new Map(paths.map((p) => [p.name, p]));
  for (const p of paths) {
    const base = p.base && byName.get(p.base);
    row(p.name, us(median(p.p50)), us(median(p.p99)),
        base ? us(median(p.p50) - median(base.p50)) : '-',
        base ? us(median(p.p99) - median(base.p99)) : '-');
  }
  console.log('   p50 / p99 us of each run:');
  for (const p of paths) {
    console.log(`     ${p.name.padEnd(14)}${p.p50.map((x, i) => ` ${us(x)}/${us(p.p99[i])}`).join('')}`);
  }
  console.log();
  for (const p of paths.filter((q) => q.base)) {
    const base = byName.get(p.base);
    console.log(`mcp-result path="${p.name}" added_p50_us=${us(median(p.p50) - median(base.p50))} ` +
                `added_p99_us=${us(median(p.p99) - median(base.p99))}`);
  }
  status = 0;
} catch (e) {
  console.error(`bench-mcp: ${e.stack || e}`);
} finally {
  for (const p of paths) if (p.session instanceof StdioSession) await p.session.close();
  for (const proc of processes) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  }
  await Promise.all(processes.map((proc) => (proc.exitCode !== null || proc.signalCode !== null
    ? undefined : new Promise((r) => proc.on('exit', r)))));
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(status);
