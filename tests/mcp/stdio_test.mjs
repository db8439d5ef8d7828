// `aegis mcp wrap` (docs/mcp.md, src/frontdoors/proxy/mcp_stdio.cc) between the official MCP
// TypeScript SDK client and the reference filesystem server, over the stdio transport:
//
//   SDK Client ──stdio──▶ aegis mcp wrap ──stdio──▶ node server-filesystem <root>
//                              │
//                              └─ POST /v1/decide, /v1/offers ──▶ aegis serve
//
// A second SDK client runs server-filesystem directly on the same directory, as the reference for
// what an unfiltered, undecided answer is. The directory itself is the record of what the server
// did: a refused write must leave it as it was, a sanitized one must land redacted.
//
// Checked: tools/list filtered to what the agent may call; allowed reads answered exactly as the
// server answers them directly; refused calls (deny by rule, by default, a path escaping the
// notes directory) answered by the wrapper as tool errors with the decision in
// _meta["aegis/decision"], the directory unchanged; write_file to the notes directory with its
// content sanitized, the SSN redacted on disk; the agent named by its token (AEGIS_AGENT_TOKEN)
// where tokens are required; fail closed with aegis serve stopped (calls refused with
// aegis_unavailable, tools/list empty); closing the client ends the wrapper and the server, and
// so do the end of the wrapper's input and SIGTERM for a server that ignores the end of its own
// input.
//
// server-filesystem 2026.8.31 registers read_file (deprecated), read_text_file, read_media_file,
// read_multiple_files, write_file, edit_file, create_directory, list_directory,
// list_directory_with_sizes, directory_tree, move_file, search_files, get_file_info and
// list_allowed_directories (dist/index.js).
//
// Usage: node stdio_test.mjs <path to aegis>
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Child, assertDecidedRefusal, assertRefusal, closeQuietly, startAegis as startAegisOn, text } from './support.mjs';

const AEGIS = process.argv[2];
if (!AEGIS) {
  console.error('usage: node stdio_test.mjs <path to aegis>');
  process.exit(2);
}
const HERE = dirname(fileURLToPath(import.meta.url));
const FILESYSTEM = join(HERE, 'node_modules', '@modelcontextprotocol', 'server-filesystem',
                        'dist', 'index.js');

const SSN = '123-45-6789';
const SECRETS = { orchestrator: 'orchestrator-secret-0123456789' };

// The policy for a server rooted at `root`: reading and listing are allowed; write_file only
// into <root>/notes (no "..") and with SSNs redacted from its arguments; every other change is
// denied outright; read_media_file has no rule (the default, deny).
function policy(root) {
  const notes = JSON.stringify(`${root}/notes/`);
  return `\
apiVersion: aegis/v1
kind: Policy
metadata: {name: mcp-stdio-test}
tools:
  filesystem:
    actions:
      read_file: {}
      read_text_file: {}
      read_media_file: {}
      read_multiple_files: {}
      write_file: {}
      edit_file: {}
      create_directory: {}
      list_directory: {}
      list_directory_with_sizes: {}
      directory_tree: {}
      move_file: {}
      search_files: {}
      get_file_info: {}
      list_allowed_directories: {}
  other:
agents:
  desk-agent: {tools: [filesystem]}
  outsider: {tools: [other]}
rules:
  - id: read-and-list
    match:
      tools: [filesystem]
      actions: [read_file, read_text_file, read_multiple_files, list_directory,
                list_directory_with_sizes, directory_tree, search_files, get_file_info,
                list_allowed_directories]
    effect: allow
  - id: no-changes
    match: {tools: [filesystem], actions: [edit_file, move_file, create_directory]}
    effect: deny
    message: This agent does not change files
  - id: notes-only
    match: {tools: [filesystem], actions: [write_file]}
    if: '!params.path.startsWith(${notes}) || params.path.contains("..")'
    effect: deny
    message: Agents write only into notes/
  - id: notes-redacted
    match: {tools: [filesystem], actions: [write_file]}
    if: 'params.path.startsWith(${notes})'
    effect: sanitize
    redact: {detectors: [ssn]}
`;
}

// What desk-agent may call: read-and-list, and write_file (some paths); not the outright denied
// changes, nor read_media_file (no rule).
const OFFERED = ['directory_tree', 'get_file_info', 'list_allowed_directories', 'list_directory',
                 'list_directory_with_sizes', 'read_file', 'read_multiple_files',
                 'read_text_file', 'search_files', 'write_file'];

// --- processes ------------------------------------------------------------------------------

