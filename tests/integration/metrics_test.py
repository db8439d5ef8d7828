"""GET /metrics of a real `aegis serve`, read as Prometheus reads it: a strict parser of the text
exposition format 0.0.4, then the exact figures an operator charts after a scripted run of
calls through the decide API and the HTTP authz front door: decisions by outcome, agent, tool,
tenant and front door; the latency histograms; spend and remaining budget; pending approvals;
the active policy version and reloads; the audit writer; and labels that never carry a name a
caller made up.

Usage: metrics_test.py <path to aegis>
"""
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

AEGIS = None
JSON = {"Content-Type": "application/json"}


# --- Prometheus text exposition format 0.0.4 --------------------------------------------------
# https://prometheus.io/docs/instrumenting/exposition_formats/ (python3-prometheus-client is not
# installed here, and the test must run with the standard library only).

class ExpositionError(Exception):
    pass


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# What Go's strconv.ParseFloat reads, without its laxer spellings (inf, Infinity, hex, _).
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_TIMESTAMP = re.compile(r"-?[0-9]+\Z")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text)
    if not _FLOAT.match(text):
        raise ValueError("not a sample value: %r" % text)
    value = float(text)
    if math.isinf(value):
        raise ValueError("value out of range: %r" % text)
    return value


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []  # (sample name, {label: value}, float)

    def __repr__(self):
        return "%s (%s, %d samples)" % (self.name, self.type, len(self.samples))


class Exposition:
    """A parsed /metrics body: families by name, each with its TYPE, HELP and samples."""

    def __init__(self, families):
        self.families = families

    def samples(self, name):
        """[(labels, value)] of every sample called `name` (a family or a histogram's _bucket,
        _sum, _count)."""
        out = []
        for family in self.families.values():
            out += [(labels, value) for n, labels, value in family.samples if n == name]
        return out

    def value(self, name, **labels):
        """The value of the one sample called `name` whose labels include `labels`; fails unless
        there is exactly one."""
        found = [v for l, v in self.samples(name) if all(l.get(k) == x for k, x in labels.items())]
        if len(found) != 1:
            raise AssertionError("%d samples of %s with %s, expected one" % (len(found), name,
                                                                            labels))
        return found[0]


