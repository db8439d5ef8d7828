// Aegis tokens against jose (https://github.com/panva/jose), in both directions:
//   - tokens signed by Aegis verify with jose's jwtVerify against Aegis's JWKS;
//   - tokens signed by jose, with a key jose generated and wrote into an Aegis key directory in
//     the documented on-disk format (docs/identity.md), verify with Aegis;
//   - tokens jose makes that Aegis must refuse (alg none, HS256 with the public key as the HMAC
//     secret, an embedded jwk, another key, wrong typ, expired) are refused, each for its reason.
// Usage: node interop.mjs <path to aegis_jwt_tool>
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SignJWT, UnsecuredJWT, jwtVerify, createLocalJWKSet, generateKeyPair, exportPKCS8, exportJWK,
  base64url, decodeProtectedHeader,
} from 'jose';

const tool = process.argv[2];
if (!tool) {
  console.error('usage: node interop.mjs <aegis_jwt_tool>');
  process.exit(2);
}

const ISS = 'https://aegis.test';
const AUD = 'aegis';
const DIGEST = 'ab'.repeat(32);
const now = () => Math.floor(Date.now() / 1000);

function run(args, input = '') {
  const r = spawnSync(tool, args, { input, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

function mustRun(args, input) {
  const r = run(args, input);
  assert.equal(r.status, 0, `aegis_jwt_tool ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function tempDir() {
  return mkdtempSync(join(tmpdir(), 'aegis-jose-'));
}

function agentClaims(t = now()) {
  return { iss: ISS, sub: 'billing-agent', aud: AUD, jti: `j-${t}-${Math.random()}`,
           tenant: 'acme', iat: t, nbf: t, exp: t + 300 };
}

function overrideClaims(t = now()) {
  return { iss: ISS, sub: 'billing-agent', aud: AUD, jti: `o-${t}`, approval_id: 'apr_42',
           call_digest: DIGEST, iat: t, nbf: t, exp: t + 120 };
}

function aegisVerify(dir, kind, token) {
  return run(['verify', dir, kind, ISS, AUD, String(now())], token);
}

// A key directory holding one key that jose generated: <kid>.pem (PKCS#8) and keyring.json.
async function joseKeyDir() {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519',
                                                                     extractable: true });
  const root = tempDir();
  const dir = join(root, 'keys');
  mkdirSync(dir, { mode: 0o700 });
  const kid = 'jose-' + base64url.encode(crypto.getRandomValues(new Uint8Array(9)));
  writeFileSync(join(dir, `${kid}.pem`), await exportPKCS8(privateKey), { mode: 0o600 });
  writeFileSync(join(dir, 'keyring.json'),
                JSON.stringify({ version: 1, keys: [{ kid, created: now() }] }), { mode: 0o600 });
  return { root, dir, kid, publicKey, privateKey };
}

test('Aegis agent and override tokens verify with jose against the Aegis JWKS', async () => {
  const root = tempDir();
  const dir = join(root, 'keys');
  try {
    const kid = mustRun(['init', dir, String(now())]);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, `${kid}.pem`)).mode & 0o777, 0o600);
    const jwks = createLocalJWKSet(JSON.parse(mustRun(['jwks', dir])));
    const claims = agentClaims();
    const token = mustRun(['sign', dir, 'agent'], JSON.stringify(claims));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      algorithms: ['EdDSA'], typ: 'aegis-agent+jwt', audience: AUD, issuer: ISS,
    });
    assert.deepEqual(protectedHeader, { alg: 'EdDSA', kid, typ: 'aegis-agent+jwt' });
    assert.deepEqual(payload, claims);

    const oclaims = overrideClaims();
    const otoken = mustRun(['sign', dir, 'override'], JSON.stringify(oclaims));
    const o = await jwtVerify(otoken, jwks, {
      algorithms: ['EdDSA'], typ: 'aegis-override+jwt', audience: AUD, issuer: ISS,
    });
    assert.deepEqual(o.payload, oclaims);
    // jose, too, tells the kinds apart by typ.
    await assert.rejects(jwtVerify(otoken, jwks, { algorithms: ['EdDSA'], typ: 'aegis-agent+jwt' }),
                         { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'typ' });
    await assert.rejects(jwtVerify(token, jwks, { algorithms: ['EdDSA'], audience: 'other' }),
                         { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });

    // After a rotation the JWKS has both keys: old and new tokens verify with jose.
    const newKid = mustRun(['rotate', dir, String(now())]);
    assert.notEqual(newKid, kid);
    const rotated = JSON.parse(mustRun(['jwks', dir]));
    assert.deepEqual(rotated.keys.map((k) => k.kid), [newKid, kid]);
    const jwks2 = createLocalJWKSet(rotated);
    const newToken = mustRun(['sign', dir, 'agent'], JSON.stringify(agentClaims()));
    assert.equal(decodeProtectedHeader(newToken).kid, newKid);
    for (const t of [token, newToken]) {
      await jwtVerify(t, jwks2, { algorithms: ['EdDSA'], typ: 'aegis-agent+jwt', audience: AUD });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('jose-signed tokens verify with Aegis', async () => {
  const k = await joseKeyDir();
  try {
    // Aegis derives the same public key from the PEM as jose exports.
    const aegisJwks = JSON.parse(mustRun(['jwks', k.dir]));
    const joseJwk = await exportJWK(k.publicKey);
    assert.equal(aegisJwks.keys.length, 1);
    assert.equal(aegisJwks.keys[0].x, joseJwk.x);
    assert.equal(aegisJwks.keys[0].kid, k.kid);

    const claims = agentClaims();
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: k.kid, typ: 'aegis-agent+jwt' })
      .sign(k.privateKey);
    const r = aegisVerify(k.dir, 'agent', token);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), claims);

    const oclaims = overrideClaims();
    const otoken = await new SignJWT(oclaims)
      .setProtectedHeader({ alg: 'EdDSA', kid: k.kid, typ: 'aegis-override+jwt' })
      .sign(k.privateKey);
    const o = aegisVerify(k.dir, 'override', otoken);
    assert.equal(o.status, 0, o.stderr);
    assert.deepEqual(JSON.parse(o.stdout), oclaims);

    // An audience array that holds Aegis's audience.
    const multi = await new SignJWT({ ...claims, aud: ['other', AUD] })
      .setProtectedHeader({ alg: 'EdDSA', kid: k.kid, typ: 'aegis-agent+jwt' })
      .sign(k.privateKey);
    const m = aegisVerify(k.dir, 'agent', multi);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(JSON.parse(m.stdout).aud, AUD);

    // The agent token is refused as an override token, and the reverse.
    assert.match(aegisVerify(k.dir, 'override', token).stderr,
                 /token is an agent token \(typ aegis-agent\+jwt\), not an override token/);
    assert.match(aegisVerify(k.dir, 'agent', otoken).stderr,
                 /token is an override token \(typ aegis-override\+jwt\), not an agent token/);
  } finally {
    rmSync(k.root, { recursive: true, force: true });
  }
});

test('tokens jose makes that Aegis must refuse are refused, each for its reason', async () => {
  const k = await joseKeyDir();
  try {
    const claims = agentClaims();
    const refused = (token, kind, pattern) => {
      const r = aegisVerify(k.dir, kind, token);
      assert.equal(r.status, 1, `accepted: ${token}`);
      assert.match(r.stderr, /^UNAUTHENTICATED: /);
      assert.match(r.stderr, pattern);
    };

    // alg none (jose's UnsecuredJWT), with and without Aegis's typ and kid.
    refused(new UnsecuredJWT(claims).encode(), 'agent', /token alg "none" is refused/);
    const unsecured = base64url.encode(JSON.stringify({ alg: 'none', kid: k.kid,
                                                        typ: 'aegis-agent+jwt' })) +
      '.' + base64url.encode(JSON.stringify(claims)) + '.';
    refused(unsecured, 'agent', /token alg "none" is refused/);

    // HS256 with the public key as the HMAC secret: raw bytes, its base64url, the JWK JSON.
    const jwk = await exportJWK(k.publicKey);
    for (const secret of [base64url.decode(jwk.x), new TextEncoder().encode(jwk.x),
                          new TextEncoder().encode(JSON.stringify(jwk))]) {
      const hs = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: k.kid, typ: 'aegis-agent+jwt' })
        .sign(secret);
      refused(hs, 'agent', /token alg "HS256" is refused: only EdDSA is accepted/);
    }

    // A key carried by the token itself, and a key Aegis does not hold.
    const attacker = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const attackerJwk = await exportJWK(attacker.publicKey);
    const embedded = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: k.kid, typ: 'aegis-agent+jwt', jwk: attackerJwk })
      .sign(attacker.privateKey);
    refused(embedded, 'agent', /token header member jwk is refused: keys are never taken/);
    const jku = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: k.kid, typ: 'aegis-agent+jwt',
                            jku: 'https://evil.example/jwks.json' })
      .sign(attacker.privateKey);
    refused(jku, 'agent', /token header member jku is refused/);
    const forged = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: k.kid, typ: 'aegis-agent+jwt' })
      .sign(attacker.privateKey);
    refused(forged, 'agent', /token signature does not verify/);
    const unknown = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: 'someone-else', typ: 'aegis-agent+jwt' })
      .sign(attacker.privateKey);
    refused(unknown, 'agent', /token kid "someone-else" is not a known key/);
    const traversal = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: `../${k.kid}`, typ: 'aegis-agent+jwt' })
      .sign(k.privateKey);
    refused(traversal, 'agent', /is malformed/);

    // Right key, wrong typ or claims.
    const sign = (payload, header = {}) => new SignJWT(payload)
      .setProtectedHeader({ alg: 'EdDSA', kid: k.kid, typ: 'aegis-agent+jwt', ...header })
      .sign(k.privateKey);
    refused(await sign(claims, { typ: 'JWT' }), 'agent', /token typ "JWT" is not aegis-agent\+jwt/);
    const t = now();
    refused(await sign({ ...claims, iat: t - 1000, nbf: t - 1000, exp: t - 600 }), 'agent',
            /token expired at/);
    refused(await sign({ ...claims, nbf: t + 600 }), 'agent', /token is not valid before/);
    refused(await sign({ ...claims, exp: t + 7200 }), 'agent', /exceeds the maximum of 3600 s/);
    refused(await sign({ ...claims, iss: 'https://evil.example' }), 'agent',
            /token issuer "https:\/\/evil.example" is not the expected/);
    refused(await sign({ ...claims, aud: 'other' }), 'agent', /token audience "other"/);
    const { tenant, ...noTenant } = claims;
    assert.ok(tenant);
    refused(await sign(noTenant), 'agent', /token claim tenant is missing/);
    refused(await sign({ ...claims, exp: String(claims.exp) }), 'agent',
            /token claim exp must be an integer/);

    // And the token that all of these were variations of is accepted.
    assert.equal(aegisVerify(k.dir, 'agent', await sign(claims)).status, 0);
  } finally {
    rmSync(k.root, { recursive: true, force: true });
  }
});
