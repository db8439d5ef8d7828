// Generates benchmark policy sets, deterministic from a seed: for N rules, the SAME policy as an
// Aegis bundle (YAML) and as Cedar policy text, plus the SAME requests in both forms, so the
// Aegis engine benchmark and the Cedar peer decide identical calls. Also writes the single
// conditions that the expression benchmarks (Aegis expr vs cel-js) evaluate.
//
//   node gen.mjs --out DIR [--rules 50,1000,10000] [--requests 1000] [--seed 42]
//
// Layout of DIR:
//   rules-N/bundle/policy.yaml   Aegis bundle
//   rules-N/calls.jsonl          one decide-API call JSON per line (Aegis input)
//   rules-N/cedar.json           {policies: "<Cedar text>", requests: [{principal, action,
//                                 resource, context, entities}]}, request i = line i of calls
//   rules-N/meta.json            counts (rules, tools, agents, requests)
//   conditions.json              [{name, expr, params}] single CEL conditions and their input
//
// Mapping (DESIGN.md section 3, stages 4 and 5, onto Cedar):
//   allow -> permit;  deny, approval_needed -> forbid (Cedar has two effects; both say "not
//   allowed", so the compared outcome is allowed / not allowed);  default deny -> Cedar's
//   implicit deny;  "strongest effect wins" -> forbid overrides permit;  the agent's tool scope
//   -> one forbid policy over the principal entity's `tools` attribute.
//   Rule match {agents, tools, actions} -> the policy scope (principal / action in [...] /
//   resource) or `principal in [...]` in the condition; CEL conditions -> Cedar expressions
//   (`x in [..]` -> `[..].contains(x)`, startsWith/endsWith/contains -> `like`).
// Every call carries every parameter the conditions read, so no condition errs (Aegis and Cedar
// treat errors differently: Aegis fails safe per effect, Cedar skips the policy).
import fs from 'node:fs'
import path from 'node:path'

function parseArgs(argv) {
  const args = {out: null, rules: [50, 1000, 10000], requests: 1000, seed: 42}
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--out') args.out = next()
    else if (a === '--rules') args.rules = next().split(',').map(Number)
    else if (a === '--requests') args.requests = Number(next())
    else if (a === '--seed') args.seed = Number(next())
    else throw new Error(`unknown argument ${a}`)
  }
  if (!args.out) throw new Error('usage: node gen.mjs --out DIR [--rules 50,1000] [--requests N] [--seed S]')
  return args
}

// mulberry32: small, fast, deterministic.
function rng(seed) {
  let s = seed >>> 0
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const api = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),  // inclusive
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    chance: (p) => next() < p,
    sample: (arr, k) => {
      const copy = arr.slice()
      for (let i = copy.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [copy[i], copy[j]] = [copy[j], copy[i]]
      }
      return copy.slice(0, Math.min(k, copy.length))
    },
  }
  return api
}

const TOOL_KINDS = ['stripe', 'ehr', 'github', 'slack', 's3', 'jira', 'postgres', 'salesforce',
  'twilio', 'k8s', 'hubspot', 'gdrive']
const ACTIONS = ['create', 'read', 'list', 'update', 'delete', 'refund', 'export', 'transfer',
  'deploy', 'query']
const AGENT_KINDS = ['finance', 'support', 'devops', 'research', 'sales', 'clinical', 'ops']
const CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'CHF', 'CAD']
const DOMAINS = ['corp.example', 'partner.example', 'gmail.com', 'mail.example.org']
const REGIONS = ['us', 'eu', 'apac']
const ENVS = ['prod', 'staging', 'dev']
const NOTES = ['routine payout', 'urgent refund for customer', 'monthly report', 'URGENT wire',
  'quarterly export', 'test run', 'manual override requested', 'backfill job']
const NOTE_WORDS = ['urgent', 'override', 'test', 'export', 'wire']

const q = JSON.stringify  // a JSON string is a valid CEL, Cedar and YAML double-quoted string