def parse_exposition(text):
    """Parses Prometheus text format 0.0.4 strictly. Raises ExpositionError, naming the line,
    on anything Prometheus would refuse or misread: a malformed HELP, TYPE or sample line, a
    bad escape, a value that is not a float, a sample whose family has no TYPE (or the wrong
    suffix for it), a TYPE after the family's samples, a second HELP or TYPE, a family split in
    two groups, a series given twice, a reserved or repeated label name, a missing final
    newline."""
    if text and not text.endswith("\n"):
        raise ExpositionError("the last line does not end with a line feed")
    families = {}
    closed = set()    # families whose group of lines has ended
    current = None    # the family of the previous line
    seen = set()      # (sample name, sorted labels)
    lines = text.split("\n")[:-1] if text else []
    for number, line in enumerate(lines, 1):
        def fail(message):
            raise ExpositionError("line %d: %s: %r" % (number, message, line))

        def enter(name):
            nonlocal current
            if name != current:
                if name in closed:
                    fail("lines of family %s are not in one group" % name)
                if current is not None:
                    closed.add(current)
                current = name
            return families.setdefault(name, Family(name))

        if line.strip(" \t") == "":
            continue
        if line.lstrip(" \t").startswith("#"):
            tokens = line.lstrip(" \t")[1:].lstrip(" \t")
            keyword, rest = re.match(r"([^ \t]*)[ \t]*(.*)\Z", tokens).groups()
            if keyword not in ("HELP", "TYPE"):
                continue  # an ordinary comment
            m = _METRIC_NAME.match(rest)
            if not m:
                fail("no metric name after # " + keyword)
            name, rest = m.group(0), rest[m.end():]
            if rest and rest[0] not in " \t":
                fail("bad metric name")
            rest = rest.lstrip(" \t")
            family = enter(name)
            if keyword == "HELP":
                if family.help is not None:
                    fail("second HELP for " + name)
                help_text, i = [], 0
                while i < len(rest):
                    c = rest[i]
                    if c == "\\":
                        if i + 1 >= len(rest) or rest[i + 1] not in "\\n":
                            fail("bad escape in HELP")
                        help_text.append("\\" if rest[i + 1] == "\\" else "\n")
                        i += 2
                        continue
                    help_text.append(c)
                    i += 1
                family.help = "".join(help_text)
            else:
                if family.type is not None:
                    fail("second TYPE for " + name)
                if family.samples:
                    fail("TYPE after the samples of " + name)
                if rest.rstrip(" \t") not in _TYPES:
                    fail("unknown type")
                family.type = rest.rstrip(" \t")
            continue

        # A sample: name [{labels}] value [timestamp]
        m = _METRIC_NAME.match(line)
        if not m:
            fail("bad metric name")
        name, i = m.group(0), m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            i += 1
            while True:
                while i < len(line) and line[i] in " \t":
                    i += 1
                if i < len(line) and line[i] == "}":
                    i += 1
                    break
                m = _LABEL_NAME.match(line, i)
                if not m:
                    fail("bad label name")
                label = m.group(0)
                if label.startswith("__"):
                    fail("reserved label name " + label)
                if label in labels:
                    fail("label %s given twice" % label)
                i = m.end()
                while i < len(line) and line[i] in " \t":
                    i += 1
                if line[i:i + 2] != '="':
                    fail("expected =\" after label " + label)
                i += 2
                value = []
                while True:
                    if i >= len(line):
                        fail("unterminated label value")
                    c = line[i]
                    if c == '"':
                        i += 1
                        break
                    if c == "\\":
                        if i + 1 >= len(line) or line[i + 1] not in '\\"n':
                            fail("bad escape in label value")
                        value.append("\n" if line[i + 1] == "n" else line[i + 1])
                        i += 2
                        continue
                    value.append(c)
                    i += 1
                labels[label] = "".join(value)
                while i < len(line) and line[i] in " \t":
                    i += 1
                if i < len(line) and line[i] == ",":
                    i += 1
                elif i < len(line) and line[i] == "}":
                    i += 1
                    break
                else:
                    fail("expected , or } after a label")
        if i >= len(line) or line[i] not in " \t":
            fail("no blank before the value")
        fields = line[i:].split()
        if len(fields) not in (1, 2):
            fail("expected a value and at most a timestamp")
        try:
            value = parse_value(fields[0])
        except ValueError as e:
            fail(str(e))
        if len(fields) == 2 and not _TIMESTAMP.match(fields[1]):
            fail("bad timestamp")

        # Which family: the name itself, or a histogram's or summary's suffixed series.
        family = None
        if name in families and families[name].type is not None:
            family = families[name]
            if family.type == "histogram":
                fail("a histogram's samples are _bucket, _sum and _count")
            if family.type == "summary" and "quantile" not in labels:
                fail("a summary sample without quantile")
        else:
            for suffix, allowed in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                                    ("_count", ("histogram", "summary"))):
                base = name[:-len(suffix)]
                if name.endswith(suffix) and base in families and families[base].type in allowed:
                    family = families[base]
                    break
        if family is None:
            fail("sample whose family has no TYPE")
        if name.endswith("_bucket") and family.type == "histogram":
            if "le" not in labels:
                fail("histogram bucket without le")
            try:
                parse_value(labels["le"])
            except ValueError:
                fail("le is not a float")
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            fail("series given twice")
        seen.add(key)
        enter(family.name).samples.append((name, labels, value))
    return Exposition(families)


