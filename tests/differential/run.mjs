// Differential test: random conditions over random inputs, evaluated by cel-js (the reference)
// and by Aegis's expr_difftool; every result must agree in type and value, or both be errors.
//
// Usage: node run.mjs <path to expr_difftool> [cases]
// Deterministic: the generator is seeded. Shapes where cel-js departs from the CEL spec (and
// Aegis follows the spec) are not generated; docs/conditions.md lists them.
import {spawnSync} from 'node:child_process'
import {Environment} from '@marcbachmann/cel-js'

const driver = process.argv[2]
const total = Number(process.argv[3] ?? 2000)
if (!driver) {
  console.error('usage: node run.mjs <expr_difftool> [cases]')
  process.exit(2)
}

// mulberry32: small, seedable, good enough for test generation.
function rng(seed) {
  return () => {
    seed |= 0
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rand = rng(0xae915)
const pick = (xs) => xs[Math.floor(rand() * xs.length)]
const chance = (p) => rand() < p
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1))

// ---- inputs ---------------------------------------------------------------------------------

const WORDS = ['alpha', 'beta', 'gamma', 'acme', 'stripe', 'usd', 'eur', '', 'héllo', 'a.b']
const fracDouble = () => int(-2000, 2000) / 4 + 0.125 * pick([1, 3, 5])

function genInput() {
  return {
    i: BigInt(int(-20, 5000)),
    j: BigInt(int(-5, 5)),
    z: 0n,
    big: 9223372036854775807n,
    neg: -9223372036854775000n,  // INT64_MIN is never reached: see docs/conditions.md
    d: fracDouble(),
    e: fracDouble(),
    s: pick(WORDS),
    t: pick(WORDS),
    b: chance(0.5),
    n: null,
    l: Array.from({length: int(0, 4)}, () => BigInt(int(-3, 10))),
    ls: Array.from({length: int(0, 3)}, () => pick(WORDS)),
    m: {
      amount: BigInt(int(0, 10000)),
      ratio: fracDouble(),
      name: pick(WORDS),
      ok: chance(0.5),
      tags: Array.from({length: int(0, 3)}, () => pick(WORDS)),
      inner: {x: BigInt(int(0, 3)), y: pick(WORDS)},
    },
  }
}

// JSON text for the C++ driver: BigInt as a bare integer, doubles always with a fraction.
function toJson(v) {
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'number') {
    const s = JSON.stringify(v)
    return /[.eE]/.test(s) ? s : s + '.0'
  }
  if (Array.isArray(v)) return '[' + v.map(toJson).join(',') + ']'
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).map((k) => JSON.stringify(k) + ':' + toJson(v[k])).join(',') + '}'
  }
  return JSON.stringify(v)
}

// ---- expressions ----------------------------------------------------------------------------

const lit = {
  int: () => pick(['0', '1', '2', '3', '7', '10', '-1', '-4', '100', '5000', '9223372036854775807',
                   '-9223372036854775000', '0x1f', String(int(-50, 50))]),
  double: () => pick(['0.5', '1.5', '-2.25', '3.0', '1e3', '2.5e-1', '0.0', '100.125']),
  string: () => pick(["'alpha'", '"beta"', "'ac'", "''", "'héllo'", "r'x\\y'", '"""tri"""',
                      "'\\x41\\u00e9'", "'st'", "'a.b'"]),
}

function intExpr(d) {
  if (d <= 0 || chance(0.3)) {
    return pick([lit.int, () => pick(['i', 'j', 'z', 'm.amount', 'm.inner.x']),
                 () => pick(['big', 'neg'])])()
  }
  switch (int(0, 11)) {
    case 0: case 1: {
      const op = pick(['+', '-', '*', '+', '-'])
      return `(${intExpr(d - 1)} ${op} ${intExpr(d - 1)})`
    }
    case 2: {
      // Division and modulus, sometimes by zero. Divisors never evaluate to -1 with a
      // minimal int64 dividend: operands stay above -9223372036854775808.
      const op = pick(['/', '%'])
      return `(${intExpr(d - 1)} ${op} ${pick(['j', 'z', '3', '7', 'i', '2'])})`
    }
    case 3:
      return `size(${pick([strExpr(d - 1), 'l', 'ls', 'm', 'm.tags'])})`
    case 4:
      return `${pick(['s', 't', 'ls', 'l', 'm.name'])}.size()`
    case 5:
      return `l[${pick(['0', '1', '2', 'j', '5', '-1'])}]`
    case 6:
      return `int(${pick([doubleExpr(d - 1), "'42'", "'-7'", "'x1'", "'99999999999999999999'",
                          '2.5', '-2.5', 'd', '1e18'])})`
    case 7:
      return `(${boolExpr(d - 1)} ? ${intExpr(d - 1)} : ${intExpr(d - 1)})`
    case 8:
      return `-${intExpr(d - 1)}`
    case 9:
      return pick(['m.missing', 'm.inner.nope', "m['amount']", "m['nokey']", 'n'])
    case 10:
      return `int(${pick(["'12'", 'i', "'-0'"])})`
    default:
      return `${pick(['m.tags', 'l', 'ls'])}.filter(v, ${pick(['true', 'false'])}).size()`
  }
}

