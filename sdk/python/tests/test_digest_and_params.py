"""Unit tests: the call digest against the gateway's vectors, ECMAScript number formatting, and
how arguments become params (no server needed)."""
import datetime
import decimal
import enum
import json
import math
import os
import unittest

import support  # noqa: F401  (puts this tree's aegis on sys.path)
import aegis
from aegis.params import ParamsBinder

with open(os.path.join(support.CASES_DIR, "cases.json"), encoding="utf-8") as f:
    CASES = json.load(f)


class DigestTest(unittest.TestCase):
    def test_every_vector_of_the_shared_case_file(self):
        self.assertGreaterEqual(len(CASES["digests"]), 2)
        for v in CASES["digests"]:
            with self.subTest(v["name"]):
                args = (v["tenant"], v["agent"], v["tool"], v["action"], v["params"])
                self.assertEqual(aegis.canonical_call(*args), v["canonical"])
                self.assertEqual(aegis.call_digest(*args), v["digest"])

    def test_the_worked_example_of_docs_approvals_md(self):
        self.assertEqual(
            aegis.call_digest("acme", "finance-agent", "stripe", "create_payment",
                              {"currency": "usd", "amount": 7000}),
            "158090f2a96b1c21d3201b2670858c7d27258ac8797d7dfcd30ae6b2f0fa2448")

    def test_any_change_to_the_call_changes_the_digest(self):
        d = aegis.call_digest("acme", "fa", "stripe", "pay", {"amount": 7000, "currency": "usd"})
        self.assertEqual(d, aegis.call_digest("acme", "fa", "stripe", "pay",
                                              {"currency": "usd", "amount": 7000.0}))
        for other in (("acme", "fa", "stripe", "pay", {"amount": 7001, "currency": "usd"}),
                      ("acme", "fa", "stripe", "pay", {"amount": "7000", "currency": "usd"}),
                      ("acme", "fb", "stripe", "pay", {"amount": 7000, "currency": "usd"}),
                      ("globex", "fa", "stripe", "pay", {"amount": 7000, "currency": "usd"}),
                      (None, "fa", "stripe", "pay", {"amount": 7000, "currency": "usd"}),
                      ("acme", "fa", "stripe", "refund", {"amount": 7000, "currency": "usd"}),
                      ("acme", "fa", "stripe", "pay",
                       {"amount": 7000, "currency": "usd", "memo": None})):
            self.assertNotEqual(d, aegis.call_digest(*other), other)

    def test_numbers_as_ecmascript_writes_them(self):
        for value, text in ((0.1, "0.1"), (-2.5, "-2.5"), (100.0, "100"),
                            (1e20, "100000000000000000000"), (1e21, "1e+21"),
                            (1.5e-7, "1.5e-7"), (123.456e-3, "0.123456"), (5e-324, "5e-324"),
                            (1.7976931348623157e308, "1.7976931348623157e+308"),
                            (-0.0, "0"), (0.000001, "0.000001"), (1e-7, "1e-7"),
                            (123456789012.0, "123456789012"), (0.1 + 0.2, "0.30000000000000004")):
            self.assertEqual(aegis.ecmascript_number(value), text, value)
        with self.assertRaises(ValueError):
            aegis.ecmascript_number(math.inf)

    def test_integers_exactly_and_beyond_64_bits_as_the_gateway_reads_them(self):
        self.assertEqual(aegis.canonical_json([2 ** 63 - 1, -2 ** 63]),
                         "[9223372036854775807,-9223372036854775808]")
        # 2^64 does not fit the gateway's integers: its JSON parser makes it a double.
        self.assertEqual(aegis.canonical_json([2 ** 64]), "[18446744073709552000]")

    def test_strings_escape_only_quote_backslash_and_controls(self):
        self.assertEqual(aegis.canonical_json("a\"\\\b\f\n\r\t\x00\x1f\x7f/é😀"),
                         '"a\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f\x7f/é😀"')

    def test_keys_sort_by_utf16_code_units(self):
        # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB01 and U+FFFF.
        self.assertEqual(aegis.canonical_json({"\uffff": 1, "\ufb01": 2, "\U0001F600": 3, "a": 4}),
                         '{"a":4,"\U0001F600":3,"\ufb01":2,"\uffff":1}')


