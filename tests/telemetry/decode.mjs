// Aegis's OTLP/HTTP trace export, received by a local HTTP server and decoded with
// OpenTelemetry's own generated protobuf code (npm @opentelemetry/otlp-proto-exporter-base,
// build/src/generated/root: ExportTraceServiceRequest.decode), and its OTLP/JSON encoding read
// against the OTLP/JSON rules (hex ids, integer enums, lowerCamelCase keys, 64-bit integers as
// strings). The spans come from otlp_export_tool, which runs the real Exporter and prints what it
// sent; the caller's traceparent must carry through (same trace id, parent span id).
// Usage: node decode.mjs <path to otlp_export_tool>
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-proto-exporter-base/build/src/generated/root');
const { ExportTraceServiceRequest } = root.opentelemetry.proto.collector.trace.v1;
const { Span, Status } = root.opentelemetry.proto.trace.v1;

const tool = process.argv[2];
if (!tool) {
  console.error('usage: node decode.mjs <otlp_export_tool>');
  process.exit(2);
}

const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${PARENT_TRACE}-${PARENT_SPAN}-01`;
const START = '1700000000123456789';

// A receiver on a free loopback port that records each request and answers 200.
async function withReceiver(fn) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers,
                      body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': req.headers['content-type'] || 'application/json' });
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await fn(`http://127.0.0.1:${server.address().port}/v1/traces`, requests);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

