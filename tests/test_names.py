"""The one name rule, and the CSV export guard that must give every name back exactly."""

from __future__ import annotations

import io
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.errors import InvalidNameError
from newsletter.models import SubscriberStatus
from newsletter.names import MAX_NAME_LENGTH, name_problem, refused_character
from newsletter.store.csv_io import Outcome, escape_cell, export_csv, import_csv, unescape_cell
from newsletter.store.engine import open_database
from newsletter.store.subscribers import SubscriberStore, clean_name

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def store(tmp_path: Path) -> SubscriberStore:
    return SubscriberStore(open_database(f"sqlite:///{tmp_path / 'subscribers.db'}"))


# --- the rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "what"),
    [
        ("\t", "a tab, U+0009"),
        ("\n", "a line break (line feed), U+000A"),
        ("\r", "a line break (carriage return), U+000D"),
        ("\x00", "a NUL character, U+0000"),
        ("\x1b", "a control character, U+001B"),
        ("\x7f", "a control character, U+007F"),
        ("\x85", "a line break (next line), U+0085"),
        ("\x9b", "a control character, U+009B"),
        ("\u2028", "a line break (line separator), U+2028"),
        ("\u2029", "a line break (paragraph separator), U+2029"),
        ("\u202e", "a text-direction control, U+202E"),
        ("\u2067", "a text-direction control, U+2067"),
        ("\ud800", "a lone surrogate, U+D800"),
    ],
)
def test_control_characters_are_refused_and_located(char: str, what: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        clean_name(f"Ann{char}Lee")
    assert caught.value.problem == (
        f"contains {what}, at character 4; a name is one line of plain text"
    )
    assert str(caught.value) == f"the name {caught.value.problem}"


@pytest.mark.parametrize(
    "name",
    [
        "=?utf-8?b?DQo=?=",  # looks like an encoded word: it is text, kept as typed
        "Zoë Ö'Brien",
        'Chloé "Coco" Gagné',
        "'t Hart",
        "عزیز\u200cی",  # ZWNJ: part of Persian spelling
        "Ann \u200fLee",  # RLM: mixed-direction names
        "👩\u200d🔬 Ada",  # ZWJ emoji sequence
        "李小龍",
        "a" * MAX_NAME_LENGTH,
    ],
)
def test_plain_text_names_are_kept_exactly(name: str) -> None:
    assert clean_name(name) == name


def test_spaces_are_trimmed_and_collapsed_before_the_length_counts() -> None:
    assert clean_name("  Ann \u00a0  Lee ") == "Ann Lee"
    assert clean_name("a" + " " * 300 + "b") == "a b"
    assert clean_name("   ") is None and clean_name(None) is None
    with pytest.raises(InvalidNameError, match="is 201 characters long; at most 200"):
        clean_name("a" * 201)
    with pytest.raises(InvalidNameError, match="takes 760 bytes as UTF-8; at most 735 fit"):
        clean_name("😀" * 190)


@given(st.text())
def test_the_rule_and_the_cleaning_agree(raw: str) -> None:
    """A cleaned name passes the rule and cleans to itself; a refusal says why in one line."""
    try:
        name = clean_name(raw)
    except InvalidNameError as err:
        assert "\n" not in err.problem and "\r" not in err.problem
        return
    assert name is None or (name_problem(name) is None and clean_name(name) == name)


# --- the CSV export guard ----------------------------------------------------------------------


@given(st.text())
def test_the_export_guard_is_undone_exactly(value: str) -> None:
    escaped = escape_cell(value)
    assert unescape_cell(escaped) == value
    assert not escaped.startswith(FORMULA_STARTS)


def test_names_that_start_with_an_apostrophe_survive_export_and_import(
    store: SubscriberStore, tmp_path: Path
) -> None:
    names = ["'=Smith", "''=Smith", "=Smith", "'t Hart", "'", "''", "-Ann", "@home", "+1 Bob"]
    for number, name in enumerate(names):
        store.add(f"reader{number}@example.org", name=name)
    exported = io.StringIO()
    export_csv(store, exported)
    lines = exported.getvalue().splitlines()
    assert "reader0@example.org,''=Smith,active" in lines[1]
    assert "reader3@example.org,'t Hart,active" in lines[4]  # nothing to guard: left alone
    (tmp_path / "list.csv").write_text(exported.getvalue(), encoding="utf-8")
    fresh = SubscriberStore(open_database(f"sqlite:///{tmp_path / 'fresh.db'}"))
    report = import_csv(fresh, tmp_path / "list.csv", status=SubscriberStatus.ACTIVE)
    assert report.counts[Outcome.ADDED] == len(names)
    assert [p.name for p in fresh.iter_all()] == names


# --- the CSV import: refused per line, the rest imported ---------------------------------------


def test_an_import_refuses_control_character_names_line_by_line(
    store: SubscriberStore, tmp_path: Path
) -> None:
    store.add("known@example.org", name="Known")
    path = tmp_path / "names.csv"
    path.write_text(
        "email,name\n"
        "tab@example.org,Ann\tLee\n"  # line 2
        "fine@example.org,Fine Person\n"  # line 3
        'known@example.org,"Kno\nwn"\n'  # lines 4-5: a rename to a two-line name
        "bidi@example.org,Eve\u202eevil\n"  # line 6
        "literal@example.org,=?utf-8?b?DQo=?=\n",  # line 7: text, kept
        encoding="utf-8",
    )
    report = import_csv(store, path, status=SubscriberStatus.ACTIVE)
    by_line = {row.line: (row.outcome, row.reason) for row in report.rows}
    assert by_line[2] == (
        Outcome.INVALID,
        "name: contains a tab, U+0009, at character 4; a name is one line of plain text",
    )
    assert by_line[3][0] is Outcome.ADDED and by_line[7][0] is Outcome.ADDED
    assert by_line[4][0] is Outcome.INVALID and by_line[4][1].startswith("name: contains a line")
    assert by_line[6][0] is Outcome.INVALID and "U+202E, at character 4" in by_line[6][1]
    assert {(p.email, p.name) for p in store.iter_all()} == {
        ("known@example.org", "Known"),
        ("fine@example.org", "Fine Person"),
        ("literal@example.org", "=?utf-8?b?DQo=?="),
    }


def test_the_refused_characters_are_exactly_the_documented_ones() -> None:
    """Categories Cc, Cs, Zl, Zp and the bidi embeddings, overrides and isolates; nothing else."""
    bidi = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        expected = unicodedata.category(char) in {"Cc", "Cs", "Zl", "Zp"} or char in bidi
        assert refused_character(char) is expected, hex(code)