class ParamsTest(unittest.TestCase):
    def bind(self, fn, *args, **kwargs):
        return ParamsBinder(fn).bind(args, kwargs)[1]

    def test_named_parameters_with_defaults_applied(self):
        def create_payment(amount, currency="usd", *, memo=None):
            pass
        self.assertEqual(self.bind(create_payment, 7000),
                         {"amount": 7000, "currency": "usd", "memo": None})
        self.assertEqual(self.bind(create_payment, currency="eur", amount=1.5, memo="m"),
                         {"amount": 1.5, "currency": "eur", "memo": "m"})

    def test_var_args_and_var_keywords(self):
        def f(a, *rest, **options):
            pass
        self.assertEqual(self.bind(f, 1, 2, 3, mode="fast"),
                         {"a": 1, "rest": [2, 3], "mode": "fast"})

    def test_self_and_cls_are_left_out(self):
        class Payments:
            def pay(self, amount):
                pass

            @classmethod
            def refund(cls, amount):
                pass
        self.assertEqual(self.bind(Payments.pay, Payments(), 5), {"amount": 5})
        self.assertEqual(self.bind(Payments.refund.__func__, Payments, 5), {"amount": 5})

    def test_json_values_and_their_subclasses(self):
        class Color(str, enum.Enum):
            RED = "red"

        class Level(enum.IntEnum):
            HIGH = 3

        def f(a, b, c, d, e):
            pass
        self.assertEqual(self.bind(f, (1, [2.5, None]), {"k": True}, Color.RED, Level.HIGH, "é"),
                         {"a": [1, [2.5, None]], "b": {"k": True}, "c": "red", "d": 3, "e": "é"})

    def test_values_json_cannot_carry_are_a_clear_error(self):
        def schedule(when, amount=1.0, tags=()):
            pass
        for args, path, words in (
                ((datetime.datetime(2026, 1, 1),), "params.when", "datetime"),
                (("x", decimal.Decimal("1.5")), "params.amount", "Decimal"),
                (("x", math.nan), "params.amount", "nan"),
                (("x", math.inf), "params.amount", "inf"),
                (("x", 1.0, ({"ok": 1}, {"bad": object()})), "params.tags[1].bad", "object"),
                (("x", 1.0, {1: "int key"}), "params.tags", "key 1"),
                (("\ud800",), "params.when", "surrogate"),
                ((b"bytes",), "params.when", "bytes"),
                (({"a", "set"},), "params.when", "set")):
            with self.subTest(path=path):
                with self.assertRaises(aegis.ParamsError) as cm:
                    self.bind(schedule, *args)
                self.assertEqual(cm.exception.path, path)
                self.assertIn(words, str(cm.exception))
                self.assertIsInstance(cm.exception, aegis.AegisError)

    def test_cycles_and_deep_nesting_are_refused(self):
        loop = []
        loop.append(loop)

        def f(x):
            pass
        with self.assertRaises(aegis.ParamsError):
            self.bind(f, loop)
        deep = []
        for _ in range(100):
            deep = [deep]
        with self.assertRaises(aegis.ParamsError):
            self.bind(f, deep)

    def test_sanitized_values_replace_only_the_arguments_that_changed(self):
        def lookup(customer_id, ssn=None, *, tags=("a",), **extra):
            pass
        binder = ParamsBinder(lookup)
        bound, params = binder.bind(("c1", "123-45-6789"), {"note": "mail x@y.com"})
        sanitized = dict(params, ssn="[REDACTED]", note="mail [REDACTED:email]")
        binder.apply_sanitized(bound, params, sanitized)
        self.assertEqual(bound.args, ("c1", "[REDACTED]"))
        self.assertEqual(bound.kwargs, {"tags": ("a",), "note": "mail [REDACTED:email]"})


if __name__ == "__main__":
    unittest.main()
