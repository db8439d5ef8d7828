// Arguments to params and back (no server): the parameter list read from a function's source,
// paramNames, defaults, rest parameters, a single object argument, a params function; the strict
// JSON encoding; RFC 8785 canonical text and the call digest.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { callDigest, canonicalize, encodeValue, ParamsError, readParameters } from '../src/index.js';
import { argumentMapper } from '../src/params.js';

const names = (fn) => {
  const spec = readParameters(fn);
  return spec.kind === 'names' ? spec.names.map((n) => (n.rest ? `...${n.name}` : n.name)) : spec;
};

describe('reading parameter names from the source', () => {
  test('every kind of function', () => {
    assert.deepEqual(names(function pay(amount, currency) {}), ['amount', 'currency']);
    assert.deepEqual(names(async function pay(amount, currency) {}), ['amount', 'currency']);
    assert.deepEqual(names(function* gen(a) {}), ['a']);
    assert.deepEqual(names((a, b) => a + b), ['a', 'b']);
    assert.deepEqual(names(async (a, b) => a + b), ['a', 'b']);
    assert.deepEqual(names((a) => a), ['a']);
    // eslint-disable-next-line arrow-parens
    assert.deepEqual(names(a => a), ['a']);
    assert.deepEqual(names(async a => a), ['a']);
    assert.deepEqual(names(() => 1), []);
    class Payments {
      charge(amount, currency = 'usd') {}
      async refund(id, { reason } = {}) {}
      static ['computed'](x) {}
      [Symbol.for('sym')](y, z) {}
    }
    assert.deepEqual(names(Payments.prototype.charge), ['amount', 'currency']);
    assert.deepEqual(names(Payments.computed), ['x']);
    assert.deepEqual(names(Payments.prototype[Symbol.for('sym')]), ['y', 'z']);
    const obj = { 'quoted-name'(q) {}, async method(m) {} };
    assert.deepEqual(names(obj['quoted-name']), ['q']);
    assert.deepEqual(names(obj.method), ['m']);
  });

  test('defaults, comments, strings and nesting in the list', () => {
    const f = function (
      a, // the amount, (in cents)
      b = 'x, y)',
      /* c, */ c = { k: [1, 2], 'l': "m", },
      d = `t${1}`,
      e = [1, [2, 3]],
      ...rest
    ) {};
    const spec = readParameters(f);
    assert.deepEqual(spec.names.map((n) => n.name), ['a', 'b', 'c', 'd', 'e', 'rest']);
    assert.deepEqual(spec.names.map((n) => n.hasDefault), [false, true, true, true, true, false]);
    assert.equal(spec.names[1].default, 'x, y)');
    assert.deepEqual(spec.names[2].default, { k: [1, 2], l: 'm' });
    assert.equal(spec.names[3].defaultKnown, false, 'a template with a substitution');
    assert.deepEqual(spec.names[4].default, [1, [2, 3]]);
    assert.equal(spec.names[5].rest, true);
  });

  test('literal defaults', () => {
    const f = (a = 1, b = -2.5, c = .5, d = 1_000, e = 0x10, g = 'it\'s "x"', h = "q\u00e9\n",
      i = null, j = true, k = undefined, l = {}, m = [], n = `plain`, o = { "json": [1] },
      p = { a: 1, 'b-c': [true, -1e3], 2: null }) => {};
    const spec = readParameters(f);
    assert.deepEqual(spec.names.map((x) => x.default),
      [1, -2.5, 0.5, 1000, 16, 'it\'s "x"', 'q\u00e9\n', null, true, undefined, {}, [], 'plain',
        { json: [1] }, { a: 1, 'b-c': [true, -1000], 2: null }]);
    assert.ok(spec.names.every((x) => x.defaultKnown));
    // Not literals: names, calls, expressions, shorthand properties, substitutions.
    const g = (a = LIMIT, b = f(1), c = 1 + 2, d = { LIMIT }, e = `${a}`, h = -x, i = NaN) => {};
    assert.ok(readParameters(g).names.every((x) => x.defaultKnown === false));
  });

  test('a single object pattern, and what cannot be read', () => {
    assert.deepEqual(readParameters(({ amount, currency = 'usd', 'x-y': z = 3, ...more }) => {}), {
      kind: 'object', keys: ['amount', 'currency', 'x-y'], defaults: { currency: 'usd', 'x-y': 3 },
      unknownDefaults: [] });
    assert.equal(readParameters(Math.max).kind, 'unreadable');
    assert.equal(readParameters(function f(a) {}.bind(null)).kind, 'unreadable');
    assert.equal(readParameters(class A {}).kind, 'unreadable');
    assert.equal(readParameters(([a, b]) => a).kind, 'unreadable');
    assert.equal(readParameters((a, { b }) => a).kind, 'unreadable');
  });
});

