"""Redaction: the one place that knows which fields are secret and how secrets look in text.

Everything that leaves the process (results files, reports, terminal errors, validation
messages) passes through here:

- ``redact(value)``: a JSON-like value with secret-named keys replaced by ``***`` and every
  string run through ``redact_text``. ``store.atomic_write_json`` applies it to every file.
- ``redact_text(text)``: URL credentials (``scheme://user:pass@host``, and ``user:pass@host``
  without a scheme, as in a Kafka bootstrap list) and ``password=…`` pairs (a DSN's query,
  a libpq key=value DSN, a ``--set`` override, quoted or not).
- ``redact_override("path=value")``: a ``--set`` as it may be recorded.
- ``shows_input(field)``: whether a validation error may echo the value it rejects.

Every pattern runs in linear time: text fields are user-sized (a description can be 100 KB),
and a backtracking pattern over them once hung a run at 100% CPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

MASK = "***"

# Field names whose whole value is a secret (matched anywhere in a key: "sasl_password").
SECRET_FIELDS = ("password", "passwd", "secret", "token", "credential", "sasl_plain", "api_key")
# Fields whose value carries credentials inside it (a DSN, a URL, a server list): their text
# is redacted, and a validation error never echoes them.
CREDENTIAL_FIELDS = ("dsn", "url", "servers", "bootstrap_servers")

_SECRET_KEY = re.compile("|".join(SECRET_FIELDS), re.I)
# `password=value` in free text. The key is a fixed alternation (no open-ended prefix that
# would rescan a long word from every position); a quoted value runs to its closing quote or,
# unclosed, to the end, so a failed match never rescans the rest of the text.
_SECRET_PAIR = re.compile(
    r"(?P<key>" + "|".join(SECRET_FIELDS) + r")s?(?P<eq>\s*=\s*)"
    r"""(?:'(?:[^'\\]|\\.?)*(?:'|$)|"(?:[^"\\]|\\.?)*(?:"|$)|[^\s&"]+)""",
    re.I | re.S,
)
_TOKEN = re.compile(r"\S+")
# Where a scheme-less user name can start (after `servers=`, `(`, a quote, a list comma).
_USER_START = "=,([{'\""


def is_secret_field(name: str) -> bool:
    """Whether a field (or dict key) holds a secret as its whole value."""
    return bool(_SECRET_KEY.search(name))


def shows_input(field: Iterable[str]) -> bool:
    """Whether an error about this field (its dotted path parts) may quote the rejected value."""
    return not any(is_secret_field(part) or part.lower() in CREDENTIAL_FIELDS for part in field)


def redact(value: Any) -> Any:
    """``value`` with secret-named keys masked and credentials removed from every string."""
    if isinstance(value, dict):
        return {
            k: (MASK if is_secret_field(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    """``text`` without URL credentials and ``password=…`` values (linear time)."""
    if "=" in text:
        text = _SECRET_PAIR.sub(lambda m: f"{m.group('key')}{m.group('eq')}{MASK}", text)
    if "@" in text:
        text = _TOKEN.sub(lambda m: _redact_userinfo(m.group()), text)
    return text


def _redact_userinfo(token: str) -> str:
    at = token.rfind("@")
    if at < 0:
        return token
    scheme_end = token.find("://")
    if 0 <= scheme_end < at:
        # Everything up to the last "@" is user information: a password may hold "/" or "@".
        start = scheme_end + 3
        return token if start == at else f"{token[:start]}{MASK}{token[at:]}"
    # No scheme ("user:secret@host:9092"): credentials only when a password is there.
    colon = token.find(":", 0, at)
    if colon < 0:
        return token
    start = max(token.rfind(c, 0, colon) for c in _USER_START) + 1
    return f"{token[:start]}{MASK}{token[at:]}"


def redact_override(override: str) -> str:
    """A ``--set PATH=VALUE`` as it may be recorded: a secret field's value masked."""
    path, sep, value = override.partition("=")
    if not sep:
        return redact_text(override)
    if any(is_secret_field(part) for part in path.split(".")):
        return f"{path}={MASK}"
    return f"{path}={redact_text(value)}"


def without_user_info(message: str, url: str) -> str:
    """``message`` (about ``url``) without the user information of ``url``: a client library's
    error may quote the user, the password or both, whatever the URL's shape."""
    user_info = url.partition("://")[2].rpartition("@")[0]
    for secret in sorted({user_info, user_info.partition(":")[2]}, key=len, reverse=True):
        if secret:
            message = message.replace(secret, MASK)
    return redact_text(message)


def secret_values(text: str) -> list[str]:
    """The secrets ``redact_text`` would remove from ``text`` (to scrub client errors that
    quote them in other forms), longest first."""
    found: set[str] = set()
    for match in _SECRET_PAIR.finditer(text):
        value = match.group()[match.end("eq") - match.start() :]
        found.add(value)
        if len(value) >= 2 and value[0] in "'\"":
            found.add(value[1:-1] if value[-1] == value[0] else value[1:])
    for token in _TOKEN.findall(text):
        redacted = _redact_userinfo(token)
        if redacted != token:
            head = redacted.index(MASK)
            userinfo = token[head : token.rfind("@")]
            found.add(userinfo.partition(":")[2])
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if s and s != MASK), key=len, reverse=True)


__all__ = [
    "CREDENTIAL_FIELDS",
    "MASK",
    "SECRET_FIELDS",
    "is_secret_field",
    "redact",
    "redact_override",
    "redact_text",
    "secret_values",
    "shows_input",
]
