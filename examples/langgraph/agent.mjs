// A LangGraph agent whose tools are governed by Aegis through the Node SDK.
//
// The graph is the usual tool-calling loop: a chat model node, a ToolNode, and an edge back while
// the model asks for tools. Each tool's function is wrapped by the SDK's enforce(), so every call
// the model makes is decided by Aegis before it runs: searching the docs is allowed, a customer
// lookup reaches the tool with the SSN and e-mail address redacted, a bulk export is denied, and
// a large refund waits for a human — whom this example plays too, approving through the API.
//
// The model is scripted (no model, no network): it asks for those four tools in turn, then
// answers. README.md explains how to run it; run-test.sh runs it as a test.
//
// Environment: AEGIS_URL (default http://127.0.0.1:8181), AEGIS_ISSUER_CREDENTIAL (mints the
// agent's tokens), AEGIS_APPROVER_CREDENTIAL (the human who approves refunds; without it the
// refund waits for someone to run `aegis approvals approve`). With --json, the last line printed
// is {"outcomes": [...], "answer": "..."}.

import { AIMessage } from '@langchain/core/messages';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { tool } from '@langchain/core/tools';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { ToolNode, toolsCondition } from '@langchain/langgraph/prebuilt';
import {
  configure, currentDecision, DecisionError, enforce, issuerTokenProvider,
} from 'aegis';
import { z } from 'zod';

const URL = process.env.AEGIS_URL || 'http://127.0.0.1:8181';
const AGENT = 'support-agent';
const json = process.argv.includes('--json');
const log = (...args) => {
  if (!json) console.log(...args);
};

// --- Aegis --------------------------------------------------------------------------------------

configure({
  url: URL,
  agent: AGENT,
  tokenProvider: issuerTokenProvider({ url: URL, agent: AGENT, ttlSeconds: 900,
    credential: process.env.AEGIS_ISSUER_CREDENTIAL || 'example-issuer-secret-0123' }),
});

// What happened to each tool call, for the summary (and the test).
const outcomes = [];

// A LangChain tool whose function Aegis governs. `fn` takes the tool's input object: the governed
// function's single object parameter makes the SDK send the object's own keys as the call's params
// ({query: ...}, not {input: {query: ...}}), and a sanitize decision calls it with the redacted
// values.
function governedTool({ name, description, schema, tool: aegisTool, action, waitForApproval }, fn) {
  const governed = enforce({ tool: aegisTool, action, waitForApproval }, async ({ ...input }) => {
    const d = currentDecision();
    const outcome = d.reasonCode === 'approved' ? 'approved' : d.outcome;
    outcomes.push({ tool: name, outcome, rule: d.rule, decision_id: d.decisionId,
      ran_with: input });
    log(`  aegis: ${name} ${outcome}${d.rule ? ` (rule ${d.rule})` : ''}`);
    return fn(input);
  });
  return tool(async (input) => {
    try {
      return await governed(input);
    } catch (e) {
      if (!(e instanceof DecisionError)) throw e;
      const d = e.decision;
      outcomes.push({ tool: name, outcome: d ? d.outcome : e.name, rule: e.rule,
        decision_id: e.decisionId, error: e.name });
      log(`  aegis: ${name} ${e.name} (rule ${e.rule})`);
      throw e; // the ToolNode turns it into an error message the model reads
    }
  }, { name, description, schema });
}

const searchDocs = governedTool({
  name: 'search_docs', description: 'Search the help-centre articles.',
  schema: z.object({ query: z.string() }), tool: 'docs', action: 'search',
}, async ({ query }) => `3 articles match "${query}": "Refunds within 30 days", ...`);

const lookupCustomer = governedTool({
  name: 'lookup_customer', description: 'Look a customer up in the CRM.',
  schema: z.object({ customer_id: z.string(), ssn: z.string().optional(), note: z.string().optional() }),
  tool: 'crm', action: 'lookup_customer',
}, async ({ customer_id: id, ssn, note }) =>
  `customer ${id}: Jane Doe, plan Pro; ssn on file: ${ssn}; note: ${note}`);