function startAegis(dir, root, config) {
  return startAegisOn(AEGIS, dir, policy(root), { data_dir: join(dir, 'data'), ...config });
}

// The pids of `pid`'s children (from /proc; Linux).
function childrenOf(pid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

// Whether `pid` is a process that still runs (a zombie has ended; its parent has not reaped it).
function running(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function until(what, fn, ms) {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// An MCP server stand-in that does not end at the end of its input, only on SIGTERM, saying so on
// standard error.
const STUBBORN = `
  process.stdin.resume();
  process.stdin.on('end', () => console.error('stub: end of input; staying'));
  process.on('SIGTERM', () => { console.error('stub: SIGTERM'); process.exit(0); });
  console.error('stub: running as ' + process.pid);
  setInterval(() => {}, 1000);`;

// --- the clients -----------------------------------------------------------------------------

// An SDK client on `command args`, its standard error kept in `stderr()`.
async function connect(command, args, env = {}) {
  const transport = new StdioClientTransport({ command, args, env, stderr: 'pipe' });
  let err = '';
  transport.stderr.setEncoding('utf8');
  transport.stderr.on('data', (chunk) => { err += chunk; });
  const client = new Client({ name: 'aegis-mcp-stdio-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, stderr: () => err };
}

// server-filesystem on `root`, directly.
function connectDirect(root) {
  return connect(process.execPath, [FILESYSTEM, root]);
}

// server-filesystem on `root` behind `aegis mcp wrap`, deciding with the aegis serve on
// `httpPort`; `who` is the wrapper's arguments naming the agent (default --agent desk-agent).
function connectWrapped(root, httpPort, { who = ['--agent', 'desk-agent'], env = {} } = {}) {
  return connect(AEGIS, ['mcp', 'wrap', ...who, '--tool', 'filesystem',
                         '--server', `http://127.0.0.1:${httpPort}`,
                         '--', process.execPath, FILESYSTEM, root], env);
}

// Every file and directory under `dir` with its contents: {relative path: text or '<dir>'}.
function snapshot(dir, prefix = '') {
  const out = {};
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + e.name;
    if (e.isDirectory()) {
      out[`${rel}/`] = '<dir>';
      Object.assign(out, snapshot(join(dir, e.name), `${rel}/`));
    } else {
      out[rel] = readFileSync(join(dir, e.name), 'utf8');
    }
  }
  return out;
}

// --- the tests -------------------------------------------------------------------------------

describe('aegis mcp wrap between the MCP SDK client and server-filesystem (stdio)',
         { timeout: 55000 }, () => {
  let tmp;
  let root;   // the directory server-filesystem serves
  let aegis;
  let direct;   // an SDK client on server-filesystem itself
  let wrapped;  // an SDK client on aegis mcp wrap, as desk-agent

  before(async () => {
    try {
      tmp = mkdtempSync(join(tmpdir(), 'aegis-mcp-stdio-'));
      // server-filesystem resolves its directories (symlinks included); so do the policy's paths.
      root = join(realpathSync(tmp), 'files');
      mkdirSync(join(root, 'notes'), { recursive: true });
      mkdirSync(join(root, 'reports'));
      writeFileSync(join(root, 'readme.txt'), 'The quarterly reports are in reports/.\n');
      writeFileSync(join(root, 'reports', 'q3.csv'), 'region,revenue\nnorth,120\nsouth,95\n');
      writeFileSync(join(root, 'notes', 'todo.txt'), 'call the bank\n');
      aegis = await startAegis(join(tmp, 'aegis'), root, {});
      direct = await connectDirect(root);
      wrapped = await connectWrapped(root, aegis.httpPort);
    } catch (e) {
      const what = aegis ? `aegis serve (exit ${aegis.child.exitCode ?? 'none yet'}):\n` +
        aegis.child.output() : '';
      throw new Error(`${e.stack || e}\n${what}${wrapped ? wrapped.stderr() : ''}`);
    }
  });

  after(async () => {
    await closeQuietly(wrapped);
    await closeQuietly(direct);
    const code = aegis ? await aegis.child.stop() : 0;
    const output = aegis ? aegis.child.output() : '';
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    assert.equal(code, 0, `aegis serve exited with ${code}:\n${output}`);
  });

  it('initializes through the wrapper: the server answers for itself', async () => {
    assert.deepEqual(wrapped.client.getServerVersion(), direct.client.getServerVersion());
    assert.equal(wrapped.client.getServerVersion().name, 'secure-filesystem-server');
    assert.deepEqual(wrapped.client.getServerCapabilities(), direct.client.getServerCapabilities());
  });

  it('lists exactly the tools the agent may call, as the server describes them', async () => {
    const all = (await direct.client.listTools()).tools;
    const names = all.map((t) => t.name);
    for (const name of [...OFFERED, 'edit_file', 'move_file', 'create_directory',
                        'read_media_file']) {
      assert.ok(names.includes(name), `server-filesystem no longer offers ${name}: ${names}`);
    }
    const listed = (await wrapped.client.listTools()).tools;
    assert.deepEqual(listed.map((t) => t.name).sort(), [...OFFERED].sort());
    assert.deepEqual(listed, all.filter((t) => OFFERED.includes(t.name)));
  });

  it('passes allowed reads and listings through, answered exactly as directly', async () => {
    const calls = [
      ['read_text_file', { path: join(root, 'reports', 'q3.csv') }],
      ['read_text_file', { path: join(root, 'reports', 'q3.csv'), head: 2 }],
      ['list_directory', { path: root }],
      ['directory_tree', { path: root }],
      ['list_allowed_directories', {}],
      ['search_files', { path: root, pattern: '**/*.txt' }],
    ];
    for (const [name, args] of calls) {
      const viaWrapper = await wrapped.client.callTool({ name, arguments: args });
      const viaDirect = await direct.client.callTool({ name, arguments: args });
      assert.deepEqual(viaWrapper, viaDirect, name);
      assert.notEqual(viaWrapper.isError, true, `${name}: ${JSON.stringify(viaWrapper)}`);
    }
    const r = await wrapped.client.callTool({ name: 'read_text_file',
                                              arguments: { path: join(root, 'reports', 'q3.csv') } });
    assert.equal(text(r), 'region,revenue\nnorth,120\nsouth,95\n');
    const listing = text(await wrapped.client.callTool({ name: 'list_directory',
                                                         arguments: { path: root } }));
    assert.deepEqual(listing.split('\n').sort(),
                     ['[DIR] notes', '[DIR] reports', '[FILE] readme.txt']);
  });

  it('refuses denied calls with the decision, and the files stay as they were', async () => {
    const was = snapshot(root);
    const readme = join(root, 'readme.txt');
    const cases = [
      // write_file outside notes/, and into it by way of "..": rule notes-only.
      ['write_file', { path: readme, content: 'overwritten' }, 'rule', 'notes-only'],
      ['write_file', { path: join(root, 'new.txt'), content: 'new' }, 'rule', 'notes-only'],
      ['write_file', { path: `${root}/notes/../readme.txt`, content: 'escaped' }, 'rule',
       'notes-only'],
      // The outright denied changes, hidden from tools/list and refused when called anyway.
      ['edit_file', { path: readme, edits: [{ oldText: 'quarterly', newText: 'yearly' }] },
       'rule', 'no-changes'],
      ['move_file', { source: readme, destination: join(root, 'moved.txt') }, 'rule',
       'no-changes'],
      ['create_directory', { path: join(root, 'made') }, 'rule', 'no-changes'],
      // No rule allows it: the default.
      ['read_media_file', { path: readme }, 'default', undefined],
      // Not in the tool's catalog.
      ['delete_file', { path: readme }, 'unknown_action', undefined],
    ];
    for (const [name, args, code, rule] of cases) {
      const r = await wrapped.client.callTool({ name, arguments: args });
      const sc = assertDecidedRefusal(r, 'deny', name);
      assert.equal(sc.reasons[0].code, code, `${name}: ${JSON.stringify(sc)}`);
      if (rule) {
        assert.equal(sc.reasons[0].rule, rule, `${name}: ${JSON.stringify(sc)}`);
        assert.ok(text(r).includes(rule), text(r));
      }
      assert.equal(sc.agent, 'desk-agent');
      assert.equal(sc.tool, 'filesystem');
      assert.equal(sc.action, name);
    }
    const r = await wrapped.client.callTool({ name: 'write_file',
                                              arguments: { path: readme, content: 'x' } });
    assert.ok(text(r).includes('Agents write only into notes/'), text(r));
    assert.deepEqual(snapshot(root), was, 'a refused call changed the files');
    // The same calls, made directly, do change them: the refusals above were the wrapper's.
    const d = await direct.client.callTool({ name: 'create_directory',
                                             arguments: { path: join(root, 'made') } });
    assert.notEqual(d.isError, true, JSON.stringify(d));
    assert.ok(existsSync(join(root, 'made')));
    rmSync(join(root, 'made'), { recursive: true });
  });

  it('sanitizes a write: the server gets the redacted content, and writes that', async () => {
    const path = join(root, 'notes', 'call.txt');
    const content = `Customer called about the refund.\nSSN on file: ${SSN}\n`;
    const r = await wrapped.client.callTool({ name: 'write_file', arguments: { path, content } });
    assert.deepEqual(r, { content: [{ type: 'text', text: `Successfully wrote to ${path}` }],
                          structuredContent: { content: `Successfully wrote to ${path}` } });
    const onDisk = readFileSync(path, 'utf8');
    assert.equal(onDisk, 'Customer called about the refund.\nSSN on file: [REDACTED:ssn]\n');
    assert.ok(!onDisk.includes(SSN));
    // A note without findings is written as given.
    const plain = join(root, 'notes', 'plain.txt');
    const w = await wrapped.client.callTool({ name: 'write_file',
                                              arguments: { path: plain, content: 'no PII here\n' } });
    assert.notEqual(w.isError, true, JSON.stringify(w));
    assert.equal(readFileSync(plain, 'utf8'), 'no PII here\n');
    // Reading it back through the wrapper returns what the server has.
    const back = await wrapped.client.callTool({ name: 'read_text_file', arguments: { path } });
    assert.equal(text(back), onDisk);
  });

  it('refuses an agent out of scope every call, and lists it no tools', async () => {
    const outsider = await connectWrapped(root, aegis.httpPort, { who: ['--agent', 'outsider'] });
    try {
      assert.deepEqual((await outsider.client.listTools()).tools, []);
      const r = await outsider.client.callTool({ name: 'read_text_file',
                                                 arguments: { path: join(root, 'readme.txt') } });
      const sc = assertDecidedRefusal(r, 'deny', 'an out-of-scope call');
      assert.equal(sc.reasons[0].code, 'tool_out_of_scope', JSON.stringify(sc));
    } finally {
      await closeQuietly(outsider);
    }
  });

  it('names the agent by its token (AEGIS_AGENT_TOKEN) where tokens are required', async () => {
    const dir = join(tmp, 'tokens');
    const sha256 = (s) => createHash('sha256').update(s).digest('hex');
    const strict = await startAegis(dir, root, {
      identity: {
        require_agent_token: true,
        credentials: [
          { name: 'orchestrator', token_sha256: sha256(SECRETS.orchestrator), roles: ['issuer'] },
        ],
      },
    });
    let withToken;
    let withoutToken;
    try {
      const res = await fetch(`http://127.0.0.1:${strict.httpPort}/v1/tokens`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json',
                   Authorization: `Bearer ${SECRETS.orchestrator}` },
        body: JSON.stringify({ agent: 'desk-agent' }),
      });
      const body = await res.text();
      assert.equal(res.status, 200, body);
      const token = JSON.parse(body).token;
      withToken = await connectWrapped(root, strict.httpPort,
                                       { who: [], env: { AEGIS_AGENT_TOKEN: token } });
      assert.deepEqual((await withToken.client.listTools()).tools.map((t) => t.name).sort(),
                       [...OFFERED].sort());
      const args = { path: join(root, 'readme.txt') };
      assert.deepEqual(await withToken.client.callTool({ name: 'read_text_file', arguments: args }),
                       await direct.client.callTool({ name: 'read_text_file', arguments: args }));
      const sc = assertDecidedRefusal(
        await withToken.client.callTool({ name: 'edit_file',
                                          arguments: { ...args, edits: [] } }), 'deny', 'edit');
      assert.equal(sc.agent, 'desk-agent');
      // --agent alone is not enough here: refused (Aegis answered 401), and nothing listed.
      withoutToken = await connectWrapped(root, strict.httpPort);
      assert.deepEqual((await withoutToken.client.listTools()).tools, []);
      const r = await withoutToken.client.callTool({ name: 'read_text_file', arguments: args });
      assert.equal(assertRefusal(r, 'deny', 'no token').effective_decision, 'deny');
      assert.match(text(r), /Aegis answered 401/);
    } finally {
      await closeQuietly(withToken);
      await closeQuietly(withoutToken);
      assert.equal(await strict.child.stop(), 0, strict.child.output());
    }
  });

  it('fails closed when aegis serve is gone: calls refused, tools/list empty', async () => {
    // Before: listed and allowed.
    const args = { path: join(root, 'readme.txt') };
    assert.equal((await wrapped.client.listTools()).tools.length, OFFERED.length);
    assert.notEqual((await wrapped.client.callTool({ name: 'read_text_file', arguments: args }))
      .isError, true);
    assert.equal(await aegis.child.stop(), 0, aegis.child.output());
    const was = snapshot(root);
    const started = Date.now();
    for (const [name, a] of [['read_text_file', args],
                             ['write_file', { path: join(root, 'notes', 'late.txt'),
                                              content: 'written while Aegis was down' }]]) {
      const r = await wrapped.client.callTool({ name, arguments: a });
      const sc = assertRefusal(r, 'deny', `${name} without aegis serve`);
      assert.equal(sc.effective_decision, 'deny', JSON.stringify(sc));
      assert.equal(sc.reasons[0].code, 'aegis_unavailable', JSON.stringify(sc));
      assert.match(text(r), /aegis_unavailable/);
    }
    assert.deepEqual((await wrapped.client.listTools()).tools, []);
    assert.ok(Date.now() - started < 5000, 'the refusals waited for a timeout');
    assert.deepEqual(snapshot(root), was, 'a call ran while Aegis was down');
    // The wrapper says why on standard error.
    assert.match(wrapped.stderr(), /tools\/call read_text_file refused: Aegis cannot be reached/);
    assert.match(wrapped.stderr(), /tools\/list: cannot ask Aegis which tools are allowed/);
  });

  it('ends the wrapper and the server when the client closes', async () => {
    const wrapper = wrapped.transport.pid;
    assert.ok(running(wrapper), 'the wrapper is not running');
    const servers = childrenOf(wrapper);
    assert.equal(servers.length, 1, `the wrapper's children: ${servers}`);
    assert.ok(readFileSync(`/proc/${servers[0]}/cmdline`, 'utf8').includes(FILESYSTEM));
    const started = Date.now();
    await wrapped.client.close();
    const took = Date.now() - started;
    // The SDK ends its standard input, waits 2 s, then sends SIGTERM: the wrapper must have
    // ended on end of input, passing it on to the server.
    assert.ok(took < 1900, `the wrapper outlived the end of its input: ${took} ms`);
    await until('the wrapper ended', () => !running(wrapper), 2000);
    await until('the server ended', () => !running(servers[0]), 2000);
    wrapped = undefined;
  });

  describe('with a server that ignores the end of its input', () => {
    // The stand-ins' pids: one the wrapper failed to end would keep running (and this test's
    // process with it, on its standard error).
    const stubs = [];
    after(() => {
      for (const pid of stubs) if (running(pid)) process.kill(pid, 'SIGKILL');
    });
    const stubPid = async (wrapper) => {
      const pid = Number((await wrapper.waitFor(/^stub: running as (\d+)$/, 5000))[1]);
      stubs.push(pid);
      return pid;
    };
    const wrap = (stdin) => new Child(AEGIS, ['mcp', 'wrap', '--agent', 'desk-agent',
                                              '--server', 'http://127.0.0.1:1', '--',
                                              process.execPath, '-e', STUBBORN],
                                      { stdin, env: { PATH: process.env.PATH } });

    it('stops the server a grace period after the end of its own input', async () => {
      const wrapper = wrap('ignore');  // /dev/null: the input ends at once
      const pid = await stubPid(wrapper);
      await wrapper.waitFor(/^stub: end of input; staying$/, 5000);
      const started = Date.now();
      let timer;
      const code = await Promise.race([wrapper.exited, new Promise((r) => {
        timer = setTimeout(() => r('running'), 6000);
      })]);
      clearTimeout(timer);
      if (code === 'running') await wrapper.stop(100);
      assert.equal(code, 0, `the wrapper is still running 6 s after the end of its input:\n` +
                   wrapper.output());
      assert.ok(Date.now() - started < 5000, wrapper.output());
      assert.match(wrapper.output(), /the server is still running \d+ ms after the end of its input; sending SIGTERM/);
      assert.match(wrapper.output(), /^stub: SIGTERM$/m);
      assert.ok(!running(pid), 'the server outlived the wrapper');
    });

    it('passes SIGTERM on to the server instead of leaving it orphaned', async () => {
      const wrapper = wrap('pipe');  // the input stays open
      const pid = await stubPid(wrapper);
      assert.deepEqual(childrenOf(wrapper.proc.pid), [pid]);
      wrapper.proc.kill('SIGTERM');
      await wrapper.waitFor(/^stub: SIGTERM$/, 2000);
      // The server's end is the wrapper's: it exits with the server's code.
      assert.equal(await wrapper.exited, 0, wrapper.output());
      await until('the server ended', () => !running(pid), 2000);
    });
  });
});
