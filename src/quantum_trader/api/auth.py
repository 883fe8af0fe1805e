"""The API token: where it comes from, how it is compared, and the route dependency.

Every state-changing route (POST, PUT, PATCH, DELETE) depends on ``require_token``; reads are
open (bind the API to loopback, or put it behind a proxy that authenticates, to protect them).

- The token comes from ``$QT_API_TOKEN``, or from the file named by ``$QT_API_TOKEN_FILE``
  (``--token-file``), never from a flag (it would sit in the shell history and ``ps``). It must
  be at least 16 characters, without spaces.
- It is compared in constant time: both sides are hashed (SHA-256) and the digests compared with
  ``hmac.compare_digest``, so neither the content nor the length leaks through timing.
- It is never logged or echoed: ``ApiToken`` redacts itself in ``repr``/``str``, error bodies
  never quote the presented value, and the server's access log does not print headers.
- No token configured: writes answer 503 (fail closed); no ``Authorization`` header: 401 with
  ``WWW-Authenticate: Bearer``; a wrong token: 403.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from quantum_trader.domain.errors import ConfigError

TOKEN_ENV: Final = "QT_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
TOKEN_FILE_ENV: Final = "QT_API_TOKEN_FILE"  # noqa: S105 - a variable name
MIN_TOKEN_LENGTH: Final = 16
_REDACTED: Final = "**********"
WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiToken:
    """A bearer token held in memory; it compares in constant time and never shows itself."""

    __slots__ = ("_digest",)

    def __init__(self, value: str) -> None:
        """Keep ``value``'s digest; ConfigError if it is shorter than 16 or has whitespace."""
        if len(value) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"the API token must be at least {MIN_TOKEN_LENGTH} characters")
        if any(c.isspace() for c in value):
            raise ConfigError("the API token must not contain whitespace")
        self._digest = hashlib.sha256(value.encode("utf-8")).digest()

    def matches(self, presented: str) -> bool:
        """True when ``presented`` is the token (constant time in both inputs)."""
        other = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(self._digest, other)

    def __repr__(self) -> str:
        """Redacted."""
        return f"ApiToken({_REDACTED!r})"

    __str__ = __repr__


def read_token_file(path: Path) -> ApiToken:
    """The token in ``path`` (surrounding whitespace and the final newline removed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the API token file {path}: {exc.strerror or exc}") from exc
    return ApiToken(text.strip())


def token_from_env(
    env: Mapping[str, str] | None = None, *, token_file: Path | None = None
) -> ApiToken | None:
    """The token from ``token_file``, ``$QT_API_TOKEN`` or ``$QT_API_TOKEN_FILE``, or None.

    ConfigError when more than one source is given, or the token is unusable.
    """
    env = os.environ if env is None else env
    value = env.get(TOKEN_ENV, "")
    file_name = str(token_file) if token_file is not None else env.get(TOKEN_FILE_ENV, "")
    if value and file_name:
        raise ConfigError(
            f"give the API token either in ${TOKEN_ENV} or in a file "
            f"(${TOKEN_FILE_ENV} / --token-file), not both"
        )
    if file_name:
        return read_token_file(Path(file_name))
    return ApiToken(value) if value else None


_bearer = HTTPBearer(auto_error=False, description="The API token (QT_API_TOKEN).")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request unless it carries the configured bearer token (module docstring)."""
    token: ApiToken | None = request.app.state.token
    if token is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"writes are disabled: no API token is configured (set {TOKEN_ENV} or "
            f"{TOKEN_FILE_ENV})",
        )
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this action needs the API token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not token.matches(credentials.credentials):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the API token is not valid")