describe('mapping arguments', () => {
  const params = (fn, args, options) => argumentMapper(fn, options).toParams(args);

  test('named parameters, defaults applied as JavaScript applies them', () => {
    const pay = (amount, currency = 'usd', memo = null) => {};
    assert.deepEqual(params(pay, [120]), { amount: 120, currency: 'usd', memo: null });
    assert.deepEqual(params(pay, [120, undefined, 'm']), { amount: 120, currency: 'usd', memo: 'm' });
    assert.deepEqual(params(pay, [120, 'eur']), { amount: 120, currency: 'eur', memo: null });
    // A missing argument without a default is left out, as JSON has no undefined.
    assert.deepEqual(params((a, b) => {}, [1]), { a: 1 });
    assert.throws(() => params(pay, [1, 2, 3, 4]), ParamsError);
  });

  test('a rest parameter becomes a list', () => {
    assert.deepEqual(params((tag, ...ids) => {}, ['t', 1, 2]), { tag: 't', ids: [1, 2] });
    assert.deepEqual(params((tag, ...ids) => {}, ['t']), { tag: 't', ids: [] });
  });

  test('paramNames and defaults win over the source', () => {
    const bound = function (a, b) {}.bind(null);
    assert.deepEqual(params(bound, [1, 2], { paramNames: ['x', 'y'] }), { x: 1, y: 2 });
    assert.deepEqual(params((x, y) => {}, [1], { defaults: { y: 7 } }), { x: 1, y: 7 });
    const limit = 10;
    assert.throws(() => argumentMapper((q, n = limit) => {}), /not a literal.*defaults/);
    assert.deepEqual(params((q, n = limit) => {}, ['a'], { defaults: { n: 10 } }), { q: 'a', n: 10 });
  });

  test('a single plain-object argument maps to its own keys', () => {
    const fn = ({ amount, currency = 'usd' }) => {};
    assert.deepEqual(params(fn, [{ amount: 5 }]), { amount: 5, currency: 'usd' });
    assert.deepEqual(params(fn, [{ amount: 5, extra: [1] }]), { amount: 5, currency: 'usd', extra: [1] });
    assert.deepEqual(params(fn, []), { currency: 'usd' });
    assert.throws(() => params(fn, [1]), ParamsError);
    // A function whose names cannot be read: one plain object works, anything else is an error.
    const native = Math.max;
    assert.deepEqual(params(native, [{ a: 1 }]), { a: 1 });
    assert.throws(() => params(native, [1, 2]), /paramNames/);
  });

  test('a params function, and its way back after a sanitize', () => {
    const m = argumentMapper((req) => {}, {
      params: (req) => ({ user: req.user }),
      applyParams: (p, args) => [{ ...args[0], user: p.user }],
    });
    assert.deepEqual(m.toParams([{ user: 'u', token: 'secret' }]), { user: 'u' });
    assert.deepEqual(m.applySanitized([{ user: 'u', token: 't' }], { user: 'u' }, { user: '[R]' }),
      [{ user: '[R]', token: 't' }]);
    const noWayBack = argumentMapper((req) => {}, { params: (req) => ({ user: req.user }) });
    assert.throws(() => noWayBack.applySanitized([{}], { user: 'u' }, { user: 'x' }), /applyParams/);
    assert.throws(() => argumentMapper((r) => {}, { params: () => [1] }).toParams([1]), ParamsError);
  });

  test('sanitized values go back onto the arguments they came from', () => {
    const m = argumentMapper((name, ssn, meta = { a: 1 }, ...rest) => {});
    const when = new Date(0);
    const args = ['Jane', '123', undefined, when, 'x@y.z'];
    const sent = m.toParams(args);
    const out = m.applySanitized(args, sent,
      { ...sent, ssn: '[REDACTED]', rest: [sent.rest[0], '[REDACTED:email]'] });
    assert.deepEqual(out, ['Jane', '[REDACTED]', undefined, '1970-01-01T00:00:00.000Z',
      '[REDACTED:email]']);
    // A default the policy redacted is passed explicitly.
    const d = argumentMapper((a, note = 'call 555-0100') => {});
    const dsent = d.toParams(['x']);
    assert.deepEqual(d.applySanitized(['x'], dsent, { a: 'x', note: 'call [REDACTED]' }),
      ['x', 'call [REDACTED]']);
    // Unchanged arguments keep their identity.
    const o = argumentMapper(({ a, b }) => {});
    const arg = { a: { deep: 1 }, b: 's' };
    const [mapped] = o.applySanitized([arg], o.toParams([arg]), { a: { deep: 1 }, b: '[R]' });
    assert.equal(mapped.a, arg.a);
    assert.equal(mapped.b, '[R]');
  });
});