// One condition as [CEL for Aegis, Cedar expression]. Every parameter read here is present in
// every generated call (see makeParams).
function makeCondition(r) {
  const p = 'context.params'
  switch (r.int(0, 9)) {
    case 0:
    case 1: {
      const n = r.pick([100, 500, 1000, 2500, 5000, 10000, 15000])
      return [`params.amount > ${n}`, `${p}.amount > ${n}`]
    }
    case 2: {
      const set = r.sample(CURRENCIES, r.int(2, 3))
      return [`params.currency in [${set.map(q).join(', ')}]`,
        `[${set.map(q).join(', ')}].contains(${p}.currency)`]
    }
    case 3: {
      const set = r.sample(CURRENCIES, r.int(1, 2))
      return [`!(params.currency in [${set.map(q).join(', ')}])`,
        `!([${set.map(q).join(', ')}].contains(${p}.currency))`]
    }
    case 4: {
      const d = r.pick(DOMAINS)
      return [`params.recipient.endsWith(${q('@' + d)})`, `${p}.recipient like ${q('*@' + d)}`]
    }
    case 5: {
      const e = r.pick(ENVS)
      return [`params.path.startsWith(${q('/' + e + '/')})`, `${p}.path like ${q('/' + e + '/*')}`]
    }
    case 6: {
      const w = r.pick(NOTE_WORDS)
      return [`params.note.contains(${q(w)})`, `${p}.note like ${q('*' + w + '*')}`]
    }
    case 7: {
      const n = r.pick([1000, 5000, 10000])
      const c = r.pick(CURRENCIES)
      return [`params.amount > ${n} && params.currency == ${q(c)}`,
        `${p}.amount > ${n} && ${p}.currency == ${q(c)}`]
    }
    case 8: {
      const g = r.pick(REGIONS)
      const n = r.pick([2000, 8000, 12000])
      return [`params.region == ${q(g)} || params.amount >= ${n}`,
        `${p}.region == ${q(g)} || ${p}.amount >= ${n}`]
    }
    default: {
      const k = r.int(3, 15)
      const e = r.pick(ENVS)
      return [`params.env == ${q(e)} && params.count >= ${k}`,
        `${p}.env == ${q(e)} && ${p}.count >= ${k}`]
    }
  }
}

function makeParams(r) {
  const env = r.pick(ENVS)
  return {
    amount: r.chance(0.7) ? r.int(1, 5000) : r.int(5001, 20000),
    currency: r.pick(CURRENCIES),
    recipient: `user${r.int(1, 500)}@${r.pick(DOMAINS)}`,
    region: r.pick(REGIONS),
    env,
    path: `/${env}/service-${r.int(1, 40)}/config`,
    note: r.pick(NOTES),
    count: r.int(0, 20),
  }
}

