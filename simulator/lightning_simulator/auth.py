"""Credential checks (Basic user:key, Bearer key, Bearer JWT) and JWT issuing for ``/v1/auth/login``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

from .wire import GRPC_UNAUTHENTICATED, ApiError

DEFAULT_TOKEN_SECONDS = 43_200


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unauthenticated(reason: str) -> ApiError:
    """A 401 with gRPC code 16."""
    return ApiError(GRPC_UNAUTHENTICATED, f"unauthenticated: {reason}")


class Authenticator:
    """Checks the ``Authorization`` header against the one simulated user."""

    def __init__(self, user_id: str, username: str, api_key: str, secret: bytes) -> None:
        self.user_id = user_id
        self.username = username
        self.api_key = api_key
        self.secret = secret

    def issue_token(self, duration_seconds: int = DEFAULT_TOKEN_SECONDS) -> str:
        """Issue an HS256 JWT for the user, valid for ``duration_seconds``."""
        now = int(time.time())
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        claims = {"sub": self.user_id, "username": self.username, "iat": now, "exp": now + duration_seconds}
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = _b64url(hmac.new(self.secret, signing_input, hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def _check_jwt(self, token: str) -> bool:
        parts = token.split(".")
        if len(parts) != 3:
            return False
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        expected = _b64url(hmac.new(self.secret, signing_input, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return False
        try:
            claims = json.loads(_b64url_decode(parts[1]))
        except (ValueError, binascii.Error):
            return False
        return claims.get("sub") == self.user_id and int(claims.get("exp", 0)) > time.time()

    def check(self, header: str | None) -> None:
        """Raise a 401 ``ApiError`` unless ``header`` carries valid credentials."""
        if not header:
            raise unauthenticated("missing Authorization header")
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise unauthenticated("malformed Basic credentials") from None
            user, _, key = decoded.partition(":")
            if hmac.compare_digest(user, self.user_id) and hmac.compare_digest(key, self.api_key):
                return
            raise unauthenticated("invalid user id or API key")
        if scheme == "bearer":
            if hmac.compare_digest(value, self.api_key) or self._check_jwt(value):
                return
            raise unauthenticated("invalid or expired token")
        raise unauthenticated(f"unsupported authorization scheme {scheme!r}")

    def login(self, api_key: str, username: str) -> str:
        """``POST /v1/auth/login``: exchange the API key for a JWT."""
        if not api_key or not hmac.compare_digest(api_key, self.api_key):
            raise unauthenticated("invalid API key")
        if username and username not in (self.username, self.user_id):
            raise unauthenticated("invalid username")
        return self.issue_token()
