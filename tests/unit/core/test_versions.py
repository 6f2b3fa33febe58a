"""Image references and versions (core/versions.py) and addresses (core/hosts.py): each said once, table-driven."""

import pytest

from controller.core import hosts, live, spec, versions


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("postgres:16-alpine", ("postgres", "16-alpine", None)),
        ("postgres", ("postgres", None, None)),
        ("localhost:5000/pg", ("localhost:5000/pg", None, None)),
        ("localhost:5000/pg:15", ("localhost:5000/pg", "15", None)),
        ("pg@sha256:abc", ("pg", None, "sha256:abc")),
        ("supabase/postgres:15.1.0.147", ("supabase/postgres", "15.1.0.147", None)),
    ],
)
def test_split_image(image, expected):
    assert versions.split_image(image) == expected


@pytest.mark.parametrize(
    ("declared", "tag", "agree"),
    [
        ("16", "16-alpine", True),
        ("16", "15-alpine", False),
        ("15", "15.1.0.147", True),
        ("10.11", "10.11", True),
        ("10.11", "10.6", False),
        ("7", "7.2-alpine", True),
        ("16.2", "16", True),
    ],
)
def test_version_agreement(declared, tag, agree):
    revealed = versions.tag_version(tag)
    assert revealed is not None
    assert versions.agree(declared, revealed) is agree


@pytest.mark.parametrize(
    ("version", "minimum", "meets"),
    [
        ("16.2", "14", True),
        ("16.2", "16", True),
        ("10.6.3", "10.11", False),
        ("10.11.9", "10.11", True),
        ("10.11.9-MariaDB-1", "10.11", True),
        ("16", "16.1", True),  # a declared major can meet a finer minimum
        ("7.0.15", "7.2", False),
    ],
)
def test_at_least(version, minimum, meets):
    assert versions.at_least(version, minimum) is meets


def test_major_and_numbers():
    assert versions.major(True, "10.11.9") == "10.11" and versions.major(False, "16.2") == "16"
    assert versions.numbers("v15.4 (Debian 15.4-1)") == [15, 4, 15, 4, 1]
    assert versions.agree("16", "") and not versions.agree("15", "16.1")  # never a ValueError


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("postgres", "postgres"),
        ("postgres:5432", "postgres"),
        ("[::1]:5432", "::1"),
        ("postgres://app:pw@db:5432/app", "db"),
        ("postgres://app:p@ss#w/rd?@DB:5432/app?sslmode=require", "db"),  # no part of the password, ever
        ("redis://:secret@redis:6379/0", "redis"),
        ("mysql://u@[fd00::5]:3306/x", "fd00::5"),
        ("postgres://db", "db"),
    ],
)
def test_host_of(value, host):
    assert hosts.host_of(value) == host


@pytest.mark.parametrize(
    ("publish", "host_ip", "every"),
    [
        ("5432:5432", "", True),
        ("0.0.0.0:5432:5432", "0.0.0.0", True),
        ("[::]:5432:5432", "::", True),
        ("127.0.0.1:5432:5432", "127.0.0.1", False),
        ("[::1]:5432:5432", "::1", False),
    ],
)
def test_every_interface_is_one_rule_for_declared_and_live_ports(publish, host_ip, every):
    assert spec.parse_port(publish).public is every
    assert live.Port(5432, "tcp", host_ip, 5432).public is every
    assert live.Port(5432, "tcp", f"[{host_ip}]" if ":" in host_ip else host_ip, 5432).public is every
    assert hosts.every_interface(host_ip) is every