export function generate(nRules, nRequests, seed) {
  const r = rng(seed * 1000003 + nRules)
  const nTools = Math.max(5, Math.round(nRules / 25))
  const nAgents = Math.max(10, Math.round(nRules / 10))

  const tools = []
  for (let i = 0; i < nTools; i++) {
    const name = `${TOOL_KINDS[i % TOOL_KINDS.length]}-${i}`
    tools.push({name, host: `${name}.api.example`, actions: r.sample(ACTIONS, r.int(3, 6))})
  }
  const agents = []
  for (let i = 0; i < nAgents; i++) {
    const scope = new Set(r.sample(tools, r.int(1, 4)).map((t) => t.name))
    scope.add(tools[i % nTools].name)  // every tool has at least one agent
    agents.push({name: `${AGENT_KINDS[i % AGENT_KINDS.length]}-agent-${i}`, tools: [...scope]})
  }
  const agentsOf = new Map(tools.map((t) => [t.name, []]))
  for (const a of agents) for (const t of a.tools) agentsOf.get(t).push(a.name)
  const toolByName = new Map(tools.map((t) => [t.name, t]))

  // Rules. A couple of bundle-wide rules (any tool) like real policies have; the rest target
  // one tool, with one/some/any agents and actions.
  const rules = []
  const nGlobal = Math.min(2, Math.floor(nRules / 25))
  for (let i = 0; i < nRules; i++) {
    const id = `r-${String(i).padStart(5, '0')}`
    if (i < nGlobal) {
      const [cel, cedar] = i === 0
        ? ['params.note.contains("DROP TABLE")', 'context.params.note like "*DROP TABLE*"']
        : ['params.amount > 19000 && params.env == "prod"',
          'context.params.amount > 19000 && context.params.env == "prod"']
      rules.push({id, effect: 'deny', tool: null, agents: null, actions: null, cel, cedar})
      continue
    }
    const tool = tools[r.int(0, nTools - 1)]
    const x = r.next()
    const effect = x < 0.55 ? 'allow' : x < 0.85 ? 'deny' : 'approval_needed'
    const y = r.next()
    const agents_ = y < 0.6 ? [r.pick(agentsOf.get(tool.name))]
      : y < 0.8 ? r.sample(agentsOf.get(tool.name), r.int(2, 3)) : null
    const z = r.next()
    const actions = z < 0.6 ? [r.pick(tool.actions)] : z < 0.8 ? r.sample(tool.actions, 2) : null
    let cel = null
    let cedar = null
    if (effect !== 'allow' || r.chance(0.6)) [cel, cedar] = makeCondition(r)
    rules.push({id, effect, tool: tool.name, agents: agents_, actions, cel, cedar})
  }

  // Aegis bundle.
  const y = []
  y.push(`# Generated by bench/peers/gen.mjs: ${nRules} rules, seed ${seed}. Do not edit.`)
  y.push('apiVersion: aegis/v1', 'kind: Policy', `metadata: {name: bench-${nRules}}`,
    'mode: enforce', 'default: deny', 'tools:')
  for (const t of tools) {
    y.push(`  ${t.name}:`, `    hosts: [${t.host}]`, '    actions:')
    for (const a of t.actions) y.push(`      ${a}: {}`)
  }
  y.push('agents:')
  for (const a of agents) y.push(`  ${a.name}:`, `    tools: [${a.tools.join(', ')}]`)
  y.push('rules:')
  for (const ru of rules) {
    const m = []
    if (ru.agents) m.push(`agents: [${ru.agents.join(', ')}]`)
    if (ru.tool) m.push(`tools: [${ru.tool}]`)
    if (ru.actions) m.push(`actions: [${ru.actions.join(', ')}]`)
    y.push(`  - id: ${ru.id}`)
    if (m.length) y.push(`    match: {${m.join(', ')}}`)
    if (ru.cel) y.push(`    if: ${q(ru.cel)}`)
    y.push(`    effect: ${ru.effect}`)
  }
  const yaml = y.join('\n') + '\n'

  // Cedar policy set.
  const ent = (type, id) => `${type}::${q(id)}`
  const c = []
  c.push('@id("agent-scope")',
    'forbid (principal, action, resource)',
    'unless { principal has tools && principal.tools.contains(resource) };', '')
  for (const ru of rules) {
    const pr = ru.agents && ru.agents.length === 1 ? `principal == ${ent('Agent', ru.agents[0])}`
      : 'principal'
    const ac = !ru.actions ? 'action'
      : ru.actions.length === 1 ? `action == ${ent('Action', ru.actions[0])}`
        : `action in [${ru.actions.map((a) => ent('Action', a)).join(', ')}]`
    const rs = ru.tool ? `resource == ${ent('Tool', ru.tool)}` : 'resource'
    const when = []
    if (ru.agents && ru.agents.length > 1) {
      when.push(`principal in [${ru.agents.map((a) => ent('Agent', a)).join(', ')}]`)
    }
    if (ru.cedar) when.push(`(${ru.cedar})`)
    c.push(`@id(${q(ru.id)})`, `@aegis_effect(${q(ru.effect)})`,
      `${ru.effect === 'allow' ? 'permit' : 'forbid'} (${pr}, ${ac}, ${rs})` +
      (when.length ? `\nwhen { ${when.join(' && ')} };` : ';'), '')
  }
  const cedarText = c.join('\n')

  // Requests: mostly aimed at a rule's match (so rules actually fire), some at a random tool the
  // agent may or may not use (scope denials).
  const agentByName = new Map(agents.map((a) => [a.name, a]))
  const calls = []
  const cedarRequests = []
  for (let i = 0; i < nRequests; i++) {
    let agent
    let tool
    if (r.chance(0.9)) {
      const ru = r.pick(rules)
      tool = ru.tool ? toolByName.get(ru.tool) : toolByName.get(r.pick(tools).name)
      agent = ru.agents ? agentByName.get(r.pick(ru.agents))
        : agentByName.get(r.pick(agentsOf.get(tool.name)))
    } else {
      agent = r.pick(agents)
      tool = r.pick(tools)
    }
    const action = r.pick(tool.actions)
    const params = makeParams(r)
    calls.push({agent: agent.name, tool: tool.name, action, params})
    cedarRequests.push({
      principal: {type: 'Agent', id: agent.name},
      action: {type: 'Action', id: action},
      resource: {type: 'Tool', id: tool.name},
      context: {params},
      entities: [{
        uid: {type: 'Agent', id: agent.name},
        attrs: {tools: agent.tools.map((t) => ({__entity: {type: 'Tool', id: t}}))},
        parents: [],
      }],
    })
  }
  return {
    yaml, cedarText, calls, cedarRequests,
    meta: {rules: nRules, tools: nTools, agents: nAgents, requests: nRequests, seed,
      cedar_policies: rules.length + 1},
  }
}