class ExpositionParserTest(unittest.TestCase):
    """The parser refuses what it must, so the server's output is checked by something that can
    fail."""

    GOOD = ('# HELP a_total A counter with \\\\ and \\n in its help.\n'
            '# TYPE a_total counter\n'
            'a_total{x="q\\"uote",y="back\\\\slash",z="new\\nline",} 3 1700000000000\n'
            'a_total 1e3\n'
            '# a comment\n'
            '# TYPE h histogram\n'
            '# HELP h Latency.\n'
            'h_bucket{le="0.5"} 1\n'
            'h_bucket{le="+Inf"} 2\n'
            'h_sum -0.25\n'
            'h_count 2\n'
            '# TYPE g gauge\n'
            'g NaN\n'
            'g{a="1"} -Inf\n'
            'g{a="2"} +Inf\n')

    def test_reads_a_valid_exposition(self):
        e = parse_exposition(self.GOOD)
        self.assertEqual(e.families["a_total"].help, "A counter with \\ and \n in its help.")
        self.assertEqual(e.value("a_total", x='q"uote'), 3)
        self.assertEqual(e.samples("a_total")[0][0],
                         {"x": 'q"uote', "y": "back\\slash", "z": "new\nline"})
        self.assertEqual(e.samples("a_total")[1], ({}, 1000))
        self.assertEqual(e.families["h"].type, "histogram")
        self.assertEqual(e.value("h_bucket", le="+Inf"), 2)
        self.assertTrue(math.isnan(e.samples("g")[0][1]))
        self.assertEqual(e.value("g", a="1"), -math.inf)

    def test_refuses_malformed_lines(self):
        head = "# TYPE m gauge\n"
        bad = {
            "no final newline": head + "m 1",
            "sample without TYPE": "m 1\n",
            "suffix of the wrong type": head + "m_count 1\n",
            "histogram sample without suffix": "# TYPE h histogram\nh 1\n",
            "bucket without le": "# TYPE h histogram\nh_bucket 1\n",
            "le not a float": '# TYPE h histogram\nh_bucket{le="big"} 1\n',
            "bad escape": head + 'm{a="\\t"} 1\n',
            "unterminated value": head + 'm{a="x} 1\n',
            "unquoted label": head + "m{a=x} 1\n",
            "missing comma": head + 'm{a="1" b="2"} 1\n',
            "duplicate label": head + 'm{a="1",a="2"} 1\n',
            "reserved label": head + 'm{__name__="x"} 1\n',
            "bad label name": head + 'm{1a="x"} 1\n',
            "bad metric name": "# TYPE 1m gauge\n1m 1\n",
            "no value": head + "m\n",
            "value not a float": head + "m one\n",
            "lax infinity": head + "m inf\n",
            "underscore in value": head + "m 1_000\n",
            "no blank before value": head + 'm{a="1"}1\n',
            "bad timestamp": head + "m 1 1.5\n",
            "trailing garbage": head + "m 1 2 3\n",
            "duplicate series": head + 'm{a="1"} 1\nm{a="1"} 2\n',
            "second TYPE": head + head,
            "second HELP": "# HELP m x\n# HELP m y\n" + head,
            "unknown type": "# TYPE m meter\n",
            "TYPE after samples": head + "m 1\n# TYPE m gauge\n",
            "family in two groups": head + "m 1\n# TYPE n gauge\nn 1\nm{a=\"1\"} 1\n",
            "bad escape in HELP": "# HELP m a\\tb\n" + head,
        }
        for what, text in bad.items():
            with self.subTest(what):
                with self.assertRaises(ExpositionError):
                    parse_exposition(text)


# --- The server -------------------------------------------------------------------------------

POLICY = """\
apiVersion: aegis/v1
kind: Policy
metadata: {name: metrics-test, description: %s}
tools:
  search: {actions: {query: {}}}
  ehr: {actions: {export: {}, delete: {}}}
  stripe: {actions: {create_payment: {}}}
  llm: {actions: {complete: {cost_usd: 2}}}
agents:
  research-agent: {tools: [search, ehr]}
  finance-agent: {tools: [stripe]}
  chatty: {tools: [search], max_requests_per_second: 0.001, burst: 1}
  # A 366-day window rather than a UTC day, so no window can roll over during the test.
  thrifty: {tools: [llm], budgets: [{usd: 5, window: 366d}]}
rules:
  - {id: lookups, match: {tools: [search, llm]}, effect: allow}
  - {id: no-deletes, match: {tools: [ehr], actions: [delete]}, effect: deny}
  - id: phi
    match: {tools: [ehr], actions: [export]}
    effect: sanitize
    redact: {detectors: [ssn]}
  - id: big-payments
    match: {tools: [stripe]}
    if: params.amount > 5000
    effect: approval_needed
    approval: {quorum: 1, ttl: 1h}
  - {id: payments, match: {tools: [stripe]}, effect: allow}
"""

