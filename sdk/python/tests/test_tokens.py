"""Agent tokens: short-lived tokens refreshed before they expire against a real `aegis serve`
that allows no clock leeway (so a token past its exp is refused at once), a static token that
expires, a refused token replaced once; and the refresh rule itself with an injected clock."""
import base64
import json
import time
import unittest

import support
import aegis
from aegis.tokens import TokenSource


def fake_jwt(claims):
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return "%s.%s.%s" % (b64({"alg": "EdDSA", "typ": "aegis-agent+jwt", "kid": "x"}), b64(claims),
                         "c2ln")


class TokenRefreshTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = support.Gateway(support.identity_config, "tokens").start()

    @classmethod
    def tearDownClass(cls):
        code = cls.gw.stop()
        cls.gw.cleanup()
        assert code == 0, "aegis serve exited with %s" % code

    def test_short_lived_tokens_are_refreshed_before_they_expire(self):
        provider = aegis.IssuerTokenProvider(self.gw.url, support.SECRETS["orchestrator"],
                                             "finance-agent", ttl=2)
        self.addCleanup(provider.close)
        client = aegis.Client(url=self.gw.url, token_provider=provider)
        self.addCleanup(client.close)

        @aegis.policy_enforced(tool="search", client=client)
        def query(q):
            return q

        query(0)
        first_exp = aegis.token_claims(provider.last["token"])["exp"]
        jtis = {provider.last["jti"]}
        # Keep calling well past the first token's expiry; every call must go through (a stale
        # token would be a 401 here, as the gateway allows no leeway).
        deadline = time.monotonic() + 20
        i = 0
        while time.time() < first_exp + 1.5 or len(jtis) < 3:
            self.assertLess(time.monotonic(), deadline, "tokens were not refreshed")
            i += 1
            self.assertEqual(query(i), i)
            jtis.add(provider.last["jti"])
            time.sleep(0.05)
        self.assertGreaterEqual(client.stats()["token_refreshes"], 3)
        self.assertEqual(client.stats()["decisions"], i + 1)

    def test_a_static_token_that_expires_is_refused_not_silently_allowed(self):
        client = aegis.Client(url=self.gw.url, agent_token=self.gw.token("finance-agent", ttl=1))
        self.addCleanup(client.close)
        self.assertEqual(client.decide("search", "query").outcome, "allow")
        deadline = time.monotonic() + 10
        while True:
            try:
                client.decide("search", "query")
            except aegis.AuthenticationError as e:
                self.assertIn("expired", str(e))
                break
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def test_a_token_aegis_refuses_is_replaced_once(self):
        # Looks valid for an hour, but no key of this gateway signed it: 401, then a new one.
        forged = fake_jwt({"sub": "finance-agent", "exp": int(time.time()) + 3600,
                           "iat": int(time.time())})
        tokens = [forged, self.gw.token("finance-agent")]
        client = aegis.Client(url=self.gw.url, token_provider=lambda: tokens.pop(0))
        self.addCleanup(client.close)
        self.assertEqual(client.decide("search", "query").outcome, "allow")
        self.assertEqual(client.stats()["token_refreshes"], 2)
        # A provider that keeps handing out refused tokens: one retry, then the error.
        client = aegis.Client(url=self.gw.url, token_provider=lambda: forged)
        self.addCleanup(client.close)
        with self.assertRaises(aegis.AuthenticationError):
            client.decide("search", "query")
        self.assertEqual(client.stats()["token_refreshes"], 2)


class TokenSourceTest(unittest.TestCase):
    """When TokenSource asks its provider for a new token (injected clock, no server)."""

    def setUp(self):
        self.now = 1000.0
        self.issued = []

    def provider(self, ttl):
        def mint():
            token = fake_jwt({"sub": "a", "iat": int(self.now), "exp": int(self.now) + ttl,
                              "jti": "t%d" % len(self.issued)})
            self.issued.append(token)
            return token
        return mint

    def source(self, provider, margin=30):
        return TokenSource(provider=provider, margin=margin, clock=lambda: self.now)

    def test_refresh_within_the_margin_or_halfway_through_a_short_life(self):
        long = self.source(self.provider(900))
        t = long.get()
        self.now += 869
        self.assertIs(long.get(), t)
        self.now += 2  # 29 s left: inside the 30 s margin
        self.assertIsNot(long.get(), t)
        short = self.source(self.provider(4))  # 4 s tokens: refreshed after 2 s, not each call
        t = short.get()
        self.now += 1.9
        self.assertIs(short.get(), t)
        self.now += 0.2
        self.assertIsNot(short.get(), t)
        self.assertEqual(len(self.issued), 4)

    def test_a_failing_provider_keeps_the_current_token_while_it_lasts(self):
        mint = self.provider(10)
        failing = [False]

        def flaky():
            if failing[0]:
                raise aegis.AegisUnavailable("down")
            return mint()

        src = self.source(flaky, margin=5)
        t = src.get()
        failing[0] = True
        self.now += 6  # refresh due; the provider fails; the token is valid 4 s more
        with self.assertLogs("aegis", "WARNING"):
            self.assertIs(src.get(), t)
        self.assertIs(src.get(), t)  # no new attempt within a second
        self.now += 5  # expired now
        with self.assertRaises(aegis.AegisUnavailable):
            src.get()
        src2 = self.source(lambda: 1 / 0)
        with self.assertRaises(aegis.AuthenticationError):
            src2.get()

    def test_static_tokens_are_never_refreshed(self):
        token = fake_jwt({"sub": "a", "iat": 0, "exp": 1})
        src = TokenSource(token=token, clock=lambda: self.now)
        self.assertIs(src.get(), token)
        self.assertFalse(src.invalidate(token))
        self.assertEqual((src.agent, src.tenant), ("a", None))


if __name__ == "__main__":
    unittest.main()
