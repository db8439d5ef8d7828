// Peer engines on the inputs bench/peers/gen.mjs wrote, for the ratios of DESIGN.md section 8:
//   Cedar (@cedar-policy/cedar-wasm): the policy set preparsed once (preparsePolicySet) and
//     every request decided with statefulIsAuthorized, the library's fastest reusable API;
//   cel-js (@marcbachmann/cel-js): each condition parsed once, then evaluated many times.
// Checks that Cedar agrees with Aegis on every request (allowed / not allowed; the decisions
// engine_benchmark wrote to rules-N/aegis-decisions.txt) and that cel-js agrees on every
// condition's result. Prints its own figures and writes them as JSON for summary.mjs.
//
//   node run.mjs --data DIR [--cedar-rules 50,1000] [--reps 5] [--min-seconds 1]
//                [--aegis-results FILE] [--results FILE]
import fs from 'node:fs'
import path from 'node:path'
import {createRequire} from 'node:module'
import {parse as celParse} from '@marcbachmann/cel-js'

const require = createRequire(import.meta.url)
const cedar = require('@cedar-policy/cedar-wasm/nodejs')

function parseArgs(argv) {
  const a = {data: null, cedarRules: [50, 1000], reps: 5, minSeconds: 1, aegisResults: null,
    results: null}
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i]
    const v = () => argv[++i]
    if (k === '--data') a.data = v()
    else if (k === '--cedar-rules') a.cedarRules = v().split(',').filter(Boolean).map(Number)
    else if (k === '--reps') a.reps = Number(v())
    else if (k === '--min-seconds') a.minSeconds = Number(v())
    else if (k === '--aegis-results') a.aegisResults = v()
    else if (k === '--results') a.results = v()
    else throw new Error(`unknown argument ${k}`)
  }
  if (!a.data) throw new Error('usage: node run.mjs --data DIR [--cedar-rules 50,1000] [--reps 5]')
  return a
}

const median = (xs) => {
  const s = xs.slice().sort((x, y) => x - y)
  const n = s.length
  return n === 0 ? 0 : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))]
