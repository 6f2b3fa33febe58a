"""Image references and version numbers: how a tag reveals a version, and how two versions compare. Said once here,
for the checks, the diff, the health findings, the audit and the Docker adapter."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"^(\d+(?:\.\d+)*)")
_NUMBERS = re.compile(r"\d+")


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference; a registry port is not a tag."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    slash, colon = image.rfind("/"), image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :], digest
    return image, None, digest


def tag_version(tag: str) -> str | None:
    """The version a tag reveals (`16-alpine` -> `16`, `15.1.0.147` -> `15.1.0.147`), or None."""
    m = _DIGITS.match(tag)
    return m.group(1) if m else None


def numbers(version: str) -> list[int]:
    """The numeric components of a version as a server or a tag writes it (`10.11.9-MariaDB` -> [10, 11, 9])."""
    return [int(x) for x in _NUMBERS.findall(version)]


def agree(declared: str, revealed: str) -> bool:
    """`16` agrees with `16.2`, and `15` with `15.1.0.147`: the shorter is a prefix of the longer."""
    a, b = numbers(declared), numbers(revealed)
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def at_least(version: str, minimum: str) -> bool:
    """`16.2` meets `14` and `16`; `10.6.3` does not meet `10.11`: compared on the components the minimum names.
    A declared major (`16`) meets a finer minimum (`16.1`) when it could: only the components both name count."""
    have, want = numbers(version), numbers(minimum)
    n = min(len(have), len(want))
    return have[:n] >= want[:n]


def major(two_part: bool, version: str) -> str:
    """The part of a version that makes a major release: `16` of 16.2, `7` of 7.0.15; `10.11` of MariaDB 10.11.9
    (`two_part`: engines whose majors have two components)."""
    parts = version.split(".")
    return ".".join(parts[: 2 if two_part else 1])
