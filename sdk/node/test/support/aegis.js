// A real `aegis serve` for the tests: a temporary directory with the bundle and aegis.yaml, the
// HTTP listener on a port of its choosing (127.0.0.1:0), stopped and started again on the same
// port when a test takes Aegis away. Also the test credentials and helpers that act as the
// orchestrator (issuing agent tokens) and as human approvers.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..', '..', '..');

/** The aegis binary: $AEGIS_BIN (run-tests.sh sets it), else the release build. */
export function aegisBinary() {
  return process.env.AEGIS_BIN || path.join(REPO, 'build', 'release', 'src', 'cli', 'aegis');
}

export const SECRETS = {
  orchestrator: 'orchestrator-secret-0123456789',
  alice: 'alice-secret-0123456789',
  bob: 'bob-secret-0123456789',
};

const sha256 = (s) => createHash('sha256').update(s).digest('hex');

/** An aegis.yaml (as JSON) with agent tokens required, an issuer and two approvers. */
export function identityConfig(extra = {}) {
  return {
    identity: {
      require_agent_token: true,
      credentials: [
        { name: 'orchestrator', token_sha256: sha256(SECRETS.orchestrator), roles: ['issuer'] },
        { name: 'alice', token_sha256: sha256(SECRETS.alice), roles: ['approver'] },
        { name: 'bob', token_sha256: sha256(SECRETS.bob), roles: ['approver'] },
      ],
    },
    ...extra,
  };
}

const LISTEN = /aegis: http listening on (\S+):(\d+)\s*$/;
const READY = /aegis: ready \(policy (\S+) version (\S+)\)/;

export class AegisServer {
  /**
   * `bundle`: {file name: YAML text}, or {dir: path} to copy a bundle directory. `config`: the
   * aegis.yaml as an object (data_dir is set to the temporary directory's).
   */
  constructor({ bundle, config = {}, binary = aegisBinary() }) {
    this.binary = binary;
    this.dir = mkdtempSync(path.join(tmpdir(), 'aegis-sdk-node-'));
    this.bundleDir = path.join(this.dir, 'bundle');
    if (bundle.dir) {
      cpSync(bundle.dir, this.bundleDir, { recursive: true });
    } else {
      mkdirSync(this.bundleDir);
      for (const [name, text] of Object.entries(bundle)) {
        writeFileSync(path.join(this.bundleDir, name), text);
      }
    }
    this.configPath = path.join(this.dir, 'aegis.yaml');
    writeFileSync(this.configPath, JSON.stringify({ data_dir: path.join(this.dir, 'data'),
      log_level: 'warn', limits: { drain_timeout_ms: 2000 }, policy: { watch: false }, ...config },
    null, 2));
    this.port = 0;
    this.proc = null;
    this.lines = [];
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the server (on its previous port after a stop: tried again for a few seconds, as the
   * port may not be free yet) and resolves once it is ready.
   */
  async start(timeoutMs = 30_000) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        return await this.#startOnce(timeoutMs);
      } catch (e) {
        if (this.port === 0 || Date.now() > deadline || !/exited/.test(e.message)) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  #startOnce(timeoutMs) {
    const args = ['serve', '--config', this.configPath, '--bundle', this.bundleDir,
      '--http', `127.0.0.1:${this.port}`, '--grpc', '127.0.0.1:0', '--proxy', 'off'];
    const proc = spawn(this.binary, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    return new Promise((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`aegis serve did not become ready:\n${this.output()}`));
      }, timeoutMs);
      const onData = (chunk) => {
        buffered += chunk.toString('utf8');
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.lines.push(line);
          const m = LISTEN.exec(line);
          if (m) this.port = Number(m[2]);
          if (READY.test(line)) {
            clearTimeout(timer);
            resolve(this);
          }
        }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      proc.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`aegis serve exited (${code ?? signal}):\n${this.output()}`));
      });
      proc.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  output() {
    return this.lines.join('\n');
  }

  /** SIGTERM and wait for the exit; resolves to the exit code. */
  stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const kill = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      proc.once('exit', (code) => {
        clearTimeout(kill);
        resolve(code);
      });
      proc.kill('SIGTERM');
    });
  }

  /** Stops the server and removes its directory. */
  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** One request on a new connection: {status, headers, body (parsed JSON or text)}. */
  async request(method, urlPath, { body, headers = {} } = {}) {
    const res = await fetch(this.url + urlPath, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // text
    }
    return { status: res.status, headers: res.headers, body: parsed };
  }

  /** An agent token from POST /v1/tokens with the orchestrator's credential. */
  async token(agent, { tenant, ttlSeconds } = {}) {
    const body = { agent };
    if (tenant) body.tenant = tenant;
    if (ttlSeconds) body.ttl_seconds = ttlSeconds;
    const res = await this.request('POST', '/v1/tokens', {
      body, headers: { authorization: `Bearer ${SECRETS.orchestrator}` } });
    if (res.status !== 200) throw new Error(`POST /v1/tokens: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.token;
  }

  /** An approver's vote: POST /v1/approvals/ID/approve|deny. */
  async vote(approvalId, approver, verdict = 'approve') {
    const res = await this.request('POST', `/v1/approvals/${approvalId}/${verdict}`, {
      body: { comment: `${verdict} by the test` },
      headers: { authorization: `Bearer ${SECRETS[approver]}` } });
    if (res.status !== 200) throw new Error(`vote: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** The approvals pending for an agent (as an approver sees them). */
  async pending(agent) {
    const res = await this.request('GET', `/v1/approvals?state=pending&agent=${agent}`, {
      headers: { authorization: `Bearer ${SECRETS.alice}` } });
    if (res.status !== 200) throw new Error(`list: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.approvals ?? res.body;
  }
}

/** Starts a server; the caller closes it. */
export async function startAegis(options) {
  const server = new AegisServer(options);
  try {
    await server.start();
  } catch (e) {
    rmSync(server.dir, { recursive: true, force: true });
    throw e;
  }
  return server;
}

/** Resolves when `predicate()` is true, polling every 10 ms; rejects after timeoutMs. */
export async function eventually(predicate, timeoutMs = 10_000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The error `promise` rejects with, which must be an instance of `Class`. */
export async function caught(promise, Class) {
  try {
    await promise;
  } catch (e) {
    if (!(e instanceof Class)) {
      throw new Error(`expected ${Class.name}, got ${e && e.name}: ${e && e.message}`, { cause: e });
    }
    return e;
  }
  throw new Error(`expected ${Class.name}, nothing was thrown`);
}
