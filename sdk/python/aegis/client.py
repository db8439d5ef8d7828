"""`Client`: asks Aegis for decisions, waits for approvals, settles usage, and keeps to its
fail mode when Aegis cannot answer.

Thread-safe; one client is meant to be shared by a whole process (each thread gets its own
keep-alive connection). The `*_async` methods run the blocking HTTP in the event loop's default
executor, so they never block the loop.
"""
import asyncio
import collections
import functools
import json
import logging
import os
import threading
import time
import uuid

from . import decision as outcomes
from .decision import Decision
from .digest import call_digest
from .errors import (AegisError, AegisUnavailable, ApprovalDenied, ApprovalRequired,
                     ApprovalTimeout, AuthenticationError, BudgetExceeded, ConfigurationError,
                     InvalidCall, PolicyDenied, ProtocolError, RateLimited)
from .params import encode_value
from .tokens import IssuerTokenProvider, TokenSource, _error_of, _json_object
from .transport import USER_AGENT, Transport

log = logging.getLogger("aegis")

FAIL_CLOSED = "fail_closed"
FAIL_OPEN = "fail_open"
DEFAULT_URL = "http://127.0.0.1:8181"
MAX_REPORT = 1000  # calls per POST /v1/fail-open
FAIL_OPEN_ID_PREFIX = "fail-open-"  # the decision_id of a call run without a decision

_DECISIONS = ("allow", "deny", "sanitize", "approval_needed")
_COUNTERS = ("decisions", "allow", "sanitize", "deny", "approval_needed", "rate_limited",
             "budget_exceeded", "unavailable", "fail_open_allowed", "fail_open_refused",
             "fail_open_reported", "fail_open_report_refused", "fail_open_dropped",
             "token_refreshes", "reconnects", "usage_reported", "usage_errors")


def _dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


