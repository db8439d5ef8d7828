// What the MCP interop tests share (gateway_test.mjs, stdio_test.mjs): child processes with
// their output kept, `aegis serve` started on a temporary bundle, and the refusal a tool call
// gets from an Aegis MCP gateway.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.proc.kill('SIGKILL');
});

// A child process with its output (stdout and stderr) kept line by line. Its standard input is
// /dev/null unless options.stdin says otherwise ('pipe': this.proc.stdin).
export class Child {
  constructor(cmd, args, options) {
    this.lines = [];
    this.waiters = [];
    this.exitCode = undefined;
    const { stdin = 'ignore', ...rest } = options;
    this.proc = spawn(cmd, args, { ...rest, stdio: [stdin, 'pipe', 'pipe'] });
    children.add(this);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitCode = code ?? signal;
        children.delete(this);
        for (const w of this.waiters) w.check(true);
        resolve(this.exitCode);
      });
    });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop();
        for (const line of parts) {
          this.lines.push(line);
          for (const w of this.waiters) w.check(false);
        }
      });
    }
  }

  output() {
    return this.lines.join('\n');
  }

  // Resolves with the first match of `re` in a line of output; rejects when the process exits
  // or `ms` pass first.
  waitFor(re, ms) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: (exited) => {
          for (const line of this.lines) {
            const m = line.match(re);
            if (m) return done(() => resolve(m));
          }
          if (exited) done(() => reject(new Error(`exited (${this.exitCode}) before ${re}:\n` +
                                                 this.output())));
        },
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no ${re} within ${ms} ms:\n` +
                                                                 this.output()))), ms);
      const done = (fn) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        fn();
      };
      this.waiters.push(waiter);
      waiter.check(this.exitCode !== undefined);
    });
  }

  // SIGTERM, then SIGKILL after `ms`. Resolves with the exit code (or signal name).
  async stop(ms = 5000) {
    if (this.exitCode !== undefined) return this.exitCode;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

// `aegis serve` on port 0 for every listener, in `dir`, with the policy for `root`. Resolves
// once it printed `aegis: ready`.
// `aegis serve` on a bundle holding `policyText` as policy.yaml in `dir`, with `config` as its
// aegis.yaml, on free ports. Resolves once ready with {child, httpPort, proxyPort}.
export async function startAegis(aegis, dir, policyText, config) {
  const bundle = join(dir, 'bundle');
  mkdirSync(bundle, { recursive: true });
  writeFileSync(join(bundle, 'policy.yaml'), policyText);
  const configPath = join(dir, 'aegis.yaml');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const child = new Child(aegis, ['serve', '--bundle', bundle, '--config', configPath,
                                  '--http', '127.0.0.1:0', '--grpc', '127.0.0.1:0',
                                  '--proxy', '127.0.0.1:0'], { cwd: dir, env: process.env });
  try {
    await child.waitFor(/aegis: ready \(policy \S+ version \S+\)/, 15000);
    const listening = (kind) => {
      const re = new RegExp(`aegis: ${kind} listening on (\\S+):(\\d+)\\s*$`);
      for (const line of child.lines) {
        const m = line.match(re);
        if (m) return Number(m[2]);
      }
      throw new Error(`aegis serve printed no ${kind} listening line:\n${child.output()}`);
    };
    return { child, httpPort: listening('http'), proxyPort: listening('proxy') };
  } catch (e) {
    await child.stop();
    throw e;
  }
}

export async function closeQuietly(c) {
  if (!c) return;
  try {
    await c.client.close();
  } catch {
    // already closed
  }
}

export function text(result) {
  assert.ok(Array.isArray(result.content), JSON.stringify(result));
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

// A refusal as an Aegis MCP gateway answers it: a tool error whose text says why, with the
// decision JSON in _meta["aegis/decision"] (not structuredContent, which clients check against
// the tool's outputSchema even in errors). Returns the decision.
export function assertRefusal(result, decision, what) {
  assert.equal(result.isError, true, `${what}: ${JSON.stringify(result)}`);
  assert.equal(result.structuredContent, undefined, `${what}: ${JSON.stringify(result)}`);
  const sc = result._meta?.['aegis/decision'];
  assert.equal(typeof sc, 'object', `${what}: no _meta decision: ${JSON.stringify(result)}`);
  assert.equal(sc.decision, decision, `${what}: ${JSON.stringify(sc)}`);
  assert.ok(Array.isArray(sc.reasons) && sc.reasons.length > 0, JSON.stringify(sc));
  return sc;
}

// A refusal decided by aegis serve: it has a decision id, and the text names it.
export function assertDecidedRefusal(result, decision, what) {
  const sc = assertRefusal(result, decision, what);
  assert.match(sc.decision_id, /^[0-9a-f-]{36}$/, JSON.stringify(sc));
  const t = text(result);
  assert.ok(t.includes(sc.decision_id), `${what}: the text names no decision id: ${t}`);
  return sc;
}
