"""Aegis for Python: govern in-process tool calls of AI agents with a one-line decorator.

    import aegis
    aegis.configure(url="http://127.0.0.1:8181", agent_token=TOKEN)   # or from AEGIS_* env

    @aegis.policy_enforced(tool="stripe", action="create_payment")
    def create_payment(amount, currency="usd"): ...

Standard library only. See README.md for the whole API, fail modes and the error types.
"""
import threading

from .client import FAIL_CLOSED, FAIL_OPEN, Client, raise_for_outcome
from .decision import Decision
from .digest import call_digest, canonical_call, canonical_json, ecmascript_number
from .enforce import current_decision, policy_enforced
from .errors import (AegisError, AegisUnavailable, ApprovalDenied, ApprovalRequired,
                     ApprovalTimeout, AuthenticationError, BudgetExceeded, ConfigurationError,
                     DecisionError, InvalidCall, ParamsError, PolicyDenied, ProtocolError,
                     RateLimited)
from .tokens import IssuerTokenProvider, token_claims

__version__ = "0.1.0"

__all__ = [
    "AegisError", "AegisUnavailable", "ApprovalDenied", "ApprovalRequired", "ApprovalTimeout",
    "AuthenticationError", "BudgetExceeded", "Client", "ConfigurationError", "Decision",
    "DecisionError", "FAIL_CLOSED", "FAIL_OPEN", "InvalidCall", "IssuerTokenProvider",
    "ParamsError", "PolicyDenied", "ProtocolError", "RateLimited", "call_digest",
    "canonical_call", "canonical_json", "configure", "current_decision", "decide",
    "default_client", "ecmascript_number", "flush", "policy_enforced", "raise_for_outcome",
    "report_usage", "stats", "token_claims",
]

_default = None
_default_lock = threading.Lock()


def configure(**kwargs):
    """Makes the process-wide client that @policy_enforced uses: `Client.from_env(**kwargs)`,
    so AEGIS_URL, AEGIS_AGENT_TOKEN, AEGIS_AGENT, AEGIS_FAIL_MODE, ... fill in what the
    arguments leave out. Replaces (and closes) a previous one. Returns the client."""
    global _default
    client = Client.from_env(**kwargs)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return client


def default_client():
    """The client configure() made; on first use without configure(), one from the
    environment."""
    global _default
    client = _default
    if client is None:
        with _default_lock:
            if _default is None:
                _default = Client.from_env()
            client = _default
    return client


def decide(tool, action, params=None, cost=None, **kwargs):
    """default_client().decide(...)."""
    return default_client().decide(tool, action, params, cost, **kwargs)


def report_usage(decision, cost_usd):
    """Settles the actual cost of a call: default_client().report_usage(...). `decision` is
    the Decision (aegis.current_decision() inside a decorated function) or its id."""
    return default_client().report_usage(decision, cost_usd)


def flush():
    """Reports queued fail-open calls now: default_client().flush()."""
    return default_client().flush()


def stats():
    """default_client().stats(): decisions by outcome, fail-open counters, refreshes."""
    return default_client().stats()