function doubleExpr(d) {
  if (d <= 0 || chance(0.3)) return pick([lit.double, () => pick(['d', 'e', 'm.ratio'])])()
  switch (int(0, 5)) {
    case 0: case 1:
      return `(${doubleExpr(d - 1)} ${pick(['+', '-', '*', '/'])} ${doubleExpr(d - 1)})`
    case 2:
      return `double(${pick([intExpr(d - 1), "'1.5'", "'abc'", "'-2e3'", 'i'])})`
    case 3:
      return `-${doubleExpr(d - 1)}`
    case 4:
      return `(${doubleExpr(d - 1)} / ${pick(['0.0', '-0.0', 'd'])})`
    default:
      return `(${boolExpr(d - 1)} ? ${doubleExpr(d - 1)} : ${doubleExpr(d - 1)})`
  }
}

function numExpr(d) {
  return chance(0.6) ? intExpr(d) : chance(0.8) ? doubleExpr(d) : pick(['1u', '3u', 'uint(i)', '0u'])
}

function strExpr(d) {
  if (d <= 0 || chance(0.35)) return pick([lit.string, () => pick(['s', 't', 'm.name', 'm.inner.y'])])()
  switch (int(0, 4)) {
    case 0:
      return `(${strExpr(d - 1)} + ${strExpr(d - 1)})`
    case 1:
      return `string(${pick([intExpr(d - 1), "'x'", 'true', 'b', '1.5', '-0.25', '3u', 'm.ok'])})`
    case 2:
      return `(${boolExpr(d - 1)} ? ${strExpr(d - 1)} : ${strExpr(d - 1)})`
    case 3:
      return pick(['ls[0]', 'm.tags[1]', "m['name']"])
    default:
      return pick(['m.nope', "{'a': 'x', 'b': 'y'}[s]", "{'alpha': 'A'}['alpha']"])
  }
}

function listExpr(d) {
  switch (int(0, 5)) {
    case 0:
      return pick(['l', 'ls', 'm.tags'])
    case 1:
      return `[${intExpr(d - 1)}, ${intExpr(d - 1)}]`
    case 2:
      return `(l + [${intExpr(d - 1)}])`
    case 3:
      return `l.map(v, ${pick(['v * 2', 'v + 1', 'v / j', 'v - i'])})`
    case 4:
      return `l.filter(v, ${pick(['v > 2', 'v % 2 == 0', '10 / v > 2'])})`
    default:
      return `[${strExpr(d - 1)}, 'gamma']`
  }
}

function cmp(a, b) {
  return `${a} ${pick(['==', '!=', '<', '<=', '>', '>='])} ${b}`
}

function boolExpr(d) {
  if (d <= 0 || chance(0.15)) return pick(['true', 'false', 'b', 'm.ok'])
  switch (int(0, 17)) {
    case 0: case 1:
      return cmp(numExpr(d - 1), numExpr(d - 1))
    case 2:
      return cmp(strExpr(d - 1), strExpr(d - 1))
    case 3: case 4:
      return `(${boolExpr(d - 1)} ${pick(['&&', '||'])} ${boolExpr(d - 1)})`
    case 5:
      return `!${boolExpr(d - 1)}`
    case 6:
      return `(${intExpr(d - 1)} in ${listExpr(d - 1)})`
    case 7:
      return `(${strExpr(d - 1)} in ${pick(['ls', 'm', 'm.tags', "['alpha', 'beta', 'acme', 'usd', 'x']", "{'alpha': 1, 'usd': 2}"])})`
    case 8:
      return `${strExpr(d - 1)}.${pick(['startsWith', 'endsWith', 'contains'])}(${strExpr(d - 1)})`
    case 9:
      return `has(${pick(['m.amount', 'm.nope', 'm.inner.x', 'm.inner.zz', 'm.missing.x'])})`
    case 10:
      return `${pick(['l', 'ls', 'm.tags', 'm'])}.${pick(['exists', 'all', 'exists_one'])}(v, ${predicate(d - 1)})`
    case 11:
      return `${strExpr(d - 1)}.matches(${pick(["'^a'", "'a+'", "'^[a-z]+$'", "'ph'", "'^$'", "'e.'"])})`
    case 12:
      return `(${boolExpr(d - 1)} ? ${boolExpr(d - 1)} : ${boolExpr(d - 1)})`
    case 13:
      // Errors on one side of && and ||, in both orders.
      return pick([`(${errExpr()} ${pick(['&&', '||'])} ${boolExpr(d - 1)})`,
                   `(${boolExpr(d - 1)} ${pick(['&&', '||'])} ${errExpr()})`])
    case 14:
      // Heterogeneous equality through dyn variables.
      return `${pick(['i', 'd', 's', 'b', 'n', 'l', 'm.amount', 'm.ratio', 'z'])} ${pick(['==', '!='])} ${pick(['i', 'd', 's', 'b', 'n', 'l', 'j', 'e', 'm.inner.x'])}`
    case 15:
      return cmp(pick(['i', 'd', 'j', 'e', 'z', 'm.amount', 'm.ratio']), pick(['1u', '2.5', '-1', '0.0', '3', '5000', 'm.ratio']))
    case 16:
      return `bool(${pick(["'true'", "'false'", "'x'", 'b'])})`
    default:
      return `(${listExpr(d - 1)} == ${listExpr(d - 1)})`
  }
}

