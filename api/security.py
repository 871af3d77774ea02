"""JWT bearer auth and the client-network allowlist.

Tokens are verified with PyJWT (signature, ``exp``/``nbf``, and ``iss``/``aud`` when
configured). Permissions are scopes in the ``scope`` claim (space-separated, OAuth 2
style) or a ``scopes`` list: ``read`` (reads, when ``api_auth_mode=all``), ``events``
(``POST /events``), ``admin`` (``POST /models/reload``). No or bad token: 401; a good
token without the scope, or a client outside the allowlist: 403.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from recsys.settings import Settings

READ, EVENTS, ADMIN = "read", "events", "admin"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AuthError(Exception):
    """401 (no or invalid credentials) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConfigError(ValueError):
    """The API's security settings are unusable; the message names the setting."""


def parse_cidrs(text: str) -> tuple[Network, ...]:
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ConfigError(f"api_allowed_cidrs: {part!r} is not a network: {exc}") from None
    return tuple(networks)


class Allowlist:
    """Client networks allowed to call the API (empty: everyone)."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)

    def allows(self, host: str | None) -> bool:
        if not self.networks:
            return True
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.networks)


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self.mode = settings.api_auth_mode
        self.algorithm = settings.api_jwt_algorithm
        self.issuer = settings.api_jwt_issuer
        self.audience = settings.api_jwt_audience
        secret = settings.api_jwt_secret.get_secret_value() if settings.api_jwt_secret else ""
        if self.mode != "off" and not secret:
            raise ConfigError(
                f"api_auth_mode={self.mode} needs api_jwt_secret (RECSYS_API_JWT_SECRET: the "
                "HS* secret or the RS*/ES* public key); set RECSYS_API_AUTH_MODE=off to run "
                "without auth")
        if self.mode != "off" and self.algorithm.startswith("HS") and len(secret) < 32:
            raise ConfigError("api_jwt_secret: an HS* secret needs at least 32 characters")
        self._key = _verification_key(self.algorithm, secret) if self.mode != "off" else None
        self._cache: dict[str, tuple[float, Principal]] = {}

    def required(self, scope: str) -> bool:
        if self.mode == "off":
            return False
        return self.mode == "all" or scope != READ

    def check(self, authorization: str | None, scope: str) -> Principal | None:
        """The caller, or AuthError; None when this scope needs no token."""
        if not self.required(scope):
            return None
        if not authorization:
            raise AuthError(401, "missing bearer token (Authorization: Bearer <JWT>)")
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AuthError(401, "the Authorization header must be 'Bearer <JWT>'")
        principal = self._verify(token.strip())
        if scope not in principal.scopes:
            raise AuthError(403, f"token lacks the '{scope}' scope")
        return principal

    def subject(self, authorization: str | None) -> str | None:
        """The ``sub`` of a valid bearer token; None without one, for a bad one, with auth off."""
        if self.mode == "off" or not authorization:
            return None
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return None
        try:
            return self._verify(token.strip()).subject or None
        except AuthError:
            return None

    def _verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[self.algorithm], issuer=self.issuer,
                audience=self.audience, leeway=5,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"invalid token: {exc}") from None
        scopes = _scopes(claims)
        principal = Principal(str(claims.get("sub", "")), scopes)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (min(float(claims["exp"]), now + 60.0), principal)
        return principal


def _verification_key(algorithm: str, secret: str) -> object:
    """The key PyJWT verifies with, prepared once: an unusable one fails at start, not per
    request (a garbled PEM, a private key where the public one belongs, a PEM as HS* secret)."""
    try:
        key = jwt.get_algorithm_by_name(algorithm).prepare_key(secret)
    except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"api_jwt_secret is not a usable {algorithm} key: {exc}") from None
    if not algorithm.startswith("HS") and not hasattr(key, "verify"):
        raise ConfigError(f"api_jwt_secret: {algorithm} needs the PEM *public* key (this is a "
                          "private key; keep it with the token issuer)")
    return key


def _scopes(claims: dict) -> frozenset[str]:
    """Scopes from ``scopes`` (a list) or ``scope`` (space separated); other shapes are a 401."""
    raw = claims.get("scopes", claims.get("scope", ""))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return frozenset(raw)
    raise AuthError(401, "invalid token: the scope claim must be a string, or scopes a list of "
                         "strings")


def make_token(settings: Settings, scopes: Iterable[str], subject: str = "recsys",
               ttl_s: float = 3600.0, key: str | None = None, **claims: object) -> str:
    """A token these settings accept (for the demo, the benchmark and the tests)."""
    secret = key or (settings.api_jwt_secret.get_secret_value() if settings.api_jwt_secret
                     else "")
    now = int(time.time())
    payload: dict[str, object] = {"sub": subject, "scope": " ".join(scopes), "iat": now,
                                  "exp": now + int(ttl_s)}
    if settings.api_jwt_issuer:
        payload["iss"] = settings.api_jwt_issuer
    if settings.api_jwt_audience:
        payload["aud"] = settings.api_jwt_audience
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=settings.api_jwt_algorithm)
