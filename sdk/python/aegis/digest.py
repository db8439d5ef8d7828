"""The call digest: what an approval and its override token are bound to (docs/approvals.md).

    digest = hex(SHA-256(JCS({"action": A, "agent": G, "params": P, "tenant": T, "tool": O})))

JCS is RFC 8785, written exactly as the gateway writes it (src/engine/call_digest.cc): members
sorted by the UTF-16 code units of their keys, no whitespace, only `"`, `\\` and control
characters escaped (`\\b \\f \\n \\r \\t` short, the others `\\u00xx`), other characters as UTF-8,
doubles as ECMAScript's Number.prototype.toString writes them (7000.0 -> 7000, 1e21 -> 1e+21,
1e-7 -> 1e-7), and integers exactly. An integer outside the signed 64-bit range is a double to
the gateway's JSON parser, so it is written as that double here too.
"""
import hashlib
import math

from .params import encode_value

_INT64_MIN = -(2 ** 63)
_INT64_MAX = 2 ** 63 - 1
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t"}


def ecmascript_number(d):
    """The text ECMAScript's Number.prototype.toString gives for the finite float `d`."""
    if not math.isfinite(d):
        raise ValueError("JSON has no %r" % d)
    if d == 0:
        return "0"  # also -0
    sign = "-" if d < 0 else ""
    # repr() gives the shortest digits that round-trip, as ECMAScript asks for.
    text = repr(abs(d))
    mantissa, _, exponent = text.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    # The value is 0.DIGITS x 10^n.
    n = len(int_part) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return "%s%se%s%d" % (sign, mantissa, "+" if e >= 0 else "-", abs(e))


def _string(s, out):
    out.append('"')
    start = 0
    for i, ch in enumerate(s):
        if ch in _SHORT_ESCAPES or ch < " ":
            out.append(s[start:i])
            out.append(_SHORT_ESCAPES.get(ch) or "\\u%04x" % ord(ch))
            start = i + 1
    out.append(s[start:])
    out.append('"')


def _utf16_key(item):
    # Big-endian UTF-16 bytes compare like the code units they encode.
    return item[0].encode("utf-16-be", "surrogatepass")


def _append(value, out):
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            out.append(str(int(value)))
        else:
            out.append(ecmascript_number(float(value)))
    elif isinstance(value, float):
        out.append(ecmascript_number(value))
    elif isinstance(value, str):
        _string(value, out)
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _append(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(sorted(value.items(), key=_utf16_key)):
            if i:
                out.append(",")
            _string(key, out)
            out.append(":")
            _append(item, out)
        out.append("}")
    else:  # encode_value() admits nothing else
        raise TypeError("not a JSON value: %r" % type(value).__name__)


def canonical_json(value):
    """RFC 8785 text of a JSON value (after the SDK's encoding of Python values: tuples are
    arrays, keys must be strings)."""
    out = []
    _append(encode_value(value, "value"), out)
    return "".join(out)


def canonical_call(tenant, agent, tool, action, params):
    """The canonical text the call digest is taken over."""
    out = ['{"action":']
    _string(action, out)
    out.append(',"agent":')
    _string(agent, out)
    out.append(',"params":')
    _append(encode_value({} if params is None else params, "params"), out)
    out.append(',"tenant":')
    _string(tenant or "", out)
    out.append(',"tool":')
    _string(tool, out)
    out.append("}")
    return "".join(out)


def call_digest(tenant, agent, tool, action, params):
    """The lower-case hex SHA-256 of the call's canonical text, as the gateway computes it.

    `tenant` is the call's tenant ("" or None for none); with an agent token and no tenant in
    the call, the gateway uses the token's tenant. Raises ParamsError for params that cannot be
    JSON (see `aegis.ParamsError`)."""
    return hashlib.sha256(canonical_call(tenant, agent, tool, action, params).encode("utf-8")
                          ).hexdigest()