const fmtNs = (ns) => ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms`
  : ns >= 1e3 ? `${(ns / 1e3).toFixed(1)} µs` : `${ns.toFixed(0)} ns`

// Same order trick as engine_benchmark: a fixed pseudo-random order over the requests.
function order(n, length, seed = 12345) {
  let s = seed >>> 0
  const out = new Uint32Array(length)
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = s % n
  }
  return out
}

// `floor`: the same requests against one permit-all policy, i.e. what cedar-wasm costs per call
// before any policy work (request and entity conversion across the wasm boundary).
function runCedar(dir, reps, minSeconds, floor = false) {
  const data = JSON.parse(fs.readFileSync(path.join(dir, 'cedar.json'), 'utf8'))
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'))
  if (floor) {
    data.policies = 'permit (principal, action, resource);'
    meta.cedar_policies = 1
  }
  const id = floor ? 'floor' : `bench-${meta.rules}`
  let t = process.hrtime.bigint()
  const parsed = cedar.preparsePolicySet(id, {staticPolicies: data.policies})
  const parseMs = Number(process.hrtime.bigint() - t) / 1e6
  if (parsed.type !== 'success') {
    throw new Error(`cedar rejected ${dir}: ${JSON.stringify(parsed.errors.slice(0, 3))}`)
  }
  const calls = data.requests.map((r) => ({...r, preparsedPolicySetId: id}))

  // Agreement with Aegis, request by request (also the warm-up).
  const decisions = calls.map((c) => {
    const a = cedar.statefulIsAuthorized(c)
    if (a.type !== 'success') throw new Error(`cedar failed: ${JSON.stringify(a.errors)}`)
    return a.response.decision
  })
  let mismatches = null
  const examples = []
  const aegisFile = path.join(dir, 'aegis-decisions.txt')
  if (!floor && fs.existsSync(aegisFile)) {
    const aegis = fs.readFileSync(aegisFile, 'utf8').trim().split('\n')
    if (aegis.length !== decisions.length) {
      throw new Error(`${aegisFile}: ${aegis.length} decisions for ${decisions.length} requests`)
    }
    mismatches = 0
    for (let i = 0; i < decisions.length; i++) {
      if ((aegis[i] === 'allow') !== (decisions[i] === 'allow')) {
        mismatches++
        if (examples.length < 3) examples.push(`request ${i}: aegis ${aegis[i]}, cedar ${decisions[i]}`)
      }
    }
  }
  const allowed = decisions.filter((d) => d === 'allow').length

  // Timed: every call individually (hrtime costs tens of ns, against Cedar's tens of µs).
  const perRep = []
  for (let rep = 0; rep < reps; rep++) {
    const samples = []
    const ord = order(calls.length, calls.length * 50, 777 + rep)
    let i = 0
    const start = process.hrtime.bigint()
    let elapsed = 0
    do {
      for (let k = 0; k < calls.length; k++, i++) {
        const c = calls[ord[i % ord.length]]
        const t0 = process.hrtime.bigint()
        cedar.statefulIsAuthorized(c)
        samples.push(Number(process.hrtime.bigint() - t0))
      }
      elapsed = Number(process.hrtime.bigint() - start) / 1e9
    } while (elapsed < minSeconds)
    samples.sort((x, y) => x - y)
    const sum = samples.reduce((s, x) => s + x, 0)
    perRep.push({p50: pct(samples, 0.5), p99: pct(samples, 0.99), mean: sum / samples.length,
      n: samples.length})
  }
  return {
    name: floor ? 'floor' : path.basename(dir), rules: floor ? 0 : meta.rules, cedar_policies: meta.cedar_policies,
    requests: calls.length, parse_ms: parseMs, allowed, mismatches, mismatch_examples: examples,
    p50_ns: median(perRep.map((r) => r.p50)), p99_ns: median(perRep.map((r) => r.p99)),
    mean_ns: median(perRep.map((r) => r.mean)),
    decisions_per_s: 1e9 / median(perRep.map((r) => r.mean)),
    samples_per_rep: median(perRep.map((r) => r.n)),
  }
}

function runCel(dataDir, reps, aegisConditions) {
  const conds = JSON.parse(fs.readFileSync(path.join(dataDir, 'conditions.json'), 'utf8'))
  const out = []
  for (const c of conds) {
    const program = celParse(c.expr)  // parsed once
    const ctx = {params: c.params}
    let r
    for (let i = 0; i < 300000; i++) r = program(ctx)  // warm-up: let the JIT settle
    const N = 1000000
    const per = []
    for (let rep = 0; rep < reps; rep++) {
      const t = process.hrtime.bigint()
      for (let i = 0; i < N; i++) r = program(ctx)
      per.push(Number(process.hrtime.bigint() - t) / N)
    }
    const result = String(r)
    const aegis = aegisConditions?.find((a) => a.name === c.name)
    out.push({name: c.name, expr: c.expr, ns: median(per), result,
      agrees: aegis ? aegis.result === result : null})
  }
  return out
}

function main() {
  const args = parseArgs(process.argv)
  const aegis = args.aegisResults && fs.existsSync(args.aegisResults)
    ? JSON.parse(fs.readFileSync(args.aegisResults, 'utf8')) : null
  const results = {cedar_version: cedar.getCedarVersion(), cedar: [], cel: []}

  console.log(`Cedar ${cedar.getCedarVersion()} (cedar-wasm, preparsed policy set, ` +
    `statefulIsAuthorized), ${args.reps} reps, median of reps`)
  const widths = [12, 9, 9, 11, 11, 11, 13, 11, 19]
  const cols = (cells) => cells.map((c, i) => i ? String(c).padStart(widths[i])
    : String(c).padEnd(widths[i])).join('')
  console.log(cols(['policy', 'policies', 'parse', 'p50', 'p99', 'mean', 'decisions/s', 'allowed',
    'mismatch vs aegis']))
  const runs = args.cedarRules.map((n) => [n, false])
  if (runs.length) runs.push([args.cedarRules[0], true])
  for (const [n, floor] of runs) {
    const dir = path.join(args.data, `rules-${n}`)
    if (!fs.existsSync(dir)) {
      console.log(`note: ${dir} missing; skipping Cedar at ${n} rules`)
      continue
    }
    const r = runCedar(dir, args.reps, args.minSeconds, floor)
    if (floor) results.cedar_floor = r
    else results.cedar.push(r)
    console.log(cols([r.name, r.cedar_policies, `${r.parse_ms.toFixed(0)} ms`, fmtNs(r.p50_ns),
      fmtNs(r.p99_ns), fmtNs(r.mean_ns), r.decisions_per_s.toFixed(0), `${r.allowed}/${r.requests}`,
      r.mismatches ?? (floor ? '-' : 'n/a (no aegis run)')]))
    for (const e of r.mismatch_examples) console.log(`  mismatch: ${e}`)
  }

  results.cel = runCel(args.data, args.reps, aegis?.conditions)
  console.log('floor = the same requests against one permit-all policy: cedar-wasm\'s per-call ' +
    'cost before any policy work')
  console.log(`\ncel-js 8 (parse once, evaluate many), ${args.reps} reps of 1M evaluations`)
  for (const c of results.cel) {
    console.log(`${c.name.padEnd(14)}${fmtNs(c.ns).padStart(10)}  = ${c.result}` +
      (c.agrees === false ? '   DISAGREES WITH AEGIS' : ''))
  }
  if (args.results) fs.writeFileSync(args.results, JSON.stringify(results, null, 2) + '\n')
}

main()
