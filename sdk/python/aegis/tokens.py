"""Agent tokens: reading their claims, refreshing them before they expire, and minting them.

A token provider is any callable returning a fresh agent token (a str). `TokenSource` asks it
for one when there is none yet, when the current one expires within the refresh margin (read
from the token's `exp`, decoded without verifying: Aegis verifies), and after Aegis refused the
current one (401). `IssuerTokenProvider` is a provider that mints tokens from Aegis itself with
an issuer credential (POST /v1/tokens, docs/identity.md).
"""
import base64
import json
import logging
import threading
import time

from .errors import (AegisError, AegisUnavailable, AuthenticationError, ConfigurationError,
                     InvalidCall, ProtocolError)
from .transport import USER_AGENT, Transport

log = logging.getLogger("aegis")


def token_claims(token):
    """The payload of a JWT as a dict, not verified; {} when it is not a readable JWT."""
    try:
        payload = token.split(".")[1]
        data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(data)
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError, AttributeError, TypeError):
        return {}


def _int_claim(claims, name):
    v = claims.get(name)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class TokenSource:
    """The agent token to send, refreshed through `provider` when one is given.

    `margin` (seconds): refresh when the token expires within it, but at most halfway through
    the token's life, so a token of a few seconds is not fetched again on every call. Thread-safe;
    one thread refreshes while the others keep using the current token if it is still valid."""

    def __init__(self, token=None, provider=None, margin=30.0, count=None,
                 clock=time.time):
        if token is not None and not isinstance(token, str):
            raise ConfigurationError("aegis: agent_token must be a str")
        if provider is not None and not callable(provider):
            raise ConfigurationError("aegis: token_provider must be callable")
        self.provider = provider
        self.margin = float(margin)
        self._clock = clock
        self._count = count or (lambda name: None)
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._set(token)

    def _set(self, token):
        self._token = token
        claims = token_claims(token) if token else {}
        self.claims = claims
        exp, iat = _int_claim(claims, "exp"), _int_claim(claims, "iat")
        if exp is None:
            self._refresh_at = None
        else:
            margin = self.margin if iat is None else min(self.margin, (exp - iat) / 2.0)
            self._refresh_at = exp - margin
        self._exp = exp

    @property
    def agent(self):
        """The token's `sub`, or None."""
        sub = self.claims.get("sub")
        return sub if isinstance(sub, str) else None

    @property
    def tenant(self):
        t = self.claims.get("tenant")
        return t if isinstance(t, str) else None

    def get(self):
        """The token to send now (None without token or provider)."""
        token = self._token
        if self.provider is None:
            return token
        if token is not None and (self._refresh_at is None or self._clock() < self._refresh_at):
            return token
        return self._refresh(token)

    def invalidate(self, rejected):
        """Aegis refused `rejected` (401): the next get() fetches a new token. Returns True when
        a provider can do so."""
        if self.provider is None:
            return False
        with self._lock:
            if self._token == rejected:
                self._set(None)
                self._retry_at = 0.0
        return True

    def _refresh(self, seen):
        with self._lock:
            if self._token is not seen and self._token is not None:
                return self._token  # another thread refreshed meanwhile
            now = self._clock()
            still_valid = seen is not None and (self._exp is None or now < self._exp)
            if still_valid and now < self._retry_at:
                return seen
            try:
                token = self.provider()
                if not isinstance(token, str) or not token:
                    raise AuthenticationError("aegis: the token provider returned %r, not a "
                                              "token" % type(token).__name__)
            except Exception as e:
                if still_valid:
                    # Keep the current token while it lasts; try again in a second.
                    self._retry_at = now + 1.0
                    log.warning("aegis: token refresh failed, keeping the current token: %s", e)
                    return seen
                if isinstance(e, AegisError):
                    raise
                raise AuthenticationError("aegis: the token provider failed: %s" % e) from e
            self._set(token)
            self._count("token_refreshes")
            return token


class IssuerTokenProvider:
    """Mints agent tokens from Aegis: POST /v1/tokens with an issuer credential.

        provider = aegis.IssuerTokenProvider("http://127.0.0.1:8181", credential=SECRET,
                                             agent="finance-agent", tenant="acme", ttl=900)
        aegis.configure(url=..., token_provider=provider)

    Each call returns a new token (str). Raises AuthenticationError when the credential is
    refused (401/403), InvalidCall for an unknown agent (404) or a ttl over the gateway's maximum
    (400), AegisUnavailable when Aegis cannot be reached."""

    def __init__(self, url, credential, agent, tenant=None, ttl=None, timeout=5.0):
        if not credential or not agent:
            raise ConfigurationError("aegis: IssuerTokenProvider needs a credential and an agent")
        self._transport = Transport(url, timeout)
        self._credential = credential
        body = {"agent": agent}
        if tenant:
            body["tenant"] = tenant
        if ttl is not None:
            body["ttl_seconds"] = int(ttl)
        self._body = json.dumps(body).encode()
        self.last = None  # the last answer: token, jti, expires_in, expires_at

    def __call__(self):
        status, _, data = self._transport.request(
            "POST", "/v1/tokens", self._body,
            {"Content-Type": "application/json", "User-Agent": USER_AGENT,
             "Authorization": "Bearer " + self._credential})
        answer = _json_object(data)
        if status == 200 and answer and isinstance(answer.get("token"), str):
            self.last = answer
            return answer["token"]
        code, message = _error_of(answer, data)
        if status in (401, 403):
            raise AuthenticationError("aegis: POST /v1/tokens refused the issuer credential "
                                      "(%d %s): %s" % (status, code, message), status)
        if status in (400, 404):
            raise InvalidCall("aegis: POST /v1/tokens: %d %s: %s" % (status, code, message),
                              status, code)
        if status >= 500:
            raise AegisUnavailable("aegis: POST /v1/tokens: %d %s: %s" % (status, code, message),
                                   status)
        raise ProtocolError("aegis: POST /v1/tokens: unexpected answer %d: %s" % (status, message),
                            status)

    def close(self):
        self._transport.close()


def _json_object(data):
    try:
        v = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return v if isinstance(v, dict) else None


def _error_of(answer, data):
    """(code, message) of an error answer {"error": {"code", "message"}}, or of raw bytes."""
    err = answer.get("error") if answer else None
    if isinstance(err, dict):
        return str(err.get("code", "")), str(err.get("message", ""))
    text = data[:200].decode("utf-8", "replace") if data else ""
    return "", text
