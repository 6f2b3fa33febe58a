"""A string type for secret values that never prints itself: repr, str and every serialisation redact it."""

from __future__ import annotations

import dataclasses
import hmac
import re
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

REDACTED = "***"


class Secret:
    """A resolved secret value. `reveal()` is the only way to read it; `ref` is the `${VAR}` it came from."""

    __slots__ = ("_value", "ref")

    def __init__(self, value: str, ref: str = "") -> None:
        self._value = value
        self.ref = ref

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.ref or REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pickling would be a way to print it
        raise TypeError("a Secret cannot be pickled")

    @classmethod
    def _validate(cls, value: Any) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return cls(value)
        raise ValueError("a secret must be a string")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _v: REDACTED),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$",
            "description": "a secret: a ${VAR} reference, resolved from the env file or the environment",
        }


def reveal(value: str | Secret) -> str:
    """The plain value of a string or a secret, for the few places (the engine call) that need it."""
    return value.reveal() if isinstance(value, Secret) else value


def collect(value: Any) -> set[str]:
    """Every revealed secret value inside a model or a dataclass, for the output scrubber."""
    out: set[str] = set()
    if isinstance(value, Secret):
        out.add(value.reveal())
    elif isinstance(value, dict):
        for v in value.values():
            out |= collect(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            out |= collect(v)
    elif hasattr(value, "__pydantic_fields__"):
        for name in type(value).__pydantic_fields__:
            out |= collect(getattr(value, name))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):  # spec.DesiredState and other values
        for f in dataclasses.fields(value):
            out |= collect(getattr(value, f.name))
    return out


def scrub(text: str, values: set[str], min_length: int = 4) -> str:
    """A last safety net before anything is printed: every known secret value becomes `***`.

    Values shorter than `min_length` are left alone (scrubbing "ab" would mangle every word); they are still never
    printed by design, since secrets are a type that redacts itself.
    """
    for v in sorted(values, key=len, reverse=True):
        if len(v) >= min_length:
            text = text.replace(v, REDACTED)
    return text


# What holds a credential by the shape of its value, whatever its key is called (import, endpoints in output):
# a URL's password (scheme://user:PASSWORD@host), a libpq/ODBC `password=...` pair, a secret in a query string.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:(?P<pw>[^@/?#\s]+)@")
_PAIR_PASSWORD = re.compile(r"(?i)(?:^|[\s;])(?:password|passwd|pwd)\s*=\s*(?P<q>['\"]?)(?P<pw>[^'\"\s;]+)(?P=q)")
_QUERY_SECRET = re.compile(
    r"(?i)[?&](?:password|passwd|pwd|pass|token|access_token|secret|api_key|apikey|auth|sslpassword)=(?P<pw>[^&#\s]+)"
)
# keys that hold a credential though the format's secret rule (PASSWORD, SECRET, TOKEN, KEY) does not name them
CREDENTIAL_KEY = re.compile(r"(?i)PASS|PWD|AUTH|CREDENTIAL")


def credentials_in(value: str) -> list[str]:
    """The credentials inside `value` by its shape, longest first (none: nothing that looks like one)."""
    found = {m.group("pw") for rx in (_URL_PASSWORD, _PAIR_PASSWORD, _QUERY_SECRET) for m in rx.finditer(value)}
    return sorted(found, key=len, reverse=True)


def redact_credentials(text: str) -> str:
    """`text` as it may be printed: a credential found in it by its shape (an engine's `tcp://u:pw@host`,
    `?token=`, a `password=` pair) is `***`."""
    out = text
    for secret in credentials_in(text):
        out = out.replace(secret, REDACTED)
    return out
