// The MCP gateway of `aegis serve` (a proxy route with `mcp: true`, docs/mcp.md) between the
// official MCP TypeScript SDK client and the reference MCP server, server-everything, over the
// streamable HTTP transport:
//
//   SDK Client ──▶ aegis proxy /everything ──▶ recorder (node http) ──▶ server-everything /mcp
//
// The recorder keeps every request Aegis forwarded (method, headers, JSON-RPC body), so the test
// can say what the upstream saw and what it never saw. A second SDK client talks to
// server-everything directly, as the reference for what an unfiltered, undecided answer is.
//
// Checked: initialize and the session id; tools/list filtered to what the agent may call;
// allowed calls answered by the upstream unchanged; refused calls (deny, approval_needed, out of
// scope) answered by Aegis as tool errors with the decision, never forwarded; sanitize rewriting
// the arguments; progress notifications and the server's own GET stream relayed as they happen;
// a refusal of a tool with an outputSchema that the SDK client accepts; other requests passed
// through; 401 without an agent token; x-aegis-agent where tokens are not required; JSON-RPC
// batches refused; decisions counted in /metrics; the session ended with DELETE.
//
// server-everything 2026.8.31 names its tools echo, get-sum, get-env,
// trigger-long-running-operation, ... (the older add / printEnv / longRunningOperation are gone).
//
// Usage: node gateway_test.mjs <path to aegis>
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Child, assertDecidedRefusal, closeQuietly, startAegis as startAegisOn, text } from './support.mjs';

const AEGIS = process.argv[2];
if (!AEGIS) {
  console.error('usage: node gateway_test.mjs <path to aegis>');
  process.exit(2);
}
const HERE = dirname(fileURLToPath(import.meta.url));
const EVERYTHING = join(HERE, 'node_modules', '@modelcontextprotocol', 'server-everything',
                        'dist', 'index.js');

const SSN = '123-45-6789';
const SECRETS = { orchestrator: 'orchestrator-secret-0123456789' };

// Tool names as server-everything 2026.8.31 registers them (src/everything/tools/*.ts).
const POLICY = `\
apiVersion: aegis/v1
kind: Policy
metadata: {name: mcp-gateway-test}
tools:
  everything:
    actions:
      echo: {}
      get-sum: {}
      get-env: {}
      get-tiny-image: {}
      get-structured-content: {}
      trigger-long-running-operation: {}
      toggle-simulated-logging: {}
  other:
agents:
  mcp-agent: {tools: [everything]}
  counted-agent: {tools: [everything]}
  outsider: {tools: [other]}
rules:
  - id: echo-ok
    match: {tools: [everything], actions: [echo]}
    effect: allow
  - id: echo-ssn
    match: {tools: [everything], actions: [echo]}
    if: 'params.message.contains("SSN")'
    effect: sanitize
    redact: {detectors: [ssn]}
  - id: sum-small
    match: {tools: [everything], actions: [get-sum]}
    if: params.a < 100
    effect: allow
  - id: sum-ceiling
    match: {tools: [everything], actions: [get-sum]}
    if: params.a >= 100
    effect: deny
    message: Sums from 100 up are not for agents
  - id: sum-approval
    match: {tools: [everything], actions: [get-sum]}
    if: params.b > 1000
    effect: approval_needed
    approval: {quorum: 1, ttl: 1h}
    message: Large sums need a human
  - id: ops-ok
    match: {tools: [everything],
            actions: [get-env, trigger-long-running-operation, toggle-simulated-logging]}
    effect: allow
  - id: no-env
    match: {tools: [everything], actions: [get-env]}
    effect: deny
    message: The environment holds secrets
  - id: weather-ny
    match: {tools: [everything], actions: [get-structured-content]}
    if: params.location == "New York"
    effect: allow
`;

// What mcp-agent may call: every tool some rule could allow. get-env is denied outright (no-env
// beats ops-ok), get-tiny-image has no rule (default deny), the rest are no declared action.
const OFFERED = ['echo', 'get-structured-content', 'get-sum', 'toggle-simulated-logging',
                 'trigger-long-running-operation'];

// --- processes ------------------------------------------------------------------------------

// A port that was free a moment ago (server-everything cannot listen on port 0 and report it).
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

