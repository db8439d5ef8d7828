"""`Decision`: the decision JSON of docs/decide-api.md, read-only, with the HTTP details an SDK
needs (status, Retry-After, approval id) and what the SDK made of it (`outcome`)."""

# Outcomes, as the SDK acts on them (and as sdk/cases/cases.json names them).
ALLOW = "allow"
SANITIZE = "sanitize"
DENY = "deny"
APPROVAL_NEEDED = "approval_needed"
RATE_LIMITED = "rate_limited"
BUDGET_EXCEEDED = "budget_exceeded"


class Decision:
    """One decision. `raw` is the JSON object as Aegis sent it; the properties read it.

    `outcome` is what the SDK does: `allow` and `sanitize` run the call (sanitize with
    `sanitized_params`); `deny`, `approval_needed`, `rate_limited` and `budget_exceeded` do not.
    It follows `effective_decision`, so in shadow mode a denied call is `allow` (and `decision`
    says what enforcement would have done). `fail_open` is True for a decision the SDK made
    itself because Aegis was unreachable (docs in README: fail modes)."""

    __slots__ = ("raw", "status", "retry_after_header", "approval_id_header", "fail_open")

    def __init__(self, raw, status=200, retry_after_header=None, approval_id_header=None,
                 fail_open=False):
        self.raw = raw
        self.status = status
        self.retry_after_header = retry_after_header
        self.approval_id_header = approval_id_header
        self.fail_open = fail_open

    def __repr__(self):
        return "Decision(%s %s/%s, id=%s, rule=%s)" % (
            self.outcome, self.tool, self.action, self.decision_id, self.rule)

    def get(self, key, default=None):
        return self.raw.get(key, default)

    decision_id = property(lambda self: self.raw.get("decision_id"))
    decision = property(lambda self: self.raw.get("decision"))
    effective_decision = property(lambda self: self.raw.get("effective_decision",
                                                            self.raw.get("decision")))
    enforced = property(lambda self: self.raw.get("enforced", True))
    mode = property(lambda self: self.raw.get("mode"))
    reasons = property(lambda self: self.raw.get("reasons") or [])
    policy = property(lambda self: self.raw.get("policy"))
    policy_version = property(lambda self: self.raw.get("policy_version"))
    tenant = property(lambda self: self.raw.get("tenant", ""))
    agent = property(lambda self: self.raw.get("agent"))
    tool = property(lambda self: self.raw.get("tool"))
    action = property(lambda self: self.raw.get("action"))
    cost_usd = property(lambda self: self.raw.get("cost_usd"))
    sanitized_params = property(lambda self: self.raw.get("sanitized_params"))
    redacted_paths = property(lambda self: self.raw.get("redacted_paths"))
    redact = property(lambda self: self.raw.get("redact"))
    approval = property(lambda self: self.raw.get("approval"))
    budget = property(lambda self: self.raw.get("budget"))
    reserved = property(lambda self: bool(self.raw.get("reserved")))

    @property
    def reason_code(self):
        """The deciding reason's code (`rule`, `default`, `rate_limited`, ...)."""
        reasons = self.reasons
        return reasons[0].get("code") if reasons else None

    @property
    def rule(self):
        """The id of the first rule among the reasons (the deciding one), or None."""
        for r in self.reasons:
            if r.get("rule"):
                return r["rule"]
        return None

    @property
    def message(self):
        """The first reason's message or detail, for error texts."""
        for r in self.reasons:
            if r.get("message"):
                return r["message"]
        for r in self.reasons:
            if r.get("detail"):
                return r["detail"]
        return None

    @property
    def approval_id(self):
        a = self.raw.get("approval") or {}
        return a.get("id") or self.approval_id_header

    @property
    def retry_after(self):
        """Seconds until the same call would be admitted (rate_limited), else None."""
        ms = self.raw.get("retry_after_ms")
        if isinstance(ms, (int, float)) and not isinstance(ms, bool):
            return ms / 1000.0
        if self.retry_after_header is not None:
            try:
                return float(self.retry_after_header)
            except ValueError:
                return None
        return None

    @property
    def outcome(self):
        code = self.reason_code
        if self.enforced and code == "rate_limited":
            return RATE_LIMITED
        if self.enforced and code == "budget_exceeded":
            return BUDGET_EXCEEDED
        effective = self.effective_decision
        if effective in (ALLOW, SANITIZE, APPROVAL_NEEDED):
            return effective
        return DENY

    @property
    def allowed(self):
        """True when the call may run (allow or sanitize, or anything in shadow mode)."""
        return self.outcome in (ALLOW, SANITIZE)
