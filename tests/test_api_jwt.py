"""JWT validation of the API (``api.security.JwtVerifier``) against hostile tokens: algorithm
pinning (``alg=none``, another HMAC size, HS256 signed with the RS256 public key), expiry,
``nbf``, issuer and audience, garbled tokens, odd claim shapes, and keys that cannot work.

The basic cases (scopes, expired, forged, wrong issuer/audience, no ``exp``) are in
``tests/test_api_units.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.security import AuthError, ConfigError, JwtVerifier, make_token
from recsys.settings import Settings

SECRET = "s" * 40


def make_settings(**changes: object) -> Settings:
    return Settings(_env_file=None, **{"api_auth_mode": "writes", "api_jwt_secret": SECRET,
                                       **changes})


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "scope": "events", "exp": int(time.time()) + 300, **extra}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: Any, key: bytes | None) -> str:
    """A JWS built without PyJWT (which refuses to sign some of these): HS256 or unsigned."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(),
                                                 hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@cache
def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _pem(key), key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@cache
def ec_private() -> str:
    return _pem(ec.generate_private_key(ec.SECP256R1()))


def _pem(key: Any) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def refused(verifier: JwtVerifier, token: str, scope: str = "events") -> AuthError:
    with pytest.raises(AuthError) as caught:
        verifier.check(f"Bearer {token}", scope)
    return caught.value


def test_the_hand_made_token_is_accepted_when_it_is_honest() -> None:
    # the control for the forgeries below: the same construction with the real secret passes
    principal = JwtVerifier(make_settings()).check(
        f"Bearer {hand_made({'alg': 'HS256', 'typ': 'JWT'}, claims(), SECRET.encode())}",
        "events")
    assert principal is not None and principal.subject == "alice"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_tokens_are_refused(alg: str) -> None:
    error = refused(JwtVerifier(make_settings()), hand_made({"alg": alg}, claims(), None))
    assert error.status == 401 and "alg" in error.message


def test_only_the_configured_algorithm_is_accepted() -> None:
    hs256 = JwtVerifier(make_settings())
    for alg in ("HS384", "HS512"):  # the right secret, another algorithm
        error = refused(hs256, jwt.encode(claims(), SECRET + SECRET, algorithm=alg))
        assert error.status == 401 and "alg value is not allowed" in error.message
    private, _ = rsa_pair()
    assert refused(hs256, jwt.encode(claims(), private, algorithm="RS256")).status == 401
    assert refused(hs256, hand_made({"typ": "JWT"}, claims(), SECRET.encode())).status == 401
    hs512 = JwtVerifier(make_settings(api_jwt_algorithm="HS512", api_jwt_secret=SECRET * 2))
    assert hs512.check(f"Bearer {jwt.encode(claims(), SECRET * 2, algorithm='HS512')}",
                       "events") is not None
    assert refused(hs512, jwt.encode(claims(), SECRET * 2, algorithm="HS256")).status == 401


def test_rs256_accepts_its_key_and_refuses_key_confusion() -> None:
    private, public = rsa_pair()
    verifier = JwtVerifier(make_settings(api_jwt_algorithm="RS256", api_jwt_secret=public))
    good = jwt.encode(claims(), private, algorithm="RS256")
    assert verifier.check(f"Bearer {good}", "events").subject == "alice"
    # the classic attack: HS256 "signed" with the RS256 public key as the HMAC secret
    confused = hand_made({"alg": "HS256", "typ": "JWT"}, claims(), public.encode())
    assert refused(verifier, confused).status == 401
    stranger = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert refused(verifier, jwt.encode(claims(), stranger, algorithm="RS256")).status == 401
    assert refused(verifier, jwt.encode(claims(), ec_private(), algorithm="ES256")).status == 401
    assert refused(verifier, hand_made({"alg": "none"}, claims(), None)).status == 401


def test_es256_with_its_public_key() -> None:
    private = ec_private()
    public = serialization.load_pem_private_key(private.encode(), None).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    verifier = JwtVerifier(make_settings(api_jwt_algorithm="ES256", api_jwt_secret=pem))
    assert verifier.check(f"Bearer {jwt.encode(claims(), private, algorithm='ES256')}",
                          "events").subject == "alice"
    assert refused(verifier, jwt.encode(claims(), SECRET, algorithm="HS256")).status == 401


def test_time_claims() -> None:
    verifier = JwtVerifier(make_settings())
    now = int(time.time())
    expired = refused(verifier, jwt.encode(claims(exp=now - 60), SECRET))
    assert (expired.status, expired.message) == (401, "token expired")
    assert refused(verifier, jwt.encode(claims(nbf=now + 600), SECRET)).status == 401
    assert refused(verifier, jwt.encode(claims(exp="tomorrow"), SECRET)).status == 401
    assert refused(verifier, jwt.encode(claims(exp=float("inf")), SECRET)).status == 401
    within_leeway = jwt.encode(claims(exp=now - 1), SECRET)  # 5 s of clock skew allowed
    assert verifier.check(f"Bearer {within_leeway}", "events") is not None