// server-everything with the streamable HTTP transport: `index.js streamableHttp`, port from
// the PORT environment variable, endpoint /mcp. Retried on another port if the one chosen was
// taken in the meantime.
async function startEverything() {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = new Child(process.execPath, [EVERYTHING, 'streamableHttp'], {
      env: { PATH: process.env.PATH, PORT: String(port) },
    });
    try {
      await child.waitFor(/MCP Streamable HTTP Server listening on port (\d+)/, 10000);
      return { child, port };
    } catch (e) {
      await child.stop();
      if (attempt >= 3 || !/already in use/.test(child.output())) throw e;
    }
  }
}

// `aegis serve` on port 0 for every listener, in `dir`. Resolves once it printed `aegis: ready`.
function startAegis(dir, config) {
  return startAegisOn(AEGIS, dir, POLICY, config);
}

// --- the recorder between Aegis and server-everything --------------------------------------

// A reverse proxy to 127.0.0.1:`port` that keeps each request it forwards: {method, url,
// headers, body (text), json (parsed, or undefined), status}. Responses stream through as they
// arrive (server-sent events included).
function startRecorder(port) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json;
      try {
        json = body ? JSON.parse(body) : undefined;
      } catch {
        json = undefined;
      }
      const entry = { method: req.method, url: req.url, headers: req.headers, body, json,
                      status: undefined };
      seen.push(entry);
      const upstream = http.request({
        host: '127.0.0.1', port, method: req.method, path: req.url,
        headers: { ...req.headers, host: `127.0.0.1:${port}` },
      }, (up) => {
        entry.status = up.statusCode;
        res.writeHead(up.statusCode, up.headers);
        res.flushHeaders();
        up.pipe(res);
      });
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      res.on('close', () => upstream.destroy());
      upstream.end(body);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      seen,
      // The JSON-RPC messages forwarded (a batch counts as its elements).
      messages: () => seen.flatMap((e) => (Array.isArray(e.json) ? e.json : e.json ? [e.json] : [])),
      // The tools/call requests forwarded: [{name, arguments}].
      calls: () => seen.flatMap((e) => (e.json && e.json.method === 'tools/call'
        ? [e.json.params] : [])),
      close: () => new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
    }));
  });
}

// --- helpers ---------------------------------------------------------------------------------

const sha256 = (s) => createHash('sha256').update(s).digest('hex');

async function connect(url, headers = {}) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: 'aegis-mcp-gateway-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

