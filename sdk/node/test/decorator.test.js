// The TypeScript decorator: test/fixtures/payments.ts is type-checked against index.d.ts and
// compiled with `typescript` (a devDependency) twice — standard TC39 decorators (TypeScript 5's
// default) and legacy experimentalDecorators — and each build runs against a real `aegis serve`.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { configure, defaultClient } from '../src/index.js';
import { identityConfig, startAegis } from './support/aegis.js';
import { BUNDLE } from './support/policy.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(HERE, 'fixtures', 'payments.ts');
const SDK = pathToFileURL(path.join(HERE, '..', 'src', 'index.js')).href;

let aegis;
let out;

before(async () => {
  aegis = await startAegis({ bundle: BUNDLE, config: identityConfig() });
  configure({ url: aegis.url, agentToken: await aegis.token('decorator-agent') });
  out = mkdtempSync(path.join(tmpdir(), 'aegis-sdk-ts-'));
});

after(async () => {
  defaultClient().close();
  rmSync(out, { recursive: true, force: true });
  await aegis.close();
});

const BASE = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noEmit: true,
  skipLibCheck: false,
  types: [],
};

// Type-checks the fixture (resolving 'aegis' to this package, through its "exports" and
// index.d.ts), then compiles it and imports the result.
async function build(name, experimentalDecorators) {
  const options = { ...BASE, experimentalDecorators };
  const program = ts.createProgram([FIXTURE], options);
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) =>
    ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(diagnostics, [], `${name}: type errors`);
  const { outputText } = ts.transpileModule(readFileSync(FIXTURE, 'utf8'), {
    compilerOptions: { ...options, noEmit: false, module: ts.ModuleKind.ES2022 },
  });
  assert.equal(outputText.includes('__decorate') || outputText.includes('__esDecorate'), true);
  const file = path.join(out, `${name}.mjs`);
  writeFileSync(file, outputText.replace(/from 'aegis'/g, `from '${SDK}'`));
  return import(pathToFileURL(file).href);
}

for (const [name, legacy] of [['standard', false], ['experimentalDecorators', true]]) {
  describe(`@policyEnforced, ${name}`, () => {
    let mod;
    before(async () => {
      mod = await build(name, legacy);
    });

    test('allow runs the method with this', async () => {
      const p = new mod.Payments(name);
      assert.equal(await p.createPayment(120), '120 usd');
      assert.deepEqual(p.ledger, [`${name} 120 usd`]);
    });

    test('sanitize runs it with the redacted argument; the action is the method name', async () => {
      const p = new mod.Payments(name);
      assert.equal(await p.lookup_customer('Jane', '123-45-6789'), 'Jane [REDACTED]');
    });

    test('deny throws PolicyDenied and the method does not run', async () => {
      assert.equal(await mod.deniedRule(new mod.Payments(name)), 'no-bulk-export');
    });

    test('approval_needed does not run the method', async () => {
      const p = new mod.Payments(name);
      await assert.rejects(p.createPayment(9000), { name: 'ApprovalRequired' });
      assert.deepEqual(p.ledger, []);
    });

    test('enforce() from TypeScript', async () => {
      assert.deepEqual(await mod.search('q'), ['q', '10']);
    });
  });
}