async function runTool(url, encoding) {
  const { stdout } = await promisify(execFile)(tool, [url, encoding, TRACEPARENT]);
  return JSON.parse(stdout);
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');

// One shape for both encodings, so the same checks run on each.
function fromProtobuf(message) {
  const value = (v) => {
    if (v.stringValue != null) return ['string', v.stringValue];
    if (v.intValue != null) return ['int', v.intValue.toString()];
    if (v.doubleValue != null) return ['double', v.doubleValue];
    if (v.boolValue != null) return ['bool', v.boolValue];
    return ['?', v];
  };
  const attrs = (list) => Object.fromEntries((list || []).map((kv) => [kv.key, value(kv.value)]));
  return message.resourceSpans.map((rs) => ({
    resource: attrs(rs.resource.attributes),
    scopes: rs.scopeSpans.map((ss) => ({
      scope: { name: ss.scope.name, version: ss.scope.version },
      spans: ss.spans.map((s) => ({
        traceId: hex(s.traceId),
        spanId: hex(s.spanId),
        parentSpanId: hex(s.parentSpanId || []),
        name: s.name,
        kind: s.kind,
        start: s.startTimeUnixNano.toString(),
        end: s.endTimeUnixNano.toString(),
        attributes: attrs(s.attributes),
        droppedAttributesCount: s.droppedAttributesCount || 0,
        status: s.status ? { code: s.status.code || 0, message: s.status.message || '' }
                         : { code: 0, message: '' },
      })),
    })),
  }));
}

// OTLP/JSON: checks the rules while converting; every key must be a field of its message.
function fromJson(doc) {
  const only = (obj, allowed, what) => {
    for (const k of Object.keys(obj)) assert.ok(allowed.includes(k), `unexpected key ${what}.${k}`);
  };
  const isHex = (s, n) => typeof s === 'string' && new RegExp(`^[0-9a-f]{${n}}$`).test(s);
  const value = (v) => {
    only(v, ['stringValue', 'intValue', 'doubleValue', 'boolValue'], 'AnyValue');
    assert.equal(Object.keys(v).length, 1, 'AnyValue holds exactly one value');
    if ('stringValue' in v) return ['string', v.stringValue];
    if ('intValue' in v) {
      assert.equal(typeof v.intValue, 'string', 'int64 as a decimal string');
      assert.match(v.intValue, /^-?[0-9]+$/);
      return ['int', v.intValue];
    }
    if ('doubleValue' in v) return ['double', v.doubleValue];
    return ['bool', v.boolValue];
  };
  const attrs = (list) => Object.fromEntries((list || []).map((kv) => {
    only(kv, ['key', 'value'], 'KeyValue');
    return [kv.key, value(kv.value)];
  }));
  only(doc, ['resourceSpans'], 'ExportTraceServiceRequest');
  return doc.resourceSpans.map((rs) => {
    only(rs, ['resource', 'scopeSpans', 'schemaUrl'], 'ResourceSpans');
    only(rs.resource, ['attributes', 'droppedAttributesCount'], 'Resource');
    return {
      resource: attrs(rs.resource.attributes),
      scopes: rs.scopeSpans.map((ss) => {
        only(ss, ['scope', 'spans', 'schemaUrl'], 'ScopeSpans');
        only(ss.scope, ['name', 'version', 'attributes', 'droppedAttributesCount'], 'Scope');
        return {
          scope: { name: ss.scope.name, version: ss.scope.version },
          spans: ss.spans.map((s) => {
            only(s, ['traceId', 'spanId', 'traceState', 'parentSpanId', 'flags', 'name', 'kind',
                     'startTimeUnixNano', 'endTimeUnixNano', 'attributes',
                     'droppedAttributesCount', 'events', 'droppedEventsCount', 'links',
                     'droppedLinksCount', 'status'], 'Span');
            assert.ok(isHex(s.traceId, 32), `traceId as lower-case hex: ${s.traceId}`);
            assert.ok(isHex(s.spanId, 16), `spanId as lower-case hex: ${s.spanId}`);
            if ('parentSpanId' in s) assert.ok(isHex(s.parentSpanId, 16));
            assert.equal(typeof s.kind, 'number', 'enums as integers');
            assert.equal(typeof s.flags, 'number');
            assert.equal(typeof s.startTimeUnixNano, 'string', 'fixed64 as a decimal string');
            assert.equal(typeof s.endTimeUnixNano, 'string');
            if (s.status) {
              only(s.status, ['code', 'message'], 'Status');
              assert.equal(typeof s.status.code, 'number', 'enums as integers');
            }
            return {
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || '',
              name: s.name,
              kind: s.kind,
              start: s.startTimeUnixNano,
              end: s.endTimeUnixNano,
              attributes: attrs(s.attributes),
              droppedAttributesCount: s.droppedAttributesCount || 0,
              status: s.status ? { code: s.status.code, message: s.status.message || '' }
                               : { code: 0, message: '' },
              flags: s.flags,
            };
          }),
        };
      }),
    };
  });
}

// The checks both encodings must pass. `sent` is what otlp_export_tool reports it exported.
function checkExport(resourceSpans, sent) {
  const spans = [];
  for (const rs of resourceSpans) {
    assert.equal(rs.resource['service.name'][1], 'aegis');
    assert.deepEqual(rs.resource['service.version'], ['string', '0.1.0-test']);
    assert.deepEqual(rs.resource['host.name'], ['string', 'otlp-test-host']);
    assert.deepEqual(rs.resource['telemetry.sdk.name'], ['string', 'aegis']);
    for (const ss of rs.scopes) {
      assert.equal(ss.scope.name, 'aegis');
      spans.push(...ss.spans);
    }
  }
  // The span whose parent was not sampled is not exported.
  const exported = sent.spans.filter((s) => s.exported);
  assert.equal(exported.length, 2);
  assert.equal(spans.length, 2, `received ${spans.length} spans`);
  assert.ok(!spans.some((s) => s.name === 'aegis.decide.unsampled'));

  // The decision, joined to the caller's trace.
  const d = spans.find((s) => s.parentSpanId !== '');
  assert.ok(d, 'a span with a parent');
  assert.equal(d.traceId, PARENT_TRACE, 'the caller\'s trace id');
  assert.equal(d.parentSpanId, PARENT_SPAN, 'the caller\'s span is the parent');
  assert.equal(d.spanId, exported[0].span_id);
  assert.notEqual(d.spanId, PARENT_SPAN);
  assert.equal(d.name, 'aegis.decide');
  assert.equal(d.kind, Span.SpanKind.SPAN_KIND_SERVER);
  assert.equal(d.start, START);
  assert.equal(d.end, (BigInt(START) + 1500000n).toString());
  assert.deepEqual(d.status, { code: Status.StatusCode.STATUS_CODE_UNSET, message: '' });
  assert.equal(d.droppedAttributesCount, 0);
  const expected = {
    'aegis.agent': ['string', 'finance-agent'],
    'aegis.tenant': ['string', 'acme'],
    'aegis.tool': ['string', 'stripe'],
    'aegis.action': ['string', 'create_payment'],
    'aegis.decision': ['string', 'approval_needed'],
    'aegis.rule': ['string', 'payment-ceiling'],
    'aegis.policy_version': ['string', 'sha256:9f86d081884c7d65'],
    'aegis.decision_id': ['string', 'dec_0123456789abcdef'],
    'aegis.front_door': ['string', 'decide_api'],
    'test.unicode': ['string', 'Zürich ✓ 𝄞'],
    'test.invalid_utf8': ['string', 'caf\uFFFD \uFFFD!'],  // each invalid byte replaced
    'test.long': ['string', 'x'.repeat(4096)],             // bounded
    'test.int64_max': ['int', '9223372036854775807'],      // beyond a JS number's precision
    'test.negative': ['int', '-42'],
    'aegis.cost_usd': ['double', 0.002],
    'aegis.enforced': ['bool', true],
    'aegis.shadow': ['bool', false],
  };
  assert.deepEqual(d.attributes, expected);

  // The failed decision: a new trace, no parent, ERROR with its message.
  const f = spans.find((s) => s.parentSpanId === '');
  assert.ok(f, 'a root span');
  assert.notEqual(f.traceId, PARENT_TRACE);
  assert.equal(f.traceId, exported[1].trace_id);
  assert.equal(f.spanId, exported[1].span_id);
  assert.deepEqual(f.status, { code: Status.StatusCode.STATUS_CODE_ERROR,
                               message: 'limits store unavailable' });
  assert.deepEqual(f.attributes, { 'aegis.decision': ['string', 'deny'] });
  assert.equal(f.start, (BigInt(START) + 10n).toString());
  assert.equal(f.end, (BigInt(START) + 20n).toString());

  assert.match(sent.metrics, /^aegis_spans_exported_total 2$/m);
  assert.match(sent.metrics, /^aegis_spans_dropped_total\{reason="export_failed"\} 0$/m);
  return { d, f };
}

function checkRequests(requests, contentType) {
  assert.ok(requests.length >= 1);
  for (const r of requests) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/v1/traces');
    assert.equal(r.headers['content-type'], contentType);
    assert.equal(r.headers['x-test-header'], 'yes');
  }
}