// Single conditions for the expression benchmark, with the input each is evaluated on.
export const CONDITIONS = [
  {name: 'amount_gt', expr: 'params.amount > 5000'},
  {name: 'currency_in', expr: 'params.currency in ["USD", "EUR", "GBP"]'},
  {name: 'ends_with', expr: 'params.recipient.endsWith("@corp.example")'},
  {name: 'compound',
    expr: 'params.amount > 1000 && params.currency == "EUR" && !params.recipient.endsWith("@corp.example")'},
  {name: 'matches', expr: 'params.recipient.matches("^[a-z0-9.]+@corp\\\\.example$")'},
].map((c) => ({...c,
  params: {amount: 7000, currency: 'EUR', recipient: 'user42@partner.example', region: 'eu',
    env: 'prod', path: '/prod/service-3/config', note: 'routine payout', count: 4}}))

function main() {
  const args = parseArgs(process.argv)
  fs.mkdirSync(args.out, {recursive: true})
  for (const n of args.rules) {
    const g = generate(n, args.requests, args.seed)
    const dir = path.join(args.out, `rules-${n}`)
    fs.mkdirSync(path.join(dir, 'bundle'), {recursive: true})
    fs.writeFileSync(path.join(dir, 'bundle', 'policy.yaml'), g.yaml)
    fs.writeFileSync(path.join(dir, 'calls.jsonl'), g.calls.map((x) => JSON.stringify(x)).join('\n') + '\n')
    fs.writeFileSync(path.join(dir, 'cedar.json'),
      JSON.stringify({policies: g.cedarText, requests: g.cedarRequests}))
    fs.writeFileSync(path.join(dir, 'policies.cedar'), g.cedarText)
    fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(g.meta, null, 2) + '\n')
  }
  fs.writeFileSync(path.join(args.out, 'conditions.json'), JSON.stringify(CONDITIONS, null, 2) + '\n')
  console.log(`gen: wrote ${args.rules.map((n) => `rules-${n}`).join(', ')} and conditions.json to ${args.out}`)
}

if (import.meta.url === `file://${process.argv[1]}`) main()