TENANT = """\
apiVersion: aegis/v1
kind: Policy
metadata: {tenant: acme}
agents:
  acme-bot: {tools: [search]}
"""

# Names no policy declares, sent by callers: none may become a label value.
UNKNOWN_AGENT = "mallory-7f3a9c"
UNKNOWN_TOOL = "shadow-tool-51be"
MADE_UP_TENANT = "tenant-nobody-declared-e4d1"


def write_bundle(dir, description="first"):
    os.makedirs(os.path.join(dir, "tenants"), exist_ok=True)
    with open(os.path.join(dir, "policy.yaml"), "w", encoding="utf-8") as f:
        f.write(POLICY % description)
    with open(os.path.join(dir, "tenants", "acme.yaml"), "w", encoding="utf-8") as f:
        f.write(TENANT)


def start_server(prefix):
    """A server on its own bundle and data dir; the bundle is reloaded only when told (no file
    watcher), so the reload counters move only when the test moves them."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    bundle = os.path.join(tmp, "bundle")
    write_bundle(bundle)
    config = {"data_dir": os.path.join(tmp, "data"), "log_level": "warn",
              "policy": {"watch": False}, "audit": {"enabled": True}}
    try:
        server = harness.AegisServer(AEGIS, tmp, bundle, config=config).start()
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, bundle, server


def scrape(server):
    """GET /metrics, checked and parsed; (Exposition, text)."""
    status, headers, body = server.request("GET", "/metrics")
    if status != 200:
        raise AssertionError("GET /metrics: %d %r" % (status, body[:200]))
    if headers.get("content-type") != "text/plain; version=0.0.4":
        raise AssertionError("GET /metrics: content-type %r" % headers.get("content-type"))
    text = body.decode("utf-8")  # strict: invalid UTF-8 fails here
    return parse_exposition(text), text


def lines_naming(text, name):
    """The lines of an exposition that mention `name` (for failure messages)."""
    return [line for line in text.split("\n") if name in line]


def poll_metrics(server, done, timeout=10.0):
    """Scrapes until done(exposition) is true; returns that exposition, or the last one after
    the deadline (the caller's assertions then say what was missing)."""
    deadline = time.monotonic() + timeout
    while True:
        e, _ = scrape(server)
        if done(e) or time.monotonic() >= deadline:
            return e
        time.sleep(0.02)


def decide(server, agent, tool, action, params=None, tenant=None):
    call = {"agent": agent, "tool": tool, "action": action}
    if params is not None:
        call["params"] = params
    if tenant is not None:
        call["tenant"] = tenant
    status, headers, body = server.request("POST", "/v1/decide", call, JSON)
    return status, headers.get("x-aegis-decision"), json.loads(body)


def authz(server, agent, tool, action, params=None, tenant=None):
    """The HTTP authz front door, as Envoy's HTTP ext_authz calls it."""
    headers = {"x-aegis-agent": agent, "x-aegis-tool": tool, "x-aegis-action": action}
    if tenant is not None:
        headers["x-aegis-tenant"] = tenant
    body = None
    if params is not None:
        headers.update(JSON)
        body = params
    status, h, data = server.request("POST", "/v1/authz/%s/%s" % (tool, action), body, headers)
    return status, h.get("x-aegis-decision"), json.loads(data) if data else None


# One scripted run. Each call: (what it is, its front door's function, args, kwargs, HTTP
# status, decision, first reason code or None when the answer has no body). The expected series
# below are written out by hand, not derived from this list, so a miscount on either side shows.
SSN = "123-45-6789"
SCRIPT = [
    ("allow", decide, ("research-agent", "search", "query"), {}, 200, "allow", "rule"),
    ("allow via authz, tenant", authz, ("acme-bot", "search", "query"), {"tenant": "acme"},
     200, "allow", None),
    ("rate limit: the burst", decide, ("chatty", "search", "query"), {}, 200, "allow", "rule"),
    ("rate limit: over", decide, ("chatty", "search", "query"), {}, 429, "deny", "rate_limited"),
    ("budget: $2", decide, ("thrifty", "llm", "complete"), {}, 200, "allow", "rule"),
    ("budget: $4", decide, ("thrifty", "llm", "complete"), {}, 200, "allow", "rule"),
    ("budget: $6 > $5", decide, ("thrifty", "llm", "complete"), {}, 402, "deny",
     "budget_exceeded"),
    ("deny rule", decide, ("research-agent", "ehr", "delete"), {}, 403, "deny", "rule"),
    ("deny rule via authz", authz, ("research-agent", "ehr", "delete"), {}, 403, "deny", "rule"),
    ("a tenant's agent under another tenant", decide, ("acme-bot", "search", "query"),
     {"tenant": "globex"}, 403, "deny", "unknown_agent"),
    ("sanitize", decide, ("research-agent", "ehr", "export"), {"params": {"ssn": SSN}},
     200, "sanitize", "rule"),
    ("sanitize via authz", authz, ("research-agent", "ehr", "export"), {"params": {"ssn": SSN}},
     200, "sanitize", None),
    ("approval", decide, ("finance-agent", "stripe", "create_payment"),
     {"params": {"amount": 7000}}, 403, "approval_needed", "rule"),
    ("unknown agent", decide, (UNKNOWN_AGENT, "search", "query"), {}, 403, "deny",
     "unknown_agent"),
    ("unknown tool", decide, ("research-agent", UNKNOWN_TOOL, "query"), {}, 403, "deny",
     "unknown_tool"),
]
DECISIONS = 15
DECIDE_API_DECISIONS = 12
AUTHZ_DECISIONS = 3

# aegis_decisions_total, every series: (front_door, decision, tenant, agent, tool) -> count.
# All enforced (no shadow mode in this bundle).
EXPECTED_DECISIONS = {
    ("decide_api", "allow", "", "research-agent", "search"): 1,
    ("decide_api", "allow", "", "chatty", "search"): 1,
    ("decide_api", "allow", "", "thrifty", "llm"): 2,
    ("authz_http", "allow", "acme", "acme-bot", "search"): 1,
    ("decide_api", "deny", "", "chatty", "search"): 1,              # rate limited
    ("decide_api", "deny", "", "thrifty", "llm"): 1,                # over budget
    ("decide_api", "deny", "", "research-agent", "ehr"): 1,         # rule no-deletes
    ("authz_http", "deny", "", "research-agent", "ehr"): 1,         # rule no-deletes
    ("decide_api", "sanitize", "", "research-agent", "ehr"): 1,
    ("authz_http", "sanitize", "", "research-agent", "ehr"): 1,
    ("decide_api", "approval_needed", "", "finance-agent", "stripe"): 1,
    # acme-bot exists only for tenant acme; for globex it is as unknown as UNKNOWN_AGENT.
    ("decide_api", "deny", "_unknown", "_unknown", "_unknown"): 2,
    ("decide_api", "deny", "", "research-agent", "_unknown"): 1,    # UNKNOWN_TOOL
}


class MetricsTest(unittest.TestCase):
    """The scripted run, then one scrape that every test reads (tests that change the server
    scrape again)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.bundle, cls.aegis = start_server("aegis-metrics-")
        try:
            cls.run_script()
            cls.metrics, cls.text = scrape(cls.aegis)
            status, _, body = cls.aegis.request("GET", "/readyz")
            assert status == 200, status
            cls.readyz_version = json.loads(body)["policy_version"]
        except BaseException:
            cls.aegis.kill()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def run_script(cls):
        for name, fn, args, kwargs, status, decision, reason in SCRIPT:
            got_status, got_decision, body = fn(cls.aegis, *args, **kwargs)
            got_reason = body["reasons"][0]["code"] if body else None
            if (got_status, got_decision) != (status, decision) or (
                    reason is not None and got_reason != reason):
                raise AssertionError("%s: got %s %s (%s), expected %s %s (%s)" % (
                    name, got_status, got_decision, got_reason, status, decision, reason))
        assert len(SCRIPT) == DECISIONS
        # Refused before any decision: malformed JSON on the decide API; on the authz front
        # door a malformed JSON body, and a request that names no agent.
        status, _, _ = cls.aegis.request("POST", "/v1/decide", b'{"agent": ', JSON)
        assert status == 400, status
        status, _, _ = cls.aegis.request("POST", "/v1/authz/search/query", b'{"q": ', dict(
            JSON, **{"x-aegis-agent": "research-agent", "x-aegis-tool": "search",
                     "x-aegis-action": "query"}))
        assert status == 400, status
        status, _, _ = cls.aegis.request("GET", "/v1/authz/search/query",
                                         headers={"x-aegis-tool": "search"})
        assert status == 400, status

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.aegis.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, cls.aegis.output()

    # -- the exposition itself

    def test_every_family_has_help_and_type_and_counters_end_in_total(self):
        for name, family in self.metrics.families.items():
            with self.subTest(name):
                self.assertTrue(name.startswith("aegis_"), name)
                self.assertIsNotNone(family.type, "no TYPE")
                self.assertTrue(family.help, "no HELP")
                if family.type == "counter":
                    self.assertTrue(name.endswith("_total"), "a counter not named *_total")
                else:
                    self.assertFalse(name.endswith("_total"), "a %s named *_total" % family.type)
        # The families an operator's dashboards read are all there.
        for name in ("aegis_decisions_total", "aegis_bad_requests_total",
                     "aegis_decision_duration_seconds", "aegis_policy_reloads_total",
                     "aegis_policy_info", "aegis_approvals_pending", "aegis_budget_spent_usd",
                     "aegis_budget_limit_usd", "aegis_budget_remaining_usd"):
            self.assertIn(name, self.metrics.families)

    # -- decisions

    def test_decisions_by_outcome_agent_tool_tenant_and_front_door(self):
        got = {}
        for labels, value in self.metrics.samples("aegis_decisions_total"):
            self.assertEqual(set(labels), {"front_door", "decision", "enforced", "tenant", "agent",
                                           "tool"})
            self.assertEqual(labels["enforced"], "true")
            got[(labels["front_door"], labels["decision"], labels["tenant"], labels["agent"],
                 labels["tool"])] = value
        self.assertEqual(got, EXPECTED_DECISIONS)

        def total(**want):
            return sum(v for l, v in self.metrics.samples("aegis_decisions_total")
                       if all(l[k] == x for k, x in want.items()))

        self.assertEqual(total(decision="allow"), 5)
        self.assertEqual(total(decision="deny"), 7)
        self.assertEqual(total(decision="sanitize"), 2)
        self.assertEqual(total(decision="approval_needed"), 1)
        self.assertEqual(total(), DECISIONS)
        self.assertEqual(total(front_door="decide_api"), DECIDE_API_DECISIONS)
        self.assertEqual(total(front_door="authz_http"), AUTHZ_DECISIONS)
        self.assertEqual(total(front_door="extauthz_grpc"), 0)
        self.assertEqual(total(tenant="acme"), 1)
        self.assertEqual(total(agent="thrifty"), 3)
        self.assertEqual(total(tool="ehr"), 4)

    def test_requests_refused_before_a_decision_are_counted_under_their_front_door(self):
        # The authz request without an agent is refused by HttpApi::ApplyCaller, shared by both
        # doors: it must still count under the door that called it.
        bad = {l["front_door"]: v for l, v in self.metrics.samples("aegis_bad_requests_total")}
        self.assertLessEqual({"decide_api", "authz_http", "extauthz_grpc", "cli"}, set(bad))
        self.assertEqual({door: n for door, n in bad.items() if n},
                         {"decide_api": 1, "authz_http": 2})

    def test_names_callers_made_up_never_become_label_values(self):
        values = {v for family in self.metrics.families.values()
                  for _, labels, _ in family.samples for v in labels.values()}
        for made_up in (UNKNOWN_AGENT, UNKNOWN_TOOL, "globex"):
            lines = lines_naming(self.text, made_up)
            if lines:
                self.fail("labelled with %s:\n%s" % (made_up, "\n".join(lines)))
        self.assertIn("_unknown", values)
        agents = {l["agent"] for l, _ in self.metrics.samples("aegis_decisions_total")}
        self.assertEqual(agents, {"research-agent", "chatty", "thrifty", "acme-bot",
                                  "finance-agent", "_unknown"})
        tenants = {l["tenant"] for l, _ in self.metrics.samples("aegis_decisions_total")}
        self.assertEqual(tenants, {"", "acme", "_unknown"})

    # -- latency

    def test_latency_histogram_counts_every_decision_once(self):
        family = self.metrics.families["aegis_decision_duration_seconds"]
        self.assertEqual(family.type, "histogram")
        doors = {l["front_door"] for l, _ in
                 self.metrics.samples("aegis_decision_duration_seconds_count")}
        self.assertLessEqual({"decide_api", "authz_http", "extauthz_grpc", "cli"}, doors)
        # Every other front door (gRPC, CLI, any added later) saw no decision.
        expected_counts = dict.fromkeys(doors, 0)
        expected_counts.update(decide_api=DECIDE_API_DECISIONS, authz_http=AUTHZ_DECISIONS)
        bounds = None
        for door, count in sorted(expected_counts.items()):
            with self.subTest(door):
                buckets = [(float(l["le"]), v) for l, v in
                           self.metrics.samples("aegis_decision_duration_seconds_bucket")
                           if l["front_door"] == door]
                self.assertTrue(buckets)
                les = [le for le, _ in buckets]
                self.assertEqual(les, sorted(set(les)), "le not strictly increasing")
                self.assertEqual(les[-1], math.inf, "no +Inf bucket")
                if bounds is None:
                    bounds = les
                self.assertEqual(les, bounds, "front doors with different buckets")
                values = [v for _, v in buckets]
                self.assertEqual(values, sorted(values), "buckets not cumulative")
                self.assertTrue(all(v == int(v) and v >= 0 for v in values))
                c = self.metrics.value("aegis_decision_duration_seconds_count", front_door=door)
                self.assertEqual(c, count)
                self.assertEqual(values[-1], c, "+Inf bucket != _count")
                s = self.metrics.value("aegis_decision_duration_seconds_sum", front_door=door)
                self.assertTrue(math.isfinite(s) and s >= 0, s)
                if count == 0:
                    self.assertEqual(s, 0)
        self.assertGreater(len(bounds), 2)

    # -- limits

    def test_spend_and_remaining_budget_in_exact_dollars(self):
        key = {"scope": "agent", "tenant": "", "agent": "thrifty", "tool": "", "rule": ""}
        for name, dollars in (("aegis_budget_spent_usd", 4), ("aegis_budget_limit_usd", 5),
                              ("aegis_budget_remaining_usd", 1)):
            with self.subTest(name):
                self.assertEqual(self.metrics.families[name].type, "gauge")
                series = self.metrics.samples(name)
                self.assertEqual(len(series), 1, series)  # the one budget of the bundle
                labels, value = series[0]
                self.assertEqual({k: labels[k] for k in key}, key)
                self.assertEqual(set(labels), set(key) | {"window"})
                self.assertEqual(labels["window"], "31622400s")  # 366d
                self.assertEqual(value, dollars)

    # -- approvals

    def test_pending_approvals(self):
        self.assertEqual(self.metrics.families["aegis_approvals_pending"].type, "gauge")
        self.assertEqual(self.metrics.value("aegis_approvals_pending"), 1)

    # -- policy version and reloads

    def test_policy_info_names_the_version_readyz_reports(self):
        self.assertEqual(self.readyz_version, self.aegis.ready_version)
        self.assertEqual(self.metrics.samples("aegis_policy_info"),
                         [({"name": "metrics-test", "version": self.readyz_version}, 1)])

    def test_reloads_count_once_each_and_info_follows(self):
        # Changes the active version: reads its own scrapes, never the class's snapshot.
        def reloads(e):
            return (e.value("aegis_policy_reloads_total", result="ok"),
                    e.value("aegis_policy_reloads_total", result="error"))

        before, _ = scrape(self.aegis)
        ok, failed = reloads(before)
        old_version = before.samples("aegis_policy_info")[0][0]["version"]

        # SIGHUP with a changed bundle: one successful reload, a new version.
        write_bundle(self.bundle, description="second")
        self.aegis.signal(signal.SIGHUP)
        e = poll_metrics(self.aegis, lambda e: reloads(e) != (ok, failed))
        self.assertEqual(reloads(e), (ok + 1, failed))
        _, _, body = self.aegis.request("GET", "/readyz")
        new_version = json.loads(body)["policy_version"]
        self.assertNotEqual(new_version, old_version)
        e, _ = scrape(self.aegis)
        self.assertEqual(reloads(e), (ok + 1, failed))
        self.assertEqual(e.samples("aegis_policy_info"),
                         [({"name": "metrics-test", "version": new_version}, 1)])

        # A bundle that does not compile: one failed reload; the version in use stays.
        with open(os.path.join(self.bundle, "policy.yaml"), "a", encoding="utf-8") as f:
            f.write("  - {id: broken, efect: deny}\n")
        status, _, _ = self.aegis.request("POST", "/v1/policy/reload")
        self.assertEqual(status, 422)
        e, _ = scrape(self.aegis)
        self.assertEqual(reloads(e), (ok + 1, failed + 1))
        self.assertEqual(e.samples("aegis_policy_info"),
                         [({"name": "metrics-test", "version": new_version}, 1)])
        # Reloads made no decisions.
        self.assertEqual(sum(v for _, v in e.samples("aegis_decisions_total")), DECISIONS)

    # -- the audit writer (audit::Writer::AppendMetrics, through a Metrics collector)

    def test_audit_writer_series(self):
        for name, type_ in (("aegis_audit_records_total", "counter"),
                            ("aegis_audit_queue_depth", "gauge"),
                            ("aegis_audit_writer_up", "gauge")):
            self.assertIn(name, sorted(self.metrics.families))
            self.assertEqual(self.metrics.families[name].type, type_, name)
        records = {l["result"]: v for l, v in self.metrics.samples("aegis_audit_records_total")}
        self.assertEqual(set(records), {"appended", "durable", "dropped", "refused"})
        self.assertEqual(records["appended"], DECISIONS)  # every decision, refused calls none
        self.assertEqual(records["dropped"], 0)
        self.assertEqual(records["refused"], 0)
        self.assertEqual(self.metrics.value("aegis_audit_writer_up"), 1)
        depth = self.metrics.value("aegis_audit_queue_depth")
        self.assertTrue(0 <= depth <= DECISIONS, depth)
        # The group commit makes them durable within its interval (10 ms); poll, not sleep.
        e = poll_metrics(self.aegis, lambda e: e.value("aegis_audit_records_total",
                                                       result="durable") >= DECISIONS)
        self.assertEqual(e.value("aegis_audit_records_total", result="durable"), DECISIONS)
        self.assertEqual(e.value("aegis_audit_records_total", result="appended"), DECISIONS)
        self.assertEqual(e.value("aegis_audit_queue_depth"), 0)


class MadeUpTenantTest(unittest.TestCase):
    """A tenant is a name the caller sends; the bundle declares only some (tenants/acme.yaml).
    metrics.h promises labels "never carry what a caller made up", so a call for a bundle-wide
    agent under a tenant nobody declared must not add a series labelled with that tenant: each
    such name would be a new series, kept for the life of the process."""

    @classmethod
    def setUpClass(cls):
        cls.tmp, _, cls.aegis = start_server("aegis-metrics-tenant-")

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.aegis.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, cls.aegis.output()

    # A bundle-wide agent is found for any tenant, so knowing the agent is not enough: the
    # Decider must also know the tenant before using its name.
    def test_an_undeclared_tenant_is_not_a_label(self):
        status, decision, _ = decide(self.aegis, "research-agent", "search", "query",
                                     tenant=MADE_UP_TENANT)
        self.assertEqual((status, decision), (200, "allow"))
        e, text = scrape(self.aegis)
        lines = lines_naming(text, MADE_UP_TENANT)
        if lines:
            self.fail("labelled with %s:\n%s" % (MADE_UP_TENANT, "\n".join(lines)))
        tenants = {l["tenant"] for l, _ in e.samples("aegis_decisions_total")}
        self.assertTrue(tenants <= {"", "acme", "_unknown", "_other"}, tenants)


if __name__ == "__main__":
    AEGIS = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