describe('encoding values', () => {
  test('JSON values as JSON.stringify writes them, a Map as an object', () => {
    assert.deepEqual(encodeValue({ a: [1, 'x', null, true, undefined], u: undefined,
      d: new Date(0), m: new Map([['k', 1]]), n: Object.assign(Object.create(null), { z: 1 }) }),
    { a: [1, 'x', null, true, null], d: '1970-01-01T00:00:00.000Z', m: { k: 1 }, n: { z: 1 } });
  });

  test('anything else is a ParamsError naming the path', () => {
    class Point {
      constructor() {
        this.x = 1;
      }
    }
    const cyclic = [];
    cyclic.push(cyclic);
    let deep = {};
    const root = deep;
    for (let i = 0; i < 70; i++) deep = deep.next = {};
    for (const [value, path] of [
      [{ a: 1n }, 'params.a'], [{ f() {} }, 'params.f'], [{ s: Symbol('s') }, 'params.s'],
      [{ n: Infinity }, 'params.n'], [{ n: -Infinity }, 'params.n'], [{ l: [0, NaN] }, 'params.l[1]'],
      [{ c: cyclic }, 'params.c[0]'], [{ p: new Point() }, 'params.p'], [{ s: new Set() }, 'params.s'],
      [{ w: new WeakMap() }, 'params.w'], [{ m: new Map([[1, 2]]) }, 'params.m'],
      [{ t: 'a\udc00b' }, 'params.t'],
    ]) {
      assert.throws(() => encodeValue(value, 'params'), (e) => e instanceof ParamsError &&
        e.path === path, `${path}`);
    }
    assert.throws(() => encodeValue(root, 'params'), /deeper than 62/);
    // The same object twice is not a cycle.
    const shared = { k: 1 };
    assert.deepEqual(encodeValue({ a: shared, b: [shared] }), { a: { k: 1 }, b: [{ k: 1 }] });
  });
});

describe('canonical JSON and the call digest', () => {
  test('RFC 8785: sorted by UTF-16 code units, ECMAScript numbers, minimal escapes', () => {
    assert.equal(canonicalize({ b: 1, a: [1.5, 1e21, 1e-7, -0, 7000.0, 1e-6, 100] }),
      '{"a":[1.5,1e+21,1e-7,0,7000,0.000001,100],"b":1}');
    assert.equal(canonicalize({ '\uFB01': 1, '\u{1F600}': 2, 'é': 3, Z: 4, a: 5, aa: 6, 'a\u0000': 7 }),
      '{"Z":4,"a":5,"a\\u0000":7,"aa":6,"é":3,"😀":2,"ﬁ":1}');
    assert.equal(canonicalize('\u0000\u0007\b\t\n\u000b\f\r\u001f"\\/\u007f\u2028'),
      '"\\u0000\\u0007\\b\\t\\n\\u000b\\f\\r\\u001f\\"\\\\/\u007f\u2028"');
  });

  test('the documented digest', () => {
    assert.equal(callDigest('acme', 'finance-agent', 'stripe', 'create_payment',
      { currency: 'usd', amount: 7000 }),
    '158090f2a96b1c21d3201b2670858c7d27258ac8797d7dfcd30ae6b2f0fa2448');
    assert.equal(callDigest(null, 'finance-agent', 'search', 'query', null),
      '5e3a6efa418df37410f6bd7d338f63bbd108cc00dcabe3d0f27ac4a0f4adf38d');
  });
});
