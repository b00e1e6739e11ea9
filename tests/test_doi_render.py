"""Free full text links and dated notices in the email, its text version and the archive copy."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from newsletter.checks import check_rendered
from newsletter.config import Settings
from newsletter.doi.record import CONCERN, CORRECTION, Update
from newsletter.doi.store import MetadataStore
from newsletter.issues import load_topics, read_issue
from newsletter.models import RenderedIssue
from newsletter.render import render_issue

PELUSO = "10.1037/pst0000165"  # the second article of the sample issue 2020-11
FREE = "https://repository.example/peluso.pdf"


def annotate(project: Path, **changes: object) -> None:
    store = MetadataStore(project / "issues" / ".metadata")
    record = store.get(PELUSO)
    assert record is not None
    store.put(dataclasses.replace(record, **changes))  # type: ignore[arg-type]


def render(settings: Settings) -> RenderedIssue:
    issue = read_issue(settings.issues_dir / "2020-11.md", load_topics(settings.topics_file))
    return render_issue(
        issue, templates_dir=settings.templates_dir, sender=settings.sender, links=settings.links
    )


def test_no_record_extras_no_change(settings: Settings) -> None:
    rendered = render(settings)
    assert "Free full text" not in rendered.html and "Free full text" not in rendered.text
    assert "nl-notice" not in rendered.html


def test_free_full_text_beside_the_doi(project: Path, settings: Settings) -> None:
    annotate(project, free_url=FREE)
    rendered = render(settings)
    assert f'href="{FREE}"' in rendered.html
    assert rendered.html.count("Free full text") == 1
    assert f"https://doi.org/{PELUSO}\nFree full text: {FREE}\n" in rendered.text
    assert check_rendered(rendered, path="issues/2020-11.md") == []


def test_dated_notices_link_to_the_correction_and_concern(
    project: Path, settings: Settings
) -> None:
    annotate(
        project,
        updates=(
            Update(CORRECTION, "10.1037/pst0000999", "2021-02-09"),
            Update(CONCERN, "10.1037/pst0000998", "2022-03-01"),
        ),
    )
    rendered = render(settings)
    assert "<strong>Correction</strong> (2021-02-09)" in rendered.html
    assert 'href="https://doi.org/10.1037/pst0000999"' in rendered.html
    assert "<strong>Expression of concern</strong> (2022-03-01)" in rendered.html
    assert "CORRECTION (2021-02-09): https://doi.org/10.1037/pst0000999" in rendered.text
    assert "EXPRESSION OF CONCERN (2022-03-01): https://doi.org/10.1037/pst0000998" in rendered.text
    assert check_rendered(rendered, path="issues/2020-11.md") == []


def test_a_free_url_that_is_no_web_address_is_dropped() -> None:
    from newsletter.doi.record import Record, with_unpaywall

    answer = {"is_oa": True, "best_oa_location": {"url": "javascript:alert(1)"}}
    assert with_unpaywall(Record(doi="10.1/x"), answer).free_url is None


def test_the_preview_lists_the_stored_records_findings(project: Path, settings: Settings) -> None:
    from newsletter.web.preview import Previewer, PreviewSource

    annotate(project, updates=(Update(CORRECTION, "10.1037/pst0000999", "2021-02-09"),))
    source = PreviewSource(
        issue_path=settings.issues_dir / "2020-11.md",
        topics_file=settings.topics_file,
        templates_dir=settings.templates_dir,
        sender=settings.sender,
        links=settings.links,
        display_path="issues/2020-11.md",
    )
    state = Previewer(source).state()
    assert [finding.code for finding in state.findings] == ["corrected"]
    assert "Correction" in state.html