function predicate(d) {
  return pick([
    `v == ${pick(["'alpha'", '1', '3', 'i'])}`,
    `size(string(v)) > ${pick(['2', '0', '4'])}`,
    `string(v).startsWith('a')`,
    `10 / ${pick(['v', '(v - 1)'])} > 1`,
    `v in ${pick(['l', 'ls'])}`,
    `${boolExpr(Math.min(d, 1))}`,
  ])
}

function errExpr() {
  return pick(['(1 / z > 0)', '(m.missing == 1)', '(big + 1 > 0)', '(l[9] == 1)', '(i + s == 1)',
               '(i % z == 0)', "(m['nokey'])", '(neg - 1000 < 0)', '(s > 1)'])
}

function topExpr() {
  const d = int(1, 4)
  return pick([boolExpr, boolExpr, boolExpr, intExpr, doubleExpr, strExpr, listExpr])(d)
}

// ---- evaluation and comparison ---------------------------------------------------------------

// Typed form of a cel-js result, matching the driver's output.
function typed(v) {
  if (v === null) return {null: true}
  switch (typeof v) {
    case 'bigint':
      return {int: v.toString()}
    case 'number':
      return {double: Number.isFinite(v) ? v : String(v)}
    case 'string':
      return {string: v}
    case 'boolean':
      return {bool: v}
  }
  if (Array.isArray(v)) return {list: v.map(typed)}
  const name = v?.constructor?.name
  if (name === 'UnsignedInt' || name === 'UnsignedInteger') return {uint: String(v.value)}
  if (v instanceof Uint8Array) return {bytes: Buffer.from(v).toString('hex')}
  if (name === 'Type') return {type: String(v).replace(/^Type<|>$/g, '')}
  if (v instanceof Map) return {map: [...v.entries()].map(([k, x]) => [typed(k), typed(x)])}
  if (typeof v === 'object') return {map: Object.entries(v).map(([k, x]) => [{string: k}, typed(x)])}
  return {unknown: String(v)}
}

function canonical(t) {
  if (t.error) return '{"error":true}'
  if (t.map) {
    const pairs = t.map.map(([k, v]) => [canonical(k), canonical(v)]).sort((a, b) => (a[0] < b[0] ? -1 : 1))
    return '{"map":[' + pairs.map(([k, v]) => `[${k},${v}]`).join(',') + ']}'
  }
  if (t.list) return '{"list":[' + t.list.map(canonical).join(',') + ']}'
  if ('double' in t && typeof t.double === 'number' && Object.is(t.double, -0)) return '{"double":0}'
  return JSON.stringify(t)
}

const env = new Environment({unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false})
const cases = []
for (let k = 0; k < total; ++k) {
  const input = genInput()
  const expr = topExpr()
  let reference
  try {
    reference = typed(env.evaluate(expr, input))
  } catch (err) {
    reference = {error: true, message: String(err.message).split('\n')[0]}
  }
  cases.push({expr, input, reference})
}

const stdin = cases.map((c) => `{"expr":${JSON.stringify(c.expr)},"input":${toJson(c.input)}}`).join('\n') + '\n'
const run = spawnSync(driver, [], {input: stdin, encoding: 'utf8', maxBuffer: 1 << 28})
if (run.status !== 0) {
  console.error(`driver failed: status ${run.status} ${run.error ?? ''}\n${run.stderr}`)
  process.exit(1)
}
const lines = run.stdout.split('\n').filter((l) => l.length > 0)
if (lines.length !== cases.length) {
  console.error(`driver printed ${lines.length} results for ${cases.length} cases`)
  process.exit(1)
}

let passed = 0
const failures = []
cases.forEach((c, k) => {
  const ours = JSON.parse(lines[k])
  if (canonical(ours) === canonical(c.reference)) {
    ++passed
  } else {
    failures.push({expr: c.expr, input: toJson(c.input), celjs: c.reference, aegis: ours})
  }
})
for (const f of failures.slice(0, 10)) {
  console.log(`MISMATCH ${f.expr}\n  input:  ${f.input}\n  cel-js: ${JSON.stringify(f.celjs)}\n  aegis:  ${JSON.stringify(f.aegis)}`)
}
console.log(`differential: ${passed} passed, ${failures.length} failed`)
process.exit(failures.length === 0 ? 0 : 1)
