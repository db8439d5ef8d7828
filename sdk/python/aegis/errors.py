"""The errors the SDK raises. Every one is an `AegisError`.

Two families matter to callers:

- `DecisionError` and its subclasses carry the `Decision` Aegis made: the policy (or a limit, or
  a human) refused the call. The function did not run.
- `AegisUnavailable` means no decision could be had: Aegis was unreachable, too slow, answered
  5xx, or answered something that is not its protocol (`ProtocolError`). Only these are subject
  to the client's fail mode.

The rest are mistakes to fix rather than retry: `ConfigurationError`, `ParamsError` (an argument
that cannot be sent as JSON), `InvalidCall` (Aegis refused the call as malformed) and
`AuthenticationError` (the agent token or issuer credential was refused).
"""


class AegisError(Exception):
    """Base class of every error this SDK raises."""


class ConfigurationError(AegisError):
    """The client is configured wrongly (a bad URL, fail mode, or no agent)."""


class ParamsError(AegisError, TypeError):
    """An argument cannot be encoded as JSON params. Raised before anything is sent.

    `path` names the offending value (`params.when`, `params.items[2]`)."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class AuthenticationError(AegisError):
    """Aegis refused the agent token (401) or the issuer credential (401/403)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class InvalidCall(AegisError):
    """Aegis refused the request as malformed (400, 404, 413, 415): `status`, `code` and the
    server's `message`. Retrying the same request gets the same answer."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.status = status
        self.code = code


class AegisUnavailable(AegisError):
    """No decision: Aegis was unreachable, timed out, answered 5xx, or could not decide
    (503 `limits_unavailable`, `audit_unavailable`, `not_ready`). `status` is the HTTP status
    when there was an answer, else None; `decision` the decision JSON when the 503 carried one."""

    def __init__(self, message, status=None, decision=None):
        super().__init__(message)
        self.status = status
        self.decision = decision


class ProtocolError(AegisUnavailable):
    """Aegis (or something in its place) answered with something that is not the Aegis
    protocol: not JSON, not a decision, an unexpected status. Treated as unavailability."""


class DecisionError(AegisError):
    """Aegis decided and the call may not run. `decision` is the `Decision`."""

    def __init__(self, message, decision):
        super().__init__(message)
        self.decision = decision

    @property
    def decision_id(self):
        return self.decision.decision_id if self.decision is not None else None

    @property
    def reasons(self):
        return self.decision.reasons if self.decision is not None else []

    @property
    def rule(self):
        return self.decision.rule if self.decision is not None else None


class PolicyDenied(DecisionError):
    """The call was denied: by a rule, a scope check, or (subclasses) a limit."""


class RateLimited(PolicyDenied):
    """The agent's rate limit is used up (HTTP 429). `retry_after` is in seconds (float)."""

    def __init__(self, message, decision, retry_after):
        super().__init__(message, decision)
        self.retry_after = retry_after


class BudgetExceeded(PolicyDenied):
    """The call's cost does not fit a budget (HTTP 402). `budget` is
    `{"remaining_usd", "resets_at"}` of the budget that refused."""

    def __init__(self, message, decision):
        super().__init__(message, decision)
        self.budget = decision.budget if decision is not None else None


class ApprovalRequired(DecisionError):
    """The call needs a human approval. `approval_id` names it; poll it with
    `Client.wait_for_approval`, or decorate with `wait_for_approval=SECONDS`."""

    def __init__(self, message, decision, approval_id):
        super().__init__(message, decision)
        self.approval_id = approval_id


class ApprovalDenied(PolicyDenied):
    """An approver denied the call. `approval` is the approval JSON (votes, comments)."""

    def __init__(self, message, decision, approval):
        super().__init__(message, decision)
        self.approval = approval
        self.approval_id = approval.get("id") if approval else None


class ApprovalTimeout(ApprovalRequired):
    """No approval in time: `state` is `expired` (the approval's own TTL ran out, which is a
    denial) or `pending` (the wait ran out first; the approval may still be approved, and
    `approval_id` can be polled again)."""

    def __init__(self, message, decision, approval_id, state, approval=None):
        super().__init__(message, decision, approval_id)
        self.state = state
        self.approval = approval
