"""`policy_enforced`: the decorator that asks Aegis before a function runs."""
import contextvars
import functools
import inspect

from . import decision as outcomes
from .errors import ConfigurationError
from .params import ParamsBinder

_current = contextvars.ContextVar("aegis_current_decision", default=None)


def current_decision():
    """Inside a function run by @policy_enforced: the Decision that let it run (for
    aegis.report_usage, logging, the decision id). None elsewhere."""
    return _current.get()


def policy_enforced(tool, action=None, agent=None, tenant=None, cost=None, actual_cost=None,
                    wait_for_approval=None, client=None):
    """Decorates a function (or `async def` coroutine function, or method) so that every call
    is decided by Aegis first.

    tool, action   the call's tool and action (action: the function's name by default).
    agent, tenant  override the client's (with an agent token they must match the token's).
    cost           the estimated cost in dollars sent as cost_usd: a number, or a callable
                   taking the params dict and returning one (or None for the catalog's cost).
    actual_cost    a callable taking the function's return value and returning the actual cost
                   in dollars (or None): settled with POST /v1/usage after the call. Failures to
                   settle are logged and counted (`usage_errors`), never raised.
    wait_for_approval  seconds to wait for a human approval instead of raising
                   ApprovalRequired; the call then runs once approved.
    client         an aegis.Client; by default the one aegis.configure() made (or one from the
                   environment), looked up at call time.

    The function's arguments become `params` (named by the signature, defaults applied, `self`
    and `cls` left out); a sanitize decision runs it with the redacted values. Errors:
    PolicyDenied, RateLimited, BudgetExceeded, ApprovalRequired, ApprovalDenied,
    ApprovalTimeout, AegisUnavailable (per the fail mode), ParamsError, AuthenticationError."""
    if not tool or not isinstance(tool, str):
        raise ConfigurationError("aegis: policy_enforced needs tool=")
    if cost is not None and not callable(cost) and (
            isinstance(cost, bool) or not isinstance(cost, (int, float))):
        raise ConfigurationError("aegis: cost is a number of dollars or a callable")
    if actual_cost is not None and not callable(actual_cost):
        raise ConfigurationError("aegis: actual_cost must be callable(result) -> dollars")

    def decorate(fn):
        if isinstance(fn, (classmethod, staticmethod)):
            return type(fn)(decorate(fn.__func__))
        binder = ParamsBinder(fn)
        act = action or fn.__name__

        def resolve_client():
            if client is not None:
                return client
            from . import default_client
            return default_client()

        def estimate(params):
            return cost(params) if callable(cost) else cost

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                bound, params = binder.bind(args, kwargs)
                c = resolve_client()
                d = await c.enforce_async(tool, act, params, estimate(params), agent, tenant,
                                          wait_for_approval, _encoded=True)
                if d.outcome == outcomes.SANITIZE and d.sanitized_params is not None:
                    binder.apply_sanitized(bound, params, d.sanitized_params)
                token = _current.set(d)
                try:
                    result = await fn(*bound.args, **bound.kwargs)
                finally:
                    _current.reset(token)
                if actual_cost is not None:
                    await c._in_executor(c._report_actual, d, actual_cost, result)
                return result

            wrapper = async_wrapper
        else:
            @functools.wraps(fn)
            def sync_wrapper(*args, **kwargs):
                bound, params = binder.bind(args, kwargs)
                c = resolve_client()
                d = c.enforce(tool, act, params, estimate(params), agent, tenant,
                              wait_for_approval, _encoded=True)
                if d.outcome == outcomes.SANITIZE and d.sanitized_params is not None:
                    binder.apply_sanitized(bound, params, d.sanitized_params)
                token = _current.set(d)
                try:
                    result = fn(*bound.args, **bound.kwargs)
                finally:
                    _current.reset(token)
                if actual_cost is not None:
                    c._report_actual(d, actual_cost, result)
                return result

            wrapper = sync_wrapper
        wrapper.aegis_tool = tool
        wrapper.aegis_action = act
        return wrapper

    return decorate
