// One table from the two result files: Aegis (engine_benchmark --results) and its peers
// (run.mjs --results), against the targets of DESIGN.md section 8.
//
//   node summary.mjs --aegis FILE --peers FILE [--markdown]
//
// Exit code 1 when an engine disagrees with its peer on a decision or a condition result
// (a correctness problem); missed timing targets are reported, never turned into a failure.
import fs from 'node:fs'

const args = {aegis: null, peers: null, markdown: false}
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i]
  if (k === '--aegis') args.aegis = process.argv[++i]
  else if (k === '--peers') args.peers = process.argv[++i]
  else if (k === '--markdown') args.markdown = true
  else throw new Error(`unknown argument ${k}`)
}
const aegis = JSON.parse(fs.readFileSync(args.aegis, 'utf8'))
const peers = args.peers && fs.existsSync(args.peers)
  ? JSON.parse(fs.readFileSync(args.peers, 'utf8')) : {cedar: [], cel: []}

const fmtNs = (ns) => ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms`
  : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(0)} ns`
const fmtRate = (r) => r >= 1e6 ? `${(r / 1e6).toFixed(2)} M/s`
  : r >= 1e3 ? `${(r / 1e3).toFixed(1)} k/s` : `${r.toFixed(0)} /s`
const fmtX = (x) => `${x >= 100 ? x.toFixed(0) : x.toFixed(1)}×`

const rows = []
const row = (what, measured, peer, ratio, target, ok) =>
  rows.push([what, measured, peer ?? '', ratio ?? '', target, ok === null ? '' : ok ? 'ok' : 'MISSED'])

const policy = (name) => aegis.policies.find((p) => p.name === name)
const biggest = aegis.policies.filter((p) => p.name.startsWith('rules-'))
  .sort((a, b) => b.rules - a.rules)[0]

for (const name of ['fintech', 'rules-50']) {
  const p = policy(name)
  if (!p) continue
  const label = `decide, ${name} (${p.rules} rules)`
  row(`${label} p50`, fmtNs(p.p50_ns), null, null, '≤ 1 µs', p.p50_ns <= 1000)
  row(`${label} p99`, fmtNs(p.p99_ns), null, null, '≤ 5 µs', p.p99_ns <= 5000)
  row(`${label} 1 core`, fmtRate(p.decisions_per_s), null, null, '≥ 1 M/s',
    p.decisions_per_s >= 1e6)
}
for (const p of aegis.policies) {
  if (!p.name.startsWith('rules-') || p.name === 'rules-50') continue
  const big = p === biggest && p.rules >= 10000
  row(`decide, ${p.name} p50 / p99`, `${fmtNs(p.p50_ns)} / ${fmtNs(p.p99_ns)}`, null, null,
    big ? 'p99 ≤ 10 µs' : '(info)', big ? p.p99_ns <= 10000 : null)
}

let failures = 0
for (const c of peers.cedar) {
  const p = policy(c.name)
  if (!p) continue
  const ratio = c.mean_ns / p.mean_ns
  const target = c.rules >= 1000 ? 1000 : 100
  row(`vs Cedar, ${c.name}: mean per decision`, fmtNs(p.mean_ns), fmtNs(c.mean_ns), fmtX(ratio),
    `≥ ${target}×`, ratio >= target)
  row(`vs Cedar, ${c.name}: p50`, fmtNs(p.p50_ns), fmtNs(c.p50_ns), fmtX(c.p50_ns / p.p50_ns),
    '(info)', null)
  const agree = c.mismatches === 0
  if (c.mismatches !== 0) failures++
  row(`vs Cedar, ${c.name}: decisions that differ`, String(c.mismatches ?? 'n/a'), `of ${c.requests}`,
    null, '0', agree)
}
if (peers.cedar_floor) {
  row('  Cedar floor: 1 permit-all policy, same calls', '', fmtNs(peers.cedar_floor.mean_ns), null,
    '(info)', null)
}
for (const a of aegis.conditions) {
  const cel = peers.cel.find((x) => x.name === a.name)
  row(`condition ${a.name}`, fmtNs(a.ns), null, null, '≤ 50 ns', a.ns <= 50)
  if (cel) {
    const ratio = cel.ns / a.ns
    row(`  vs cel-js`, fmtNs(a.ns), fmtNs(cel.ns), fmtX(ratio), '≥ 5×', ratio >= 5)
    if (cel.agrees === false) {
      failures++
      row(`  result differs: aegis ${a.result}, cel-js ${cel.result}`, '', '', '', 'same', false)
    }
  }
}

const head = ['what', 'Aegis', 'peer', 'ratio', 'target', '']
if (args.markdown) {
  console.log(`| ${head.join(' | ')} |`)
  console.log(`| ${head.map(() => '---').join(' | ')} |`)
  for (const r of rows) console.log(`| ${r.join(' | ')} |`)
} else {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  console.log(line(head))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows) console.log(line(r))
}
if (failures) {
  console.error(`\nsummary: ${failures} correctness disagreement(s) between Aegis and a peer`)
  process.exit(1)
}