const exportCustomers = governedTool({
  name: 'export_customers', description: 'Export every customer record.',
  schema: z.object({ format: z.enum(['csv', 'json']) }), tool: 'crm', action: 'export_customers',
}, async ({ format }) => `exported 12,408 customers as ${format}`);

const refund = governedTool({
  name: 'refund', description: 'Refund a charge, in dollars.',
  schema: z.object({ charge_id: z.string(), amount: z.number() }), tool: 'stripe', action: 'refund',
  waitForApproval: { timeoutMs: 60_000, pollMs: 100 },
}, async ({ charge_id: charge, amount }) => `refunded $${amount} of ${charge}`);

const tools = [searchDocs, lookupCustomer, exportCustomers, refund];

// --- The scripted chat model ------------------------------------------------------------------

// @langchain/core's fakes cannot script a tool-calling conversation in version 1.x:
// FakeListChatModel answers text only, and FakeStreamingChatModel repeats one answer. This one
// plays a list of AIMessages (with tool_calls) in order, on @langchain/core's BaseChatModel.
class ScriptedChatModel extends BaseChatModel {
  constructor(script) {
    super({});
    this.script = script;
    this.turn = 0;
  }

  _llmType() {
    return 'scripted';
  }

  bindTools(boundTools) {
    this.boundTools = boundTools.map((t) => t.name);
    return this;
  }

  async _generate() {
    const message = this.script[this.turn] ?? new AIMessage('(the script is over)');
    this.turn++;
    return { generations: [{ message, text: typeof message.content === 'string' ? message.content : '' }] };
  }
}

const call = (id, name, args) => new AIMessage({ content: '', tool_calls: [{ id, name, args }] });
const model = new ScriptedChatModel([
  call('call_1', 'search_docs', { query: 'refund policy' }),
  call('call_2', 'lookup_customer', { customer_id: 'cus_42', ssn: '123-45-6789',
    note: 'prefers mail to jane.doe@example.com' }),
  call('call_3', 'export_customers', { format: 'csv' }),
  call('call_4', 'refund', { charge_id: 'ch_3PZ', amount: 750 }),
  new AIMessage('Refunded $750 of ch_3PZ after approval; the bulk export was not allowed.'),
]).bindTools(tools);

// --- The graph ----------------------------------------------------------------------------------

const graph = new StateGraph(MessagesAnnotation)
  .addNode('agent', async (state) => ({ messages: [await model.invoke(state.messages)] }))
  .addNode('tools', new ToolNode(tools))
  .addEdge(START, 'agent')
  .addConditionalEdges('agent', toolsCondition, ['tools', END])
  .addEdge('tools', 'agent')
  .compile();

// --- The human approver -------------------------------------------------------------------------

// Plays the supervisor: approves every pending approval of this agent through the API, as a
// person would in `aegis approvals approve` or from the Slack notification.
function approver(credential) {
  let stopped = false;
  const headers = { authorization: `Bearer ${credential}`, 'content-type': 'application/json' };
  const loop = (async () => {
    while (!stopped) {
      const res = await fetch(`${URL}/v1/approvals?state=pending&agent=${AGENT}`, { headers });
      if (res.ok) {
        const { approvals } = await res.json();
        for (const a of approvals) {
          log(`  supervisor: approving ${a.id} (${a.tool}/${a.action}: ${a.message})`);
          await fetch(`${URL}/v1/approvals/${a.id}/approve`, { method: 'POST', headers,
            body: JSON.stringify({ comment: 'checked the charge' }) });
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

const approverCredential = process.env.AEGIS_APPROVER_CREDENTIAL;
const stopApprover = approverCredential ? approver(approverCredential) : async () => {};
log(`agent ${AGENT} against Aegis at ${URL}`);
try {
  const state = await graph.invoke({ messages: [{ role: 'user',
    content: 'Customer cus_42 wants a refund of $750 for charge ch_3PZ; also send me all customers.' }] });
  log('\nwhat the model read back:');
  for (const m of state.messages) {
    if (m.getType() === 'tool') log(`  ${m.name}: ${String(m.content).split('\n')[0]}`);
  }
  const answer = state.messages.at(-1).content;
  log(`\nanswer: ${answer}`);
  if (json) console.log(JSON.stringify({ outcomes, answer }));
} finally {
  await stopApprover();
}