class Client:
    """A connection to one Aegis gateway, for one agent.

    url            Aegis's HTTP listener (default http://127.0.0.1:8181).
    agent_token    the agent's token (x-aegis-token); or
    token_provider a callable returning a fresh token, called before the current one expires
                   (`aegis.IssuerTokenProvider` mints them with an issuer credential).
    agent, tenant  named in every call; with a token they may be left out (the token names them).
    timeout        seconds for connecting and for each answer (default 2).
    fail_mode      "fail_closed" (default): no answer raises AegisUnavailable.
                   "fail_open": a (tool, action) this agent was recently allowed unconditionally
                   runs anyway and is reported to Aegis once it answers again; others raise.
    fail_open_ttl  seconds an unconditional allow keeps its pair on the fail-open allowlist.
    token_refresh_margin   seconds before expiry to refresh (at most half the token's life).
    approval_poll_interval seconds between polls of an approval.
    max_fail_open_queue    fail-open calls kept for reporting; beyond that the oldest are
                   dropped (and counted as fail_open_dropped).
    """

    def __init__(self, url=None, agent_token=None, token_provider=None, agent=None, tenant=None,
                 timeout=2.0, fail_mode=FAIL_CLOSED, fail_open_ttl=300.0,
                 token_refresh_margin=30.0, approval_poll_interval=1.0,
                 max_fail_open_queue=10000):
        if fail_mode not in (FAIL_CLOSED, FAIL_OPEN):
            raise ConfigurationError("aegis: fail_mode is fail_closed or fail_open, got %r"
                                     % (fail_mode,))
        if agent_token and token_provider:
            raise ConfigurationError("aegis: give agent_token or token_provider, not both")
        for name, value in (("timeout", timeout), ("fail_open_ttl", fail_open_ttl),
                            ("approval_poll_interval", approval_poll_interval)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigurationError("aegis: %s must be a positive number of seconds, got %r"
                                         % (name, value))
        self.url = url or DEFAULT_URL
        self.agent = agent
        self.tenant = tenant
        self.timeout = float(timeout)
        self.fail_mode = fail_mode
        self.fail_open_ttl = float(fail_open_ttl)
        self.approval_poll_interval = float(approval_poll_interval)
        self.max_fail_open_queue = int(max_fail_open_queue)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._transport = Transport(self.url, self.timeout, self._count)
        self._tokens = TokenSource(agent_token, token_provider, token_refresh_margin,
                                   count=self._count)
        # Fail-open state: when each (agent, tenant, tool, action) was last allowed
        # unconditionally / last refused by the policy; calls run while Aegis was away.
        self._allowed_at = {}
        self._refused_at = {}
        self._queue = collections.deque()
        self._queued_by_id = {}
        self._flushing = threading.Lock()
        self._clock = time.monotonic

    @classmethod
    def from_env(cls, **overrides):
        """A client configured from the environment; keyword arguments win over it.

        AEGIS_URL, AEGIS_AGENT_TOKEN, AEGIS_AGENT, AEGIS_TENANT, AEGIS_TIMEOUT,
        AEGIS_FAIL_MODE, AEGIS_FAIL_OPEN_TTL, AEGIS_TOKEN_REFRESH_MARGIN,
        AEGIS_APPROVAL_POLL_INTERVAL; and AEGIS_ISSUER_CREDENTIAL (with AEGIS_AGENT,
        AEGIS_TENANT and AEGIS_TOKEN_TTL) for tokens minted by an IssuerTokenProvider."""
        env = os.environ
        kw = {}
        for key, var, conv in (("url", "AEGIS_URL", str), ("agent_token", "AEGIS_AGENT_TOKEN", str),
                               ("agent", "AEGIS_AGENT", str), ("tenant", "AEGIS_TENANT", str),
                               ("timeout", "AEGIS_TIMEOUT", float),
                               ("fail_mode", "AEGIS_FAIL_MODE", str),
                               ("fail_open_ttl", "AEGIS_FAIL_OPEN_TTL", float),
                               ("token_refresh_margin", "AEGIS_TOKEN_REFRESH_MARGIN", float),
                               ("approval_poll_interval", "AEGIS_APPROVAL_POLL_INTERVAL", float)):
            if env.get(var):
                try:
                    kw[key] = conv(env[var])
                except ValueError:
                    raise ConfigurationError("aegis: %s=%r is not a number" % (var, env[var])
                                             ) from None
        credential = env.get("AEGIS_ISSUER_CREDENTIAL")
        if credential and "agent_token" not in kw and "token_provider" not in overrides \
                and "agent_token" not in overrides:
            agent = overrides.get("agent", kw.get("agent"))
            if not agent:
                raise ConfigurationError("aegis: AEGIS_ISSUER_CREDENTIAL needs AEGIS_AGENT")
            ttl = env.get("AEGIS_TOKEN_TTL")
            if ttl and not ttl.isdigit():
                raise ConfigurationError("aegis: AEGIS_TOKEN_TTL=%r is not a number of seconds"
                                         % ttl)
            kw["token_provider"] = IssuerTokenProvider(
                overrides.get("url", kw.get("url", DEFAULT_URL)), credential, agent,
                overrides.get("tenant", kw.get("tenant")), int(ttl) if ttl else None)
        if "token_provider" in overrides:
            kw.pop("agent_token", None)
        if "agent_token" in overrides:
            kw.pop("token_provider", None)
        kw.update(overrides)
        return cls(**kw)

    # ---- counters --------------------------------------------------------------------------

    def _count(self, name, n=1):
        with self._lock:
            self._counts[name] += n

    def stats(self):
        """Counters since the client was made: decisions by outcome, `unavailable` (no answer),
        `fail_open_allowed` (calls run without a decision), `fail_open_refused` (calls refused
        for want of one), `fail_open_pending` (waiting to be reported), `fail_open_reported`,
        `fail_open_report_refused` (reported calls the policy now refuses),
        `fail_open_dropped`, `token_refreshes`, `reconnects`, `usage_reported`,
        `usage_errors`."""
        with self._lock:
            out = dict(self._counts)
            out["fail_open_pending"] = len(self._queue)
        return out

    # ---- requests --------------------------------------------------------------------------

    def _headers(self, token, override_token=None):
        h = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if token:
            h["x-aegis-token"] = token
        if override_token:
            h["X-Aegis-Override"] = override_token
        return h

    def _request(self, method, path, body=None, override_token=None):
        """One request with the agent token; a 401 with a token provider fetches a new token
        and tries once more. Returns (status, headers, bytes)."""
        for attempt in (0, 1):
            token = self._tokens.get()
            status, headers, data = self._transport.request(
                method, path, body, self._headers(token, override_token))
            if status == 401 and attempt == 0 and token and self._tokens.invalidate(token):
                continue
            break
        if status == 401:
            code, message = _error_of(_json_object(data), data)
            raise AuthenticationError("aegis: %s %s: 401 %s: %s" % (method, path, code, message),
                                      401)
        return status, headers, data

    def _call_body(self, tool, action, params, cost, agent, tenant):
        call = {}
        agent = agent or self.agent
        tenant = tenant if tenant is not None else self.tenant
        if agent:
            call["agent"] = agent
        elif self._tokens.provider is None and not self._tokens.get():
            raise ConfigurationError("aegis: no agent: pass agent=, configure one, or give an "
                                     "agent token")
        if tenant:
            call["tenant"] = tenant
        call["tool"] = tool
        call["action"] = action
        call["params"] = params
        if cost is not None:
            if isinstance(cost, bool) or not isinstance(cost, (int, float)) or \
                    not 0 <= cost <= 1e9:
                raise ConfigurationError("aegis: cost must be 0 ... 1e9 dollars, "
                                         "got %r" % (cost,))
            call["cost_usd"] = cost
        return call

    def decide(self, tool, action, params=None, cost=None, agent=None, tenant=None,
               override_token=None, _encoded=False):
        """Asks Aegis about one call; returns its Decision whatever it is (allow, sanitize,
        deny, approval_needed, rate limited, over budget): read `decision.outcome`.

        `params` must be JSON (ParamsError otherwise); `cost` is the estimated cost in dollars,
        sent as the call's cost_usd. Raises AuthenticationError, InvalidCall, and, when no
        decision can be had, AegisUnavailable — unless the fail mode is fail_open and the
        call's (tool, action) is on the allowlist, in which case the returned Decision has
        `fail_open` True and the call is queued for reporting."""
        if not _encoded:
            params = encode_value({} if params is None else params, "params")
        call = self._call_body(tool, action, params, cost, agent, tenant)
        return self._decide_call(call, override_token)

    def _decide_call(self, call, override_token=None):
        key = (call.get("agent"), call.get("tenant"), call["tool"], call["action"])
        try:
            status, headers, data = self._request("POST", "/v1/decide", _dumps(call),
                                                  override_token)
            d = self._read_decision(status, headers, data)
        except AegisUnavailable as e:
            self._count("unavailable")
            return self._fail(call, key, e)
        self._learn(key, d)
        self._count("decisions")
        self._count(d.outcome)
        if self._queue:
            self._flush_quietly()
        return d

    def _read_decision(self, status, headers, data):
        if status in (200, 402, 403, 429, 503):
            raw = _json_object(data)
            if raw is not None and "decision" in raw:
                if not _is_decision(raw):
                    raise ProtocolError("aegis: /v1/decide answered %d with a malformed "
                                        "decision: %s" % (status, data[:200]), status)
                if status == 503:
                    d = Decision(raw, status)
                    raise AegisUnavailable("aegis: Aegis could not decide (503 %s): %s" % (
                        d.reason_code, d.message), 503, d)
                return Decision(raw, status, headers.get("retry-after"),
                                headers.get("x-aegis-approval-id"))
            if status == 503:
                code, message = _error_of(raw, data)
                raise AegisUnavailable("aegis: /v1/decide: 503 %s: %s" % (code, message), 503)
            raise ProtocolError("aegis: /v1/decide answered %d without a decision: %r"
                                % (status, data[:200]), status)
        code, message = _error_of(_json_object(data), data)
        if status in (400, 413, 415, 431):
            raise InvalidCall("aegis: /v1/decide refused the call: %d %s: %s"
                              % (status, code, message), status, code)
        if status >= 500:
            raise AegisUnavailable("aegis: /v1/decide: %d %s: %s" % (status, code, message),
                                   status)
        raise ProtocolError("aegis: /v1/decide: unexpected answer %d %s: %s"
                            % (status, code, message), status)

    # ---- fail modes ------------------------------------------------------------------------

    def _learn(self, key, d):
        """Keeps the fail-open allowlist: a pair is on it after an allow decided by a rule
        (reason `rule` first, no condition errors, enforced) and off it for fail_open_ttl after
        any refusal by the policy (deny, approval_needed, sanitize). Limits (rate, budget) do
        not count either way."""
        if self.fail_mode != FAIL_OPEN:
            return
        now = self._clock()
        if (d.decision == "allow" and d.effective_decision == "allow" and d.enforced
                and d.reason_code == "rule"
                and not any(r.get("code") == "condition_error" for r in d.reasons)):
            with self._lock:
                self._allowed_at[key] = now
        elif d.decision in ("deny", "approval_needed", "sanitize") and d.outcome not in (
                outcomes.RATE_LIMITED, outcomes.BUDGET_EXCEEDED):
            with self._lock:
                self._refused_at[key] = now

    def fail_open_allowlist(self):
        """The (agent, tenant, tool, action) pairs a fail_open client would run now without a
        decision (agent and tenant as the calls named them; None: from the token)."""
        now = self._clock()
        with self._lock:
            return sorted(k for k in self._allowed_at if self._eligible(k, now))

    def _eligible(self, key, now):
        allowed = self._allowed_at.get(key)
        if allowed is None or now - allowed > self.fail_open_ttl:
            return False
        refused = self._refused_at.get(key)
        return refused is None or now - refused > self.fail_open_ttl

    def _fail(self, call, key, error):
        if self.fail_mode != FAIL_OPEN:
            raise error
        now = self._clock()
        with self._lock:
            eligible = self._eligible(key, now)
            if eligible:
                local_id = FAIL_OPEN_ID_PREFIX + str(uuid.uuid4())
                entry = dict(call)
                self._queue.append((local_id, entry))
                self._queued_by_id[local_id] = entry
                while len(self._queue) > self.max_fail_open_queue:
                    old_id, _ = self._queue.popleft()
                    self._queued_by_id.pop(old_id, None)
                    self._counts["fail_open_dropped"] += 1
                self._counts["fail_open_allowed"] += 1
            else:
                self._counts["fail_open_refused"] += 1
        if not eligible:
            raise error
        log.warning("aegis: fail_open: running %s/%s without a decision (%s)", call["tool"],
                    call["action"], error)
        raw = {"decision_id": local_id, "decision": "allow", "effective_decision": "allow",
               "enforced": False, "mode": "fail_open",
               "reasons": [{"code": "fail_open", "detail": str(error)}],
               "tenant": call.get("tenant", ""), "agent": call.get("agent"),
               "tool": call["tool"], "action": call["action"],
               "cost_usd": call.get("cost_usd", 0)}
        return Decision(raw, 0, fail_open=True)

    def flush(self):
        """Reports every queued fail-open call to Aegis (POST /v1/fail-open) now. Returns how
        many were reported. Raises AegisUnavailable (the calls stay queued) when Aegis cannot
        take them. Also done automatically after the next answer from Aegis."""
        reported = 0
        with self._flushing:
            while True:
                with self._lock:
                    batch = list(self._queue)[:MAX_REPORT]
                if not batch:
                    return reported
                status, _, data = self._request(
                    "POST", "/v1/fail-open", _dumps({"calls": [entry for _, entry in batch]}))
                answer = _json_object(data)
                decisions = answer.get("decisions") if answer else None
                if status != 200 or not isinstance(decisions, list) or \
                        len(decisions) != len(batch):
                    code, message = _error_of(answer, data)
                    if status == 200 or 400 <= status < 500:
                        # Aegis refuses the report itself: keeping it would block every later
                        # one. Drop it, loudly.
                        with self._lock:
                            self._forget(batch)
                            self._counts["fail_open_dropped"] += len(batch)
                        log.error("aegis: fail_open report of %d calls refused (%d %s: %s); "
                                  "dropped", len(batch), status, code, message)
                        raise ProtocolError("aegis: POST /v1/fail-open: %d %s: %s" % (
                            status, code, message), status)
                    raise AegisUnavailable("aegis: POST /v1/fail-open: %d %s: %s" % (
                        status, code, message), status)
                refused = 0
                for (_, entry), raw in zip(batch, decisions):
                    d = Decision(raw) if isinstance(raw, dict) else None
                    if d is None or not d.allowed:
                        refused += 1
                        log.warning("aegis: fail_open call %s/%s reported; the policy now says "
                                    "%s (decision %s)", entry["tool"], entry["action"],
                                    d.outcome if d else "?", d.decision_id if d else "?")
                with self._lock:
                    self._forget(batch)
                    self._counts["fail_open_reported"] += len(batch)
                    self._counts["fail_open_report_refused"] += refused
                reported += len(batch)

    def _forget(self, batch):
        """Takes `batch` off the queue (under self._lock). Not simply the leftmost entries: a
        full queue may have dropped some of them meanwhile."""
        ids = {local_id for local_id, _ in batch}
        self._queue = collections.deque(x for x in self._queue if x[0] not in ids)
        for local_id in ids:
            self._queued_by_id.pop(local_id, None)

    def _flush_quietly(self):
        if not self._flushing.acquire(blocking=False):
            return  # another thread is reporting
        self._flushing.release()
        try:
            self.flush()
        except AegisError as e:
            log.warning("aegis: reporting fail_open calls failed, will retry: %s", e)

    # ---- outcomes ----------------------------------------------------------------------------

    def enforce(self, tool, action, params=None, cost=None, agent=None, tenant=None,
                wait_for_approval=None, _encoded=False):
        """Like decide(), but returns only a Decision that lets the call run (allow, sanitize,
        shadow mode, fail_open) and raises for the others: PolicyDenied, RateLimited,
        BudgetExceeded, ApprovalRequired. With `wait_for_approval` (seconds), an
        approval_needed call waits for its approval, then is decided again with the override
        token: ApprovalDenied, ApprovalTimeout, or the new decision's error if it is refused."""
        if not _encoded:
            params = encode_value({} if params is None else params, "params")
        call = self._call_body(tool, action, params, cost, agent, tenant)
        d = self._decide_call(call)
        if d.outcome == outcomes.APPROVAL_NEEDED and wait_for_approval and d.approval_id:
            token = self.wait_for_approval(d.approval_id, wait_for_approval, decision=d,
                                           params=params)
            d = self._decide_call(call, token)
        return raise_for_outcome(d)

    def wait_for_approval(self, approval_id, timeout=None, poll_interval=None, decision=None,
                          params=None):
        """Polls GET /v1/approvals/ID with the agent token until the approval is decided or
        `timeout` seconds (None: until it expires) have passed. Returns the override token.

        Raises ApprovalDenied (an approver denied it), ApprovalTimeout (`state` expired, or
        pending when the wait ran out), InvalidCall (unknown approval, or another agent's).
        Aegis being unreachable is retried until the deadline, then raised. With `decision` and
        `params`, the approval's call digest is checked against this call's."""
        wait = _ApprovalWait(self, approval_id, timeout, poll_interval, decision, params)
        while True:
            try:
                approval, error = self._get_approval(approval_id), None
            except AegisUnavailable as e:
                approval, error = None, e
            token, pause = wait.after_poll(approval, error)
            if token is not None:
                return token
            time.sleep(pause)

    def _get_approval(self, approval_id):
        status, _, data = self._request("GET", "/v1/approvals/" + approval_id)
        answer = _json_object(data)
        if status == 200 and answer is not None and isinstance(answer.get("state"), str):
            return answer
        code, message = _error_of(answer, data)
        if status in (400, 404):
            raise InvalidCall("aegis: approval %s: %d %s: %s" % (approval_id, status, code,
                                                                  message), status, code)
        if status >= 500:
            raise AegisUnavailable("aegis: approval %s: %d %s: %s" % (
                approval_id, status, code, message), status)
        raise ProtocolError("aegis: approval %s: unexpected answer %d: %r" % (
            approval_id, status, data[:200]), status)

    # ---- usage -------------------------------------------------------------------------------

    def report_usage(self, decision, cost_usd):
        """Settles a call's actual cost (POST /v1/usage): `decision` is the Decision (or its
        decision_id) of the call, `cost_usd` what it really cost. Replaces the estimate reserved
        in the agent's budgets. Returns True when settled, False when there was nothing to
        settle (the decision reserved nothing, or it was a fail-open call: then the cost is
        reported with the call). Raises InvalidCall for an unknown, expired or already settled
        decision, AegisUnavailable when Aegis cannot be reached."""
        if isinstance(cost_usd, bool) or not isinstance(cost_usd, (int, float)) \
                or not cost_usd >= 0 or cost_usd > 1e9:
            raise ConfigurationError("aegis: cost_usd must be 0 ... 1e9 dollars, got %r"
                                     % (cost_usd,))
        if isinstance(decision, Decision):
            decision_id = decision.decision_id
            if not decision.fail_open and not decision.reserved:
                return False
        else:
            decision_id = str(decision)
        if decision_id.startswith(FAIL_OPEN_ID_PREFIX):
            with self._lock:
                entry = self._queued_by_id.get(decision_id)
                if entry is not None:
                    entry["cost_usd"] = cost_usd
            return False
        body = {"decision_id": decision_id, "cost_usd": cost_usd}
        status, _, data = self._request("POST", "/v1/usage", _dumps(body))
        if status == 200:
            self._count("usage_reported")
            return True
        code, message = _error_of(_json_object(data), data)
        if status in (400, 404, 409):
            raise InvalidCall("aegis: /v1/usage: %d %s: %s" % (status, code, message), status,
                              code)
        if status >= 500:
            raise AegisUnavailable("aegis: /v1/usage: %d %s: %s" % (status, code, message),
                                   status)
        raise ProtocolError("aegis: /v1/usage: unexpected answer %d: %s" % (status, message),
                            status)

    def _report_actual(self, decision, actual_cost, result):
        """The decorator's actual-cost hook: errors are logged and counted, never raised (the
        call has already happened)."""
        try:
            cost = actual_cost(result)
            if cost is not None:
                self.report_usage(decision, cost)
        except Exception as e:  # noqa: BLE001 - the call ran; its result must not be lost
            self._count("usage_errors")
            log.warning("aegis: reporting the actual cost of decision %s failed: %s",
                        decision.decision_id, e)

    # ---- async -------------------------------------------------------------------------------

    async def _in_executor(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def decide_async(self, *args, **kwargs):
        """decide() without blocking the event loop."""
        return await self._in_executor(self.decide, *args, **kwargs)

    async def enforce_async(self, tool, action, params=None, cost=None, agent=None,
                            tenant=None, wait_for_approval=None, _encoded=False):
        """enforce() without blocking the event loop (approval polls sleep with asyncio)."""
        if not _encoded:
            params = encode_value({} if params is None else params, "params")
        call = self._call_body(tool, action, params, cost, agent, tenant)
        d = await self._in_executor(self._decide_call, call)
        if d.outcome == outcomes.APPROVAL_NEEDED and wait_for_approval and d.approval_id:
            token = await self.wait_for_approval_async(d.approval_id, wait_for_approval,
                                                       decision=d, params=params)
            d = await self._in_executor(self._decide_call, call, token)
        return raise_for_outcome(d)

    async def wait_for_approval_async(self, approval_id, timeout=None, poll_interval=None,
                                      decision=None, params=None):
        """wait_for_approval() with asyncio.sleep between polls."""
        wait = _ApprovalWait(self, approval_id, timeout, poll_interval, decision, params)
        while True:
            try:
                approval, error = await self._in_executor(self._get_approval, approval_id), None
            except AegisUnavailable as e:
                approval, error = None, e
            token, pause = wait.after_poll(approval, error)
            if token is not None:
                return token
            await asyncio.sleep(pause)

    async def report_usage_async(self, decision, cost_usd):
        return await self._in_executor(self.report_usage, decision, cost_usd)

    async def flush_async(self):
        return await self._in_executor(self.flush)

    def close(self):
        """Closes the client's connections (they reopen if it is used again)."""
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _is_decision(raw):
    return (raw.get("decision") in _DECISIONS and isinstance(raw.get("decision_id"), str)
            and raw.get("effective_decision", raw["decision"]) in _DECISIONS
            and isinstance(raw.get("reasons", []), list)
            and all(isinstance(r, dict) for r in raw.get("reasons", []))
            and (raw.get("decision") != "sanitize"
                 or isinstance(raw.get("sanitized_params", {}), dict)))


class _ApprovalWait:
    """What wait_for_approval and its async form share: after each poll, the override token or
    how long to pause before the next one; the timeout's errors."""

    def __init__(self, client, approval_id, timeout, poll_interval, decision, params):
        self._clock = client._clock
        self.approval_id, self.timeout = approval_id, timeout
        self.decision, self.params = decision, params
        self.interval = poll_interval or client.approval_poll_interval
        self.deadline = None if timeout is None else self._clock() + timeout

    def after_poll(self, approval, error):
        """(token, None) when approved; (None, seconds to pause) while pending or while Aegis is
        unreachable (`error`). Raises what _approval_step raises, and once the deadline passed,
        `error` or ApprovalTimeout."""
        if error is None:
            token = _approval_step(self.approval_id, approval, self.decision, self.params)
            if token is not None:
                return token, None
        remaining = None if self.deadline is None else self.deadline - self._clock()
        if remaining is not None and remaining <= 0:
            if error is not None:
                raise error
            raise ApprovalTimeout("aegis: approval %s still pending after %gs" % (
                self.approval_id, self.timeout), self.decision, self.approval_id, "pending",
                approval)
        return None, self.interval if remaining is None else min(self.interval, remaining)


def _approval_step(approval_id, approval, decision, params):
    """The override token of an approved approval, None while pending; raises otherwise."""
    state = approval.get("state")
    if state == "pending":
        return None
    if state == "approved":
        token = approval.get("override_token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("aegis: approval %s is approved but came without an override "
                                "token (poll with the agent's token; the gateway needs "
                                "identity configured)" % approval_id)
        if decision is not None and params is not None and approval.get("call_digest"):
            ours = call_digest(decision.tenant, decision.agent, decision.tool, decision.action,
                               params)
            if ours != approval["call_digest"]:
                raise ProtocolError("aegis: approval %s is for call digest %s, this call's is %s"
                                    % (approval_id, approval["call_digest"], ours))
        return token
    if state == "denied":
        who = ", ".join("%s%s" % (v.get("approver"), ": " + v["comment"] if v.get("comment")
                                  else "") for v in approval.get("votes", [])
                        if v.get("verdict") == "deny")
        raise ApprovalDenied("aegis: approval %s was denied%s" % (
            approval_id, " by " + who if who else ""), decision, approval)
    if state == "expired":
        raise ApprovalTimeout("aegis: approval %s expired undecided" % approval_id, decision,
                              approval_id, "expired", approval)
    raise ProtocolError("aegis: approval %s has an unknown state %r" % (approval_id, state))


def _describe(d):
    rule = d.rule
    msg = d.message
    return "%s/%s%s%s (decision %s)" % (d.tool, d.action, " by rule " + rule if rule else
                                        " (%s)" % d.reason_code, ": " + msg if msg else "",
                                        d.decision_id)


def raise_for_outcome(d):
    """Returns `d` when its outcome lets the call run; raises the matching DecisionError."""
    outcome = d.outcome
    if outcome in (outcomes.ALLOW, outcomes.SANITIZE):
        return d
    if outcome == outcomes.RATE_LIMITED:
        raise RateLimited("aegis: rate limited, retry after %ss: %s" % (
            d.retry_after, _describe(d)), d, d.retry_after)
    if outcome == outcomes.BUDGET_EXCEEDED:
        raise BudgetExceeded("aegis: over budget: %s" % _describe(d), d)
    if outcome == outcomes.APPROVAL_NEEDED:
        last = d.reasons[-1] if d.reasons else {}
        extra = ""
        if last.get("code") == "override_invalid":
            extra = "; override token refused: %s" % last.get("detail")
        raise ApprovalRequired("aegis: approval needed (approval %s): %s%s" % (
            d.approval_id, _describe(d), extra), d, d.approval_id)
    raise PolicyDenied("aegis: denied: %s" % _describe(d), d)