function parseMetrics(body) {
  const out = new Map();
  for (const line of body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

// --- the tests -------------------------------------------------------------------------------

describe('MCP gateway between the MCP SDK client and server-everything', { timeout: 50000 }, () => {
  let tmp;
  let everything;
  let recorder;
  let aegis;
  let gatewayUrl;
  let tokens;
  let direct;  // an SDK client on server-everything itself
  let gw;      // an SDK client through Aegis, as mcp-agent

  const auth = (agent) => ({ Authorization: `Bearer ${tokens[agent]}` });

  before(async () => {
    try {
      await setUp();
    } catch (e) {
      // Say what aegis serve did: a crash shows up here only as a failed fetch.
      if (aegis) await Promise.race([aegis.child.exited, new Promise((r) => setTimeout(r, 500))]);
      const what = aegis ? `aegis serve (exit ${aegis.child.exitCode ?? 'none yet'}):\n` +
        aegis.child.output() : '';
      throw new Error(`${e.stack || e}\n${what}`);
    }
  });

  async function setUp() {
    tmp = mkdtempSync(join(tmpdir(), 'aegis-mcp-'));
    everything = await startEverything();
    recorder = await startRecorder(everything.port);
    aegis = await startAegis(tmp, {
      data_dir: join(tmp, 'data'),
      identity: {
        require_agent_token: true,
        credentials: [
          { name: 'orchestrator', token_sha256: sha256(SECRETS.orchestrator), roles: ['issuer'] },
        ],
      },
      proxy: {
        routes: {
          everything: { mcp: true, upstream: `http://127.0.0.1:${recorder.port}/mcp`,
                        redact_results: false },
        },
      },
    });
    gatewayUrl = `http://127.0.0.1:${aegis.proxyPort}/everything`;
    tokens = {};
    for (const agent of ['mcp-agent', 'counted-agent', 'outsider']) {
      const r = await fetch(`http://127.0.0.1:${aegis.httpPort}/v1/tokens`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json',
                   Authorization: `Bearer ${SECRETS.orchestrator}` },
        body: JSON.stringify({ agent }),
      });
      const body = await r.text();
      assert.equal(r.status, 200, body);
      tokens[agent] = JSON.parse(body).token;
    }
    direct = await connect(`http://127.0.0.1:${everything.port}/mcp`);
    gw = await connect(gatewayUrl, auth('mcp-agent'));
  }

  after(async () => {
    await closeQuietly(gw);
    await closeQuietly(direct);
    const code = aegis ? await aegis.child.stop() : 0;
    const output = aegis ? aegis.child.output() : '';
    if (recorder) await recorder.close();
    if (everything) await everything.child.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    assert.equal(code, 0, `aegis serve exited with ${code}:\n${output}`);
  });

  it('initializes through the gateway: the upstream answers, its session id passes both ways',
     async () => {
       assert.deepEqual(gw.client.getServerVersion(), direct.client.getServerVersion());
       assert.equal(gw.client.getServerVersion().name, 'mcp-servers/everything');
       assert.equal(gw.client.getInstructions(), direct.client.getInstructions());
       const sid = gw.transport.sessionId;
       assert.equal(typeof sid, 'string');
       assert.ok(sid.length > 0);
       // The initialize request reached the upstream; later requests carry the session id and
       // the negotiated protocol version the client got back through Aegis.
       const init = recorder.seen.find((e) => e.json && e.json.method === 'initialize');
       assert.ok(init, 'initialize was not forwarded');
       assert.equal(init.status, 200);
       const later = recorder.seen.filter((e) => e.headers['mcp-session-id'] === sid);
       assert.ok(later.some((e) => e.json && e.json.method === 'notifications/initialized'),
                 JSON.stringify(recorder.seen.map((e) => [e.method, e.json && e.json.method])));
       for (const e of later) {
         assert.equal(e.headers['mcp-protocol-version'], gw.transport.protocolVersion);
       }
       assert.equal(gw.transport.protocolVersion, direct.transport.protocolVersion);
       // The agent's token is Aegis's business: the upstream sees neither it nor x-aegis-*.
       for (const e of recorder.seen) {
         assert.ok(!JSON.stringify(e.headers).includes(tokens['mcp-agent']),
                   `the agent token reached the upstream: ${JSON.stringify(e.headers)}`);
         assert.deepEqual(Object.keys(e.headers).filter((h) => h.startsWith('x-aegis-')), []);
       }
     });

  it('lists exactly the tools the agent may call, as the upstream describes them', async () => {
    const all = (await direct.client.listTools()).tools;
    const names = all.map((t) => t.name);
    for (const name of [...OFFERED, 'get-env', 'get-tiny-image', 'gzip-file-as-resource']) {
      assert.ok(names.includes(name), `server-everything no longer offers ${name}: ${names}`);
    }
    const listed = (await gw.client.listTools()).tools;
    assert.deepEqual(listed.map((t) => t.name).sort(), [...OFFERED].sort());
    assert.deepEqual(listed, all.filter((t) => OFFERED.includes(t.name)));

    // An agent whose scope does not hold the route's tool is offered nothing.
    const outsider = await connect(gatewayUrl, auth('outsider'));
    try {
      assert.deepEqual((await outsider.client.listTools()).tools, []);
      const r = await outsider.client.callTool({ name: 'echo', arguments: { message: 'out' } });
      const sc = assertDecidedRefusal(r, 'deny', 'an out-of-scope call');
      assert.equal(sc.reasons[0].code, 'tool_out_of_scope', JSON.stringify(sc));
      assert.ok(!recorder.calls().some((c) => c.arguments && c.arguments.message === 'out'));
    } finally {
      await closeQuietly(outsider);
    }
  });

  it('passes an allowed call through and returns the upstream result unchanged', async () => {
    const before = recorder.calls().length;
    const viaGateway = await gw.client.callTool({ name: 'echo', arguments: { message: 'hi' } });
    const viaDirect = await direct.client.callTool({ name: 'echo', arguments: { message: 'hi' } });
    assert.deepEqual(viaGateway, viaDirect);
    assert.deepEqual(viaGateway, { content: [{ type: 'text', text: 'Echo: hi' }] });
    assert.deepEqual(recorder.calls().slice(before).map((c) => [c.name, c.arguments]),
                     [['echo', { message: 'hi' }]]);
  });

  it('passes a call a condition allows: get-sum 1 + 2', async () => {
    const r = await gw.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } });
    assert.deepEqual(r, await direct.client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }));
    assert.equal(text(r), 'The sum of 1 and 2 is 3.');
  });

  it('answers a denied call itself, with the rule and the decision, and never forwards it',
     async () => {
       const before = recorder.seen.length;
       const r = await gw.client.callTool({ name: 'get-sum', arguments: { a: 500, b: 1 } });
       const sc = assertDecidedRefusal(r, 'deny', 'get-sum a=500');
       assert.equal(sc.reasons[0].code, 'rule');
       assert.equal(sc.reasons[0].rule, 'sum-ceiling');
       const t = text(r);
       assert.ok(t.includes('sum-ceiling'), t);
       assert.ok(t.includes('Sums from 100 up are not for agents'), t);
       assert.equal(sc.agent, 'mcp-agent');
       assert.equal(sc.tool, 'everything');
       assert.equal(sc.action, 'get-sum');
       assert.equal(recorder.seen.length, before, 'the upstream was contacted');
       assert.ok(!recorder.calls().some((c) => c.arguments && c.arguments.a === 500));
     });

  it('refuses the tools it hid from tools/list when they are called anyway', async () => {
    const before = recorder.seen.length;
    const cases = [
      ['get-env', {}, 'rule', 'no-env'],                          // denied outright
      ['get-tiny-image', {}, 'default', undefined],               // no rule allows it
      ['gzip-file-as-resource', { name: 'x', data: 'https://example.com/' }, 'unknown_action',
       undefined],                                                // not in the tool's catalog
    ];
    for (const [name, args, code, rule] of cases) {
      const r = await gw.client.callTool({ name, arguments: args });
      const sc = assertDecidedRefusal(r, 'deny', name);
      assert.equal(sc.reasons[0].code, code, `${name}: ${JSON.stringify(sc)}`);
      if (rule) assert.equal(sc.reasons[0].rule, rule);
    }
    assert.equal(recorder.seen.length, before, 'a refused call reached the upstream');
  });

  it('answers approval_needed with the approval id, and the approval exists', async () => {
    const before = recorder.seen.length;
    const r = await gw.client.callTool({ name: 'get-sum', arguments: { a: 5, b: 5000 } });
    const sc = assertDecidedRefusal(r, 'approval_needed', 'get-sum b=5000');
    assert.equal(sc.reasons[0].rule, 'sum-approval');
    const id = (sc.approval && sc.approval.id) || sc.approval_id;
    assert.equal(typeof id, 'string', `no approval id: ${JSON.stringify(sc)}`);
    assert.ok(text(r).includes(id), `the text names no approval id: ${text(r)}`);
    assert.equal(recorder.seen.length, before, 'the upstream was contacted');
    // The agent polls it with its own token, as docs/approvals.md says.
    const poll = await fetch(`http://127.0.0.1:${aegis.httpPort}/v1/approvals/${id}`,
                             { headers: { 'x-aegis-token': tokens['mcp-agent'] } });
    const a = await poll.json();
    assert.equal(poll.status, 200, JSON.stringify(a));
    assert.equal(a.state, 'pending', JSON.stringify(a));
  });

  it('sanitizes: the upstream gets the redacted arguments, the client their echo', async () => {
    const before = recorder.calls().length;
    const r = await gw.client.callTool({ name: 'echo',
                                         arguments: { message: `my SSN is ${SSN}` } });
    assert.deepEqual(r, { content: [{ type: 'text', text: 'Echo: my SSN is [REDACTED:ssn]' }] });
    assert.deepEqual(recorder.calls().slice(before).map((c) => [c.name, c.arguments]),
                     [['echo', { message: 'my SSN is [REDACTED:ssn]' }]]);
    for (const e of recorder.seen) {
      assert.ok(!e.body.includes(SSN) && !e.url.includes(SSN), 'the raw SSN reached the upstream');
    }
  });

  it('streams progress notifications while a call runs', async () => {
    const progress = [];
    const started = Date.now();
    const r = await gw.client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 1.5, steps: 3 } },
      undefined,
      { onprogress: (p) => progress.push({ ...p, at: Date.now() - started }) });
    const done = Date.now() - started;
    assert.equal(text(r), 'Long running operation completed. Duration: 1.5 seconds, Steps: 3.');
    assert.deepEqual(progress.map(({ progress: p, total }) => [p, total]), [[1, 3], [2, 3], [3, 3]]);
    // The upstream sends the first notification 0.5 s in and the result at 1.5 s: a gateway
    // that held the stream until the end would deliver them together.
    assert.ok(progress[0].at <= done - 400,
              `progress arrived with the result, not as it happened: ${JSON.stringify(progress)}` +
              `, result at ${done} ms`);
  });

  it("passes the server's own event stream (GET): a log message the server sends unprompted",
     async () => {
       const sid = gw.transport.sessionId;
       const get = recorder.seen.filter((e) => e.method === 'GET' &&
                                               e.headers['mcp-session-id'] === sid);
       assert.equal(get.length, 1, 'the SDK client opened no GET stream through the gateway');
       assert.equal(get[0].status, 200);
       const logged = [];
       let arrived;
       const first = new Promise((resolve) => { arrived = resolve; });
       gw.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
         logged.push(n.params);
         arrived();
       });
       // The tool starts a log message now and every 5 s after, on the session's GET stream
       // (they belong to no request); calling it again stops them.
       const started = Date.now();
       const r = await gw.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
       assert.ok(text(r).startsWith(`Started simulated, random-leveled logging for session ${sid}`),
                 text(r));
       const timeout = new Promise((resolve) => setTimeout(resolve, 3000));
       await Promise.race([first, timeout]);
       const waited = Date.now() - started;
       await gw.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
       gw.client.removeNotificationHandler('notifications/message');
       assert.ok(logged.length >= 1,
                 `no log message reached the client within ${waited} ms of the server sending it`);
       assert.match(logged[0].data, new RegExp(`SessionId ${sid}`));
     });

  it('passes a tool result with structured content; refuses a call to that tool in a way the ' +
     'SDK client accepts', async () => {
    const args = { location: 'New York' };
    const r = await gw.client.callTool({ name: 'get-structured-content', arguments: args });
    assert.deepEqual(r, await direct.client.callTool({ name: 'get-structured-content',
                                                       arguments: args }));
    assert.equal(r.structuredContent.temperature, 33);
    // The tool declares an outputSchema, which the client learnt from tools/list; a refusal
    // must still reach the caller as a tool error saying why, not as a client-side exception.
    const before = recorder.seen.length;
    let refused;
    try {
      refused = await gw.client.callTool({ name: 'get-structured-content',
                                           arguments: { location: 'Chicago' } });
    } catch (e) {
      assert.fail(`the SDK client rejected the gateway's refusal: ${e.message}`);
    }
    assert.equal(refused.isError, true, JSON.stringify(refused));
    assert.match(text(refused), /deny/i);
    assert.equal(recorder.seen.length, before, 'the upstream was contacted');
  });

  it('passes other requests through: ping, prompts, resources', async () => {
    await gw.client.ping();
    assert.deepEqual(await gw.client.listPrompts(), await direct.client.listPrompts());
    assert.deepEqual(await gw.client.listResources(), await direct.client.listResources());
    const prompt = { name: 'args-prompt', arguments: { city: 'Paris' } };
    assert.deepEqual(await gw.client.getPrompt(prompt), await direct.client.getPrompt(prompt));
  });

  it('refuses a request without a valid agent token with 401, forwarding nothing', async () => {
    const before = recorder.seen.length;
    const initialize = JSON.stringify({
      jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {},
                clientInfo: { name: 'anonymous', version: '0' } },
    });
    const base = { 'Content-Type': 'application/json',
                   Accept: 'application/json, text/event-stream' };
    for (const [what, headers] of [
      ['no identity', {}],
      ['x-aegis-agent while tokens are required', { 'x-aegis-agent': 'mcp-agent' }],
      ['a token that is not one', { Authorization: 'Bearer not-a-token' }],
    ]) {
      const r = await fetch(gatewayUrl, { method: 'POST', headers: { ...base, ...headers },
                                          body: initialize });
      await r.arrayBuffer();
      assert.equal(r.status, 401, what);
    }
    // The same with a session in progress.
    const r = await fetch(gatewayUrl, {
      method: 'POST',
      headers: { ...base, 'Mcp-Session-Id': gw.transport.sessionId,
                 'MCP-Protocol-Version': gw.transport.protocolVersion },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call',
                             params: { name: 'echo', arguments: { message: 'anon' } } }),
    });
    await r.arrayBuffer();
    assert.equal(r.status, 401);
    assert.equal(recorder.seen.length, before, 'an unauthenticated request was forwarded');
  });

  it('refuses a JSON-RPC batch with a JSON-RPC error, forwarding nothing', async () => {
    const before = recorder.seen.length;
    const batch = [
      { jsonrpc: '2.0', id: 10, method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'batched' } } },
      { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'get-env', arguments: {} } },
    ];
    const r = await fetch(gatewayUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json',
                 Accept: 'application/json, text/event-stream',
                 'Mcp-Session-Id': gw.transport.sessionId,
                 'MCP-Protocol-Version': gw.transport.protocolVersion,
                 ...auth('mcp-agent') },
      body: JSON.stringify(batch),
    });
    const body = await r.text();
    let answer;
    try {
      answer = JSON.parse(body);
    } catch {
      assert.fail(`not a JSON answer (${r.status} ${r.headers.get('content-type')}): ${body}`);
    }
    for (const m of Array.isArray(answer) ? answer : [answer]) {
      assert.equal(m.jsonrpc, '2.0', body);
      assert.ok(m.error && Number.isInteger(m.error.code) && m.error.code < 0, body);
      assert.equal(typeof m.error.message, 'string', body);
      assert.equal(m.result, undefined, body);
    }
    assert.equal(recorder.seen.length, before, 'the batch was forwarded');
  });

  it('counts tools/call decisions under front_door="mcp"', async () => {
    const counted = await connect(gatewayUrl, auth('counted-agent'));
    try {
      for (const message of ['one', 'two']) {
        const r = await counted.client.callTool({ name: 'echo', arguments: { message } });
        assert.equal(text(r), `Echo: ${message}`);
      }
      assertDecidedRefusal(await counted.client.callTool({ name: 'get-env', arguments: {} }), 'deny',
                    'get-env');
    } finally {
      await closeQuietly(counted);
    }
    const r = await fetch(`http://127.0.0.1:${aegis.httpPort}/metrics`);
    const metrics = parseMetrics(await r.text());
    const series = (d) => 'aegis_decisions_total{front_door="mcp",decision="' + d +
      '",enforced="true",tenant="",agent="counted-agent",tool="everything"}';
    const mcp = [...metrics.keys()].filter((k) => k.includes('front_door="mcp"'));
    assert.equal(metrics.get(series('allow')), 2, mcp.join('\n'));
    assert.equal(metrics.get(series('deny')), 1, mcp.join('\n'));
  });

  it('names the agent with x-aegis-agent where tokens are not required', async () => {
    const dir = join(tmp, 'no-tokens');
    mkdirSync(dir);
    const open = await startAegis(dir, {
      data_dir: join(dir, 'data'),
      identity: { require_agent_token: false },
      proxy: { routes: { everything: { mcp: true,
                                       upstream: `http://127.0.0.1:${recorder.port}/mcp` } } },
    });
    let c;
    try {
      const url = `http://127.0.0.1:${open.proxyPort}/everything`;
      c = await connect(url, { 'x-aegis-agent': 'mcp-agent' });
      assert.deepEqual((await c.client.listTools()).tools.map((t) => t.name).sort(),
                       [...OFFERED].sort());
      assert.equal(text(await c.client.callTool({ name: 'echo', arguments: { message: 'named' } })),
                   'Echo: named');
      const sc = assertDecidedRefusal(await c.client.callTool({ name: 'get-env', arguments: {} }), 'deny',
                               'get-env');
      assert.equal(sc.agent, 'mcp-agent');
      // An agent the policy does not know is refused every call.
      const stranger = await connect(url, { 'x-aegis-agent': 'stranger' });
      try {
        const r = await stranger.client.callTool({ name: 'echo', arguments: { message: 'who' } });
        assert.equal(assertDecidedRefusal(r, 'deny', 'stranger').reasons[0].code, 'unknown_agent');
      } finally {
        await closeQuietly(stranger);
      }
      assert.ok(!recorder.calls().some((x) => x.arguments && x.arguments.message === 'who'));
    } finally {
      await closeQuietly(c);
      const code = await open.child.stop();
      assert.equal(code, 0, open.child.output());
    }
  });

  it('ends the session: DELETE reaches the upstream, and the session is gone there', async () => {
    const sid = gw.transport.sessionId;
    await gw.transport.terminateSession();
    assert.equal(gw.transport.sessionId, undefined);
    const del = recorder.seen.filter((e) => e.method === 'DELETE');
    assert.equal(del.length, 1, JSON.stringify(del));
    assert.equal(del[0].headers['mcp-session-id'], sid);
    assert.equal(del[0].status, 200);
    await gw.client.close();
    // A request in the ended session is refused by the upstream, through the gateway.
    const r = await fetch(gatewayUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json',
                 Accept: 'application/json, text/event-stream',
                 'Mcp-Session-Id': sid, ...auth('mcp-agent') },
      body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'ping' }),
    });
    await r.arrayBuffer();
    assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}`);
  });
});
