"""The env file by compose's documented rules (the examples of its "Syntax for environment files" page, table-driven),
and only a regular file of a bounded size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.adapters import envfile
from controller.core.errors import DesiredStateError

COMPOSE_EXAMPLES = [
    ("VAR=VAL", "VAL"),
    ('VAR="VAL"', "VAL"),
    ("VAR='VAL'", "VAL"),
    ("VAR=VAL # comment", "VAL"),
    ("VAR=VAL# not a comment", "VAL# not a comment"),
    ('VAR="VAL # not a comment"', "VAL # not a comment"),
    ('VAR="VAL" # comment', "VAL"),
    ("VAR='$OTHER'", "$OTHER"),
    ("VAR='${OTHER}'", "${OTHER}"),
    ("VAR='Let\\'s go!'", "Let's go!"),
    ('VAR="{\\"hello\\": \\"json\\"}"', '{"hello": "json"}'),
    ('VAR="some\\tvalue"', "some\tvalue"),
    ("VAR='some\\tvalue'", "some\\tvalue"),
    ("VAR=some\\tvalue", "some\\tvalue"),
]
MORE = [
    ('K="v # x" # c', "v # x"),  # the red-team's case: was `"v`
    ("export VAR=VAL", "VAL"),
    ("VAR=", ""),
    ("VAR=  spaced value  ", "spaced value"),
    ("VAR=a=b=c", "a=b=c"),
    ('VAR="back\\\\slash"', "back\\slash"),
    ("VAR=${NOT_INTERPOLATED}", "${NOT_INTERPOLATED}"),
    ('VAR="${NOT_INTERPOLATED_EITHER}"', "${NOT_INTERPOLATED_EITHER}"),
]


@pytest.mark.parametrize(("line", "value"), COMPOSE_EXAMPLES + MORE)
def test_one_line(line: str, value: str):
    assert envfile.parse(line + "\n", "e.env") == ({line.split("=", 1)[0].removeprefix("export "): value}, [])


def test_a_double_quoted_value_may_span_lines_and_comments_are_skipped():
    text = '# a comment\n\nA="line one\nline two"\nB=after\n'
    assert envfile.parse(text, "e.env") == ({"A": "line one\nline two", "B": "after"}, [])


def test_problems_name_the_line_never_the_value():
    text = 'GOOD=1\nnot a line\nOPEN=\'never closed\nTRAIL="x" y\nLAST=2\n'
    values, problems = envfile.parse(text, "e.env")
    assert values == {"GOOD": "1", "LAST": "2"}
    assert [(p.line, p.message) for p in problems] == [
        (2, "not a KEY=VALUE line"),
        (3, "OPEN: the quote is never closed"),
        (4, "TRAIL: unexpected text after the closing quote"),
    ]


def test_only_a_regular_file_of_bounded_size(tmp_path: Path):
    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo)
    with pytest.raises(DesiredStateError, match="not a regular file"):
        envfile.read(fifo)  # would block forever if it were opened
    link = tmp_path / "zero.env"
    link.symlink_to("/dev/zero")
    with pytest.raises(DesiredStateError, match="not a regular file"):
        envfile.read(link)
    big = tmp_path / "big.env"
    big.write_text("A=1\n" * 100)
    with pytest.raises(DesiredStateError, match="more than the 64 an env file may have"):
        envfile.read(big, limit=64)
    assert envfile.read(big)[0] == {"A": "1"}


def test_a_line_import_writes_is_read_back_as_the_same_value_whatever_it_holds():
    """A red team had import write values its own reader rejected: a newline, a trailing backslash."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from controller.adapters import envfile

    tricky = ["ends\\", "two\nlines", "cr\r\n", "tab\there", "it's", 'say "hi"', "$HOME ${X} $$", "a #b", " pad ", ""]
    for value in tricky:
        assert envfile.parse(envfile.line("K", value), "f") == ({"K": value}, []), repr(value)

    @settings(max_examples=300, deadline=None)
    @given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
    def roundtrip(value: str) -> None:
        assert envfile.parse(envfile.line("K", value), "f") == ({"K": value}, []), repr(value)

    roundtrip()
