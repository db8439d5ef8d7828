"""From a function's arguments to the call's `params`, and back.

`ParamsBinder(fn)` binds a call's arguments to the function's signature (defaults applied) and
maps every named parameter to a member of `params`: `*args` becomes a list under its name, the
extra keywords of `**kwargs` become members of their own, and a first parameter named `self` or
`cls` (a method's receiver) is left out. Every value must be JSON: None, bool, int, finite float,
str (valid Unicode), lists and tuples, dicts with str keys; anything else is a `ParamsError`
naming the argument, raised before anything is sent.

`apply_sanitized` puts the redacted values of a sanitize decision back into the arguments.
"""
import inspect
import math
from collections.abc import Mapping

from .errors import ParamsError

# The gateway refuses JSON nested deeper than 64 levels; the call object and `params` take two.
MAX_DEPTH = 62


def _fail(path, what):
    raise ParamsError("aegis: %s cannot be sent as JSON params: %s" % (path, what), path)


def encode_value(value, path, depth=0):
    """`value` as plain JSON data (dict, list, str, int, float, bool, None).

    Raises ParamsError, naming `path`, for anything JSON cannot carry exactly."""
    if value is None or value is True or value is False:
        return value
    t = type(value)
    if t is str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                _fail(path, "the string holds a lone surrogate (not valid Unicode)")
        return value
    if t is int:
        return value
    if t is float:
        if not math.isfinite(value):
            _fail(path, "%r is not a JSON number" % value)
        return value
    if depth >= MAX_DEPTH:
        _fail(path, "nested deeper than %d levels (or a cycle)" % MAX_DEPTH)
    if t is dict or isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    _fail(path, "key %r is a %s; JSON object keys are strings"
                          % (key, type(key).__name__))
                key = str.__str__(key)
            out[key] = encode_value(item, "%s.%s" % (path, key), depth + 1)
        return out
    if t is list or t is tuple:
        return [encode_value(item, "%s[%d]" % (path, i), depth + 1)
                for i, item in enumerate(value)]
    # Subclasses of the JSON types (IntEnum, StrEnum, named tuples) as the base type's value.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return encode_value(float(value), path, depth)
    if isinstance(value, str):
        return encode_value(str.__str__(value), path, depth)
    if isinstance(value, (list, tuple)):
        return [encode_value(item, "%s[%d]" % (path, i), depth + 1)
                for i, item in enumerate(value)]
    _fail(path, "a %s is not JSON (pass a str, number, bool, None, list or dict)"
          % type(value).__name__)


class ParamsBinder:
    """Maps calls of one function to params. Built once per decorated function."""

    def __init__(self, fn):
        self.name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        self.signature = inspect.signature(fn)
        names = list(self.signature.parameters)
        kinds = {n: p.kind for n, p in self.signature.parameters.items()}
        self.receiver = None
        if names and names[0] in ("self", "cls") and kinds[names[0]] in (
                inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            self.receiver = names[0]
        self.var_positional = next((n for n, k in kinds.items()
                                    if k == inspect.Parameter.VAR_POSITIONAL), None)
        self.var_keyword = next((n for n, k in kinds.items()
                                 if k == inspect.Parameter.VAR_KEYWORD), None)

    def bind(self, args, kwargs):
        """(bound arguments, params dict). Raises TypeError when the arguments do not fit the
        signature (as calling the function would) and ParamsError for values JSON cannot hold."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        params = {}
        for name, value in bound.arguments.items():
            if name == self.receiver:
                continue
            if name == self.var_keyword:
                for key, item in value.items():
                    params[key] = encode_value(item, "params." + key, 1)
            else:
                params[name] = encode_value(value, "params." + name, 1)
        return bound, params

    def apply_sanitized(self, bound, params, sanitized_params):
        """Replaces, in `bound`, each argument whose value in `sanitized_params` differs from
        the one sent in `params` (a redaction touched it). Arguments nothing was redacted in
        keep their original objects; a redacted one becomes its JSON form (a tuple a list)."""
        for name, value in sanitized_params.items():
            if name in params and params[name] == value:
                continue
            if name in bound.arguments and name not in (self.receiver, self.var_keyword):
                if name == self.var_positional and isinstance(value, list):
                    value = tuple(value)
                bound.arguments[name] = value
            elif self.var_keyword and name in bound.arguments.get(self.var_keyword, {}):
                bound.arguments[self.var_keyword][name] = value
        return bound