def test_issuer_and_audience_when_configured() -> None:
    settings = make_settings(api_jwt_issuer="https://idp.example", api_jwt_audience="recsys-api")
    verifier = JwtVerifier(settings)
    iss, aud = {"iss": "https://idp.example"}, {"aud": "recsys-api"}
    assert verifier.check(f"Bearer {jwt.encode(claims(**iss, **aud), SECRET)}", "events")
    listed = jwt.encode(claims(**iss, aud=["other", "recsys-api"]), SECRET)
    assert verifier.check(f"Bearer {listed}", "events") is not None
    for name, payload in {"no iss": claims(**aud), "no aud": claims(**iss),
                          "aud list without us": claims(**iss, aud=["other"])}.items():
        assert refused(verifier, jwt.encode(payload, SECRET)).status == 401, name
    # not configured: iss and aud are not checked
    plain = JwtVerifier(make_settings())
    assert plain.check(f"Bearer {jwt.encode(claims(iss='anyone'), SECRET)}", "events")


@pytest.mark.parametrize("header", [
    "Bearer", "Bearer    ", "Bearer abc", "Bearer a.b.c", "Bearer ...", "Bearer é.é.é",
    "Bearer " + "A" * 10_000,
    "Bearer " + b64(b'{"alg":"HS256"}') + "." + b64(b"not json") + ".sig",
    "Bearer " + b64(b"[1]") + "." + b64(b"{}") + ".sig",
    "Token abc", "bearer",
])
def test_garbled_authorization_headers_are_401(header: str) -> None:
    with pytest.raises(AuthError) as caught:
        JwtVerifier(make_settings()).check(header, "events")
    assert caught.value.status == 401 and caught.value.message


def test_a_tampered_payload_is_refused() -> None:
    token = make_token(make_settings(), ["read"])
    head, _, signature = token.split(".")
    forged = f"{head}.{b64(json.dumps(claims(scope='events admin')).encode())}.{signature}"
    assert "Signature verification failed" in refused(JwtVerifier(make_settings()),
                                                      forged).message


@pytest.mark.parametrize("shape", [{"scopes": 5}, {"scopes": None}, {"scope": 7},
                                   {"scopes": [{"events": True}]}, {"scope": {"a": 1}}])
def test_odd_scope_claims_are_401_not_a_crash(shape: dict[str, Any]) -> None:
    payload = {k: v for k, v in claims().items() if k != "scope"} | shape
    error = refused(JwtVerifier(make_settings()), jwt.encode(payload, SECRET))
    assert error.status == 401 and "scope" in error.message


def test_scopes_as_a_list_and_a_non_string_subject() -> None:
    verifier = JwtVerifier(make_settings())
    listed = jwt.encode(claims(scopes=["events", "admin"]), SECRET)
    assert verifier.check(f"Bearer {listed}", "admin").scopes == frozenset({"events", "admin"})
    assert refused(verifier, jwt.encode(claims(sub=42), SECRET)).status == 401


def test_keys_that_cannot_verify_fail_at_start() -> None:
    private, public = rsa_pair()
    for algorithm, key, message in [
        ("RS256", "x" * 40, "not a usable RS256 key"),
        ("RS256", private, "public"),  # the private key belongs with the issuer
        ("ES256", ec_private(), "public"),
        ("HS256", public, "not a usable HS256 key"),  # a PEM as an HMAC secret
    ]:
        with pytest.raises(ConfigError, match=message):
            JwtVerifier(make_settings(api_jwt_algorithm=algorithm, api_jwt_secret=key))
    # auth off: the key is not needed and not checked
    assert not JwtVerifier(make_settings(api_auth_mode="off", api_jwt_secret="x" * 40,
                                         api_jwt_algorithm="RS256")).required("events")


def test_subject_is_only_taken_from_a_valid_token() -> None:
    verifier = JwtVerifier(make_settings())
    good = jwt.encode(claims(), SECRET)
    assert verifier.subject(f"Bearer {good}") == "alice"
    assert verifier.subject(f"Bearer {jwt.encode(claims(sub='mallory'), 'k' * 40)}") is None
    assert verifier.subject(f"Bearer {jwt.encode(claims(exp=1), SECRET)}") is None
    assert verifier.subject("Bearer garbage") is None and verifier.subject(None) is None
    assert verifier.subject(f"Basic {good}") is None
    no_sub = jwt.encode({k: v for k, v in claims().items() if k != "sub"}, SECRET)
    assert verifier.subject(f"Bearer {no_sub}") is None  # keyed by address instead
    off = JwtVerifier(make_settings(api_auth_mode="off"))
    assert off.subject(f"Bearer {good}") is None