test('protobuf export decodes with OpenTelemetry\'s generated ExportTraceServiceRequest', async () => {
  await withReceiver(async (url, requests) => {
    const sent = await runTool(url, 'protobuf');
    checkRequests(requests, 'application/x-protobuf');
    const decoded = requests.map((r) => {
      const message = ExportTraceServiceRequest.decode(r.body);
      assert.equal(ExportTraceServiceRequest.verify(message), null);
      return message;
    });
    checkExport(decoded.flatMap(fromProtobuf), sent);
  });
});

test('JSON export follows the OTLP/JSON rules', async () => {
  await withReceiver(async (url, requests) => {
    const sent = await runTool(url, 'json');
    checkRequests(requests, 'application/json');
    const docs = requests.map((r) => JSON.parse(r.body.toString('utf8')));
    const { d, f } = checkExport(docs.flatMap(fromJson), sent);
    // Span.flags (OTLP 1.1): W3C flags in bits 0-7 (sampled), bit 8: "is remote" known,
    // bit 9: the parent is remote.
    assert.equal(d.flags, 0x301);
    assert.equal(f.flags, 0x101);

    // The same document, with its hex ids turned into bytes, is a valid message for
    // OpenTelemetry's generated code, and survives its encode/decode.
    const toBytes = (o) => {
      for (const s of o.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans))) {
        for (const k of ['traceId', 'spanId', 'parentSpanId']) {
          if (s[k]) s[k] = Buffer.from(s[k], 'hex');
        }
      }
      return o;
    };
    for (const doc of docs) {
      const message = ExportTraceServiceRequest.fromObject(toBytes(structuredClone(doc)));
      assert.equal(ExportTraceServiceRequest.verify(message), null);
      const again = ExportTraceServiceRequest.decode(
        ExportTraceServiceRequest.encode(message).finish());
      const spans = fromProtobuf(again).flatMap((rs) => rs.scopes.flatMap((ss) => ss.spans));
      assert.ok(spans.some((s) => s.traceId === PARENT_TRACE && s.parentSpanId === PARENT_SPAN));
    }
  });
});
