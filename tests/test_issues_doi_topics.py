"""DOIs (parse_doi, doi_url) and the topic vocabulary (load_topics, canonical_topic, closest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import ConfigError
from newsletter.issues import canonical_topic, closest, doi_url, load_topics, parse_doi

REPO = Path(__file__).resolve().parent.parent
TOPICS = load_topics(REPO / "issues" / "topics.yaml")
SICI = "10.1002/(SICI)1097-4679(199901)55:1<1::AID-JCLP1>3.0.CO;2-J"


# --- DOIs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "doi"),
    [
        ("10.1002/cpp.2509", "10.1002/cpp.2509"),
        ("  doi:10.1002/cpp.2509 ", "10.1002/cpp.2509"),
        ("DOI: 10.1002/cpp.2509", "10.1002/cpp.2509"),
        ("https://doi.org/10.1002/cpp.2509", "10.1002/cpp.2509"),
        ("http://doi.org/10.1002/cpp.2509", "10.1002/cpp.2509"),
        ("https://dx.doi.org/10.1002/cpp.2509", "10.1002/cpp.2509"),
        ("http://dx.doi.org/10.1002/cpp.2509", "10.1002/cpp.2509"),
        ("10.1000.10/abc", "10.1000.10/abc"),
        (SICI, SICI),
        ("doi:" + SICI, SICI),
        ("https://doi.org/10.1002/(SICI)1097-4679(199901)55:1%3C1::AID-JCLP1%3E3.0.CO;2-J", SICI),
    ],
)
def test_parse_doi_accepts(raw: str, doi: str) -> None:
    assert parse_doi(raw) == doi


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "10.1002",
        "10.1002/",
        "11.1002/x",
        "10./x",
        "10.a/x",
        "doi:",
        "https://example.org/10.1/x",
        "10.1002/a\nb",
        "10.1002/a\x00b",
    ],
)
def test_parse_doi_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="DOI"):
        parse_doi(raw)


@pytest.mark.parametrize(
    ("doi", "url"),
    [
        ("10.1002/cpp.2509", "https://doi.org/10.1002/cpp.2509"),
        (SICI, "https://doi.org/10.1002/(SICI)1097-4679(199901)55:1%3C1::AID-JCLP1%3E3.0.CO;2-J"),
        ('10.1000/a b#c?d%e"f', "https://doi.org/10.1000/a%20b%23c%3Fd%25e%22f"),
        ("10.1000/{x}|^[y]`\\z", "https://doi.org/10.1000/%7Bx%7D%7C%5E%5By%5D%60%5Cz"),
        ("10.1000/é", "https://doi.org/10.1000/%C3%A9"),
        ("10.1000/a-b_c.d~e!$&'*+,=@", "https://doi.org/10.1000/a-b_c.d~e!$&'*+,=@"),
    ],
)
def test_doi_url_encodes_reserved_characters(doi: str, url: str) -> None:
    assert doi_url(doi) == url


def test_doi_url_round_trips_through_parse_doi() -> None:
    for doi in (SICI, '10.1000/a b#c?d%e"f', "10.1000/é/x"):
        assert parse_doi(doi_url(doi)) == doi


# --- topics --------------------------------------------------------------------------------------------


def test_topics_file_holds_the_seed_list() -> None:
    assert len(TOPICS) == 36
    assert "ALL Topics (clear)" not in TOPICS
    assert "Adherance" in TOPICS
    assert "Attendance, Attrition, and Drop-Out" in TOPICS
    assert TOPICS[-1] == "Treatment Length and Frequency"


def test_canonical_and_closest_topic() -> None:
    assert canonical_topic("  trauma AND/or ptsd ", TOPICS) == "Trauma and/or PTSD"
    assert canonical_topic("Trauma", TOPICS) is None
    assert closest("Depresion", TOPICS) == "Depression and Depressive Symptoms"
    assert closest("Alliance", TOPICS) == "Alliance and Therapeutic Relationship"
    assert closest("Therapist Factor", TOPICS) == "Therapist Factors"
    assert closest("zzzz", TOPICS) is None
    assert closest("x" * 500, TOPICS) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- A\n- [b\n", r"t\.yaml:3: not valid YAML"),
        ("a: b\n", r"t\.yaml:1: expected a list of topic names"),
        ("", r"t\.yaml:1: expected a list of topic names"),
        ("- A\n- B\n- a\n", r't\.yaml:3: topic "a" is listed twice \(first on line 1\)'),
        ("- A\n-\n", r"t\.yaml:2: a topic must be a non-empty name"),
        ("- A\n- [x]\n", r"t\.yaml:2: a topic must be a non-empty name"),
        ("- A; B\n", r"t\.yaml:1: a topic name cannot hold ';'"),
    ],
)
def test_broken_topics_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_topics(Path("t.yaml"))
    assert caught.value.exit_code == 2


def test_missing_topics_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_topics(tmp_path / "topics.yaml")
