"""A PostgreSQL dump is code replayed as the superuser: the scan that runs before any restore or verification refuses
every psql meta-command the dump holds outside quoted text, wherever it stands in a line (psql runs them anywhere),
and none that sits inside a literal, an identifier, a dollar-quoted body, a comment or COPY data."""

from __future__ import annotations

import pytest

from controller.core.databases.postgres import PgReplay

HEAD = b"SET standard_conforming_strings = on;\n"


def refused(dump: bytes) -> list[str]:
    scan = PgReplay(None)
    for i in range(0, len(dump), 7):  # in small chunks: state carries across them
        scan.feed(dump[i : i + 7])
    scan.finish()
    return scan.refused


@pytest.mark.parametrize(
    "evil",
    [
        b"\\! touch /tmp/x\n",
        b"   \\! touch /tmp/x\n",  # after blanks
        b"SELECT 1; \\! touch /tmp/x\n",  # mid-line
        b"SELECT 'a''b'; \\o |sh\n",  # after a literal with a doubled quote
        b"SELECT E'it\\'s'; \\! id\n",  # after an E-string whose quote is escaped by a backslash
        b'CREATE TABLE "we""ird" (a int); \\! id\n',  # after a quoted identifier
        b"SELECT $$x$$; \\! id\n",  # after a dollar-quoted literal
        b"SELECT 1 /* a */ ; \\! id\n",  # after a block comment
        b"COPY t (a) FROM stdin;\n1\n\\.\n\\! id\n",  # right after COPY data ends
        b"SELECT 'line one\nline two'; \\! id\n",  # after a literal that spans lines
    ],
)
def test_a_meta_command_outside_quoted_text_is_refused_wherever_it_stands(evil: bytes) -> None:
    assert refused(HEAD + evil), evil


@pytest.mark.parametrize(
    "fine",
    [
        b"INSERT INTO t VALUES ('C:\\\\path\\! not a command');\n",  # in a standard literal
        b"SELECT E'tab\\there';\n",
        b'CREATE TABLE "a\\b" (x int);\n',  # in an identifier
        b"CREATE FUNCTION f() RETURNS int AS $body$\nSELECT 1; -- \\! no\n\\! still the body\n$body$ LANGUAGE sql;\n",
        b"-- a comment \\! is not run\nSELECT 1;\n",
        b"/* block \\! /* nested \\! */ still */ SELECT 1;\n",
        b"COPY t (a) FROM stdin;\nx\\\\y\n\\\\! data\n\\.\n",  # COPY data is data
        b"SELECT $1::int, a$b FROM t;\n",  # not dollar quotes
        b"\\connect app\n",  # pg_dumpall's own
    ],
)
def test_backslashes_in_quoted_text_comments_and_copy_data_are_not_commands(fine: bytes) -> None:
    assert refused(HEAD + fine) == [], fine
