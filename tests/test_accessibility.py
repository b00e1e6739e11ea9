"""Accessibility as a check: link text, skipped headings, alt text and contrast (WCAG 2.1 AA).

The contrast and heading checks read the email as readers get it (after premailer); they are run
on the real templates (every sample issue must pass) and on a template made bad on purpose in a
copy of the project. The Markdown checks run the real ``newsletter check`` on real files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.checks import accessibility, check_rendered
from newsletter.checks.accessibility import contrast, parse_color
from newsletter.cli import main
from newsletter.config import Settings
from newsletter.issues import load_topics, read_issue
from newsletter.render import render_issue
from newsletter.values.linktext import link_text_problem

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted(path.name for path in (REPO / "issues").glob("*.md"))
CODES = ("link-text", "heading-skip", "low-contrast", "missing-alt", "empty-alt")


@pytest.fixture(autouse=True)
def _in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)


def run(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args])


# --- the formula ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "ratio"),
    [
        ("#000000", "#ffffff", 21.0),
        ("#ffffff", "#ffffff", 1.0),
        ("#767676", "#ffffff", 4.54),  # the lightest grey that passes AA on white
        ("#777777", "#ffffff", 4.48),  # and the first that fails
        ("#0000ee", "#ffffff", 9.4),  # a browser's link blue
        ("#ff0000", "#ffffff", 4.0),
    ],
)
def test_contrast_ratio(first: str, second: str, ratio: float) -> None:
    one, two = parse_color(first), parse_color(second)
    assert one is not None and two is not None
    assert round(contrast(one, two), 2) == ratio
    assert round(contrast(two, one), 2) == ratio


@pytest.mark.parametrize(
    ("value", "rgb"),
    [
        ("#fff", (255, 255, 255)),
        ("#1D5A6E !important", (29, 90, 110)),
        ("rgb(10, 20, 30)", (10, 20, 30)),
        ("rgba(10,20,30,0.5)", (10, 20, 30)),
        ("rgba(10,20,30,0)", None),
        ("#11223300", None),
        ("transparent", None),
        ("Grey", (128, 128, 128)),
        ("inherit", None),
        ("#12", None),
    ],
)
def test_parse_color(value: str, rgb: tuple[int, int, int] | None) -> None:
    assert parse_color(value) == rgb


@pytest.mark.parametrize(
    ("text", "href", "problem"),
    [
        ("click here", "https://example.org/a", 'says only "click here"'),
        ("Here.", "https://example.org/a", 'says only "Here."'),
        ("Read more »", "https://example.org/a", 'says only "Read more »"'),
        ("link", "https://example.org/a", 'says only "link"'),
        ("https://example.org/a", "https://example.org/a", "is a bare address"),
        ("www.example.org", "https://www.example.org", "is a bare address"),
        ("  ", "https://example.org/a", "has no text"),
        ("https://doi.org/10.1037/pst0000165", "https://doi.org/10.1037/pst0000165", None),
        ("the full meta-analysis", "https://example.org/a", None),
        ("Unsubscribe", "https://example.org/u", None),
        ("editor@example.org", "mailto:editor@example.org", None),
    ],
)
def test_link_text_rule(text: str, href: str, problem: str | None) -> None:
    assert link_text_problem(text, href) == problem


# --- the email --------------------------------------------------------------------------------


def test_inline_colours_inheritance_and_hidden_text() -> None:
    html = (
        "<html><head><style>p { color: #eee }</style><title>T</title></head>"
        '<body style="background-color:#ffffff">'
        '<div style="display:none;color:#fefefe">the preheader, hidden</div>'
        '<div style="font-size:0px"><p style="font-size:16px;color:#333">dark enough</p></div>'
        '<table bgcolor="#1d5a6e"><tr><td style="color:#2a6f86">\n\nteal on teal</td></tr></table>'
        '<p style="color:#999999">grey on white</p>'
        '<p style="color:#999999">the same pair again</p>'
        '<h1 style="color:#949494">large grey heading</h1>'
        '<p><a href="https://example.org/a">default blue link</a></p>'
        "</body></html>"
    )
    report = accessibility.read(html)
    found = [(low.line, low.text, round(low.ratio, 2), low.needed) for low in report.contrast]
    assert found == [(3, "teal on teal", 1.36, 4.5), (3, "grey on white", 2.85, 4.5)]
    # #949494 on white is 3.03:1: enough for 32px text (3:1), not for body text


@pytest.mark.parametrize("size", ["1.2.3px", ".px", "..em", "1..5pt"])
def test_a_malformed_font_size_is_ignored_not_a_crash(size: str) -> None:
    # a template's typo: the size is inherited, so grey body text is still judged as body text
    html = (
        f'<body><p style="font-size:{size};color:#999999">grey</p>'
        '<p style="font-size:.5em">x</p></body>'
    )
    found = [(low.text, low.needed) for low in accessibility.read(html).contrast]
    assert found == [("grey", 4.5)]


def test_headings_that_skip_a_level() -> None:
    html = "<body><h1>a</h1><h2>b</h2><h3>c</h3><h2>d</h2><h4>e</h4>\n<h6>f</h6></body>"
    skipped = [(h.line, h.level, h.previous) for h in accessibility.read(html).headings]
    assert skipped == [(1, 4, 2), (2, 6, 4)]


def test_link_texts_in_the_email() -> None:
    html = (
        '<body><a href="https://example.org/1">Click here</a>'
        '<a href="https://example.org/2"><img src="x.png" alt="The study\'s results"></a>'
        '<a href="https://example.org/3"><img src="x.png"></a>'
        '<a href="https://example.org/4">https://example.org/4</a></body>'
    )
    links = [(link.href[-1], link.problem) for link in accessibility.read(html).links]
    assert links == [
        ("1", 'says only "Click here"'),
        ("3", "has no text"),
        ("4", "is a bare address"),
    ]


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_issue_passes_its_own_checks(project: Path, sample: str) -> None:
    """The real templates and issues: `newsletter check` clean, no accessibility finding."""
    result = run(project, "check", "--offline", f"issues/{sample}")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("0 errors, 0 warnings"), result.output


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_real_templates_judged_on_real_colours(settings: Settings, sample: str) -> None:
    """Not clean by default: the real email's text is judged, pair by pair, and passes."""
    issue = read_issue(settings.issues_dir / sample, load_topics(settings.topics_file))
    rendered = render_issue(
        issue, templates_dir=settings.templates_dir, sender=settings.sender, links=settings.links
    )
    judged: list[float] = []
    original = accessibility.contrast

    def spy(first: tuple[int, int, int], second: tuple[int, int, int]) -> float:
        judged.append(original(first, second))
        return judged[-1]

    accessibility.contrast = spy  # type: ignore[assignment]
    try:
        findings = check_rendered(rendered, path=sample)
    finally:
        accessibility.contrast = original  # type: ignore[assignment]
    assert len(judged) > 20  # every visible text of the email, not none
    assert min(judged) >= 4.5
    assert [finding for finding in findings if finding.code in CODES] == []


def _spoil_template(project: Path, raw_html: str) -> None:
    """Put raw HTML at the top of the email's body, whatever the template looks like."""
    template = project / "templates" / "email" / "base.mjml.j2"
    text = template.read_text(encoding="utf-8")
    body = re.search(r"<mj-body[^>]*>", text)
    assert body is not None
    spoiled = f"{text[: body.end()]}<mj-raw>{raw_html}</mj-raw>{text[body.end() :]}"
    template.write_text(spoiled, encoding="utf-8")


def test_a_low_contrast_template_is_reported(project: Path) -> None:
    _spoil_template(
        project,
        '<div style="background-color:#ffffff"><p style="color:#b0b0b0;font-size:14px">'
        "Faint words</p>"
        '<p><a href="https://example.org/more" style="color:#0b6488">read more</a></p>'
        "<h1>A</h1><h3>C</h3></div>",
    )
    result = run(project, "check", "--offline", "2021-01")
    assert result.exit_code == 0, result.output  # warnings: the issue can still go out
    lines = [line for line in result.output.splitlines() if line.startswith("issues/")]
    assert len(lines) == 3, result.output
    assert re.fullmatch(
        r"issues/2021-01\.md:0: warning: email\.html line \d+: text 'Faint words' is #b0b0b0 on "
        r"#ffffff, contrast 2\.17:1; WCAG AA needs 4\.5:1 \(change the template's colours\) "
        r"\[low-contrast\]",
        lines[2],
    ), lines
    assert re.fullmatch(
        r"issues/2021-01\.md:0: warning: email\.html line \d+: the link to "
        r"'https://example\.org/more' says only \"read more\": say where it leads, e\.g\. the "
        r"article's or page's name \[link-text\]",
        lines[0],
    ), lines
    assert "<h3> follows <h1>, skipping a level" in lines[1]
    ignored = run(project, "check", "--offline", "--ignore", "low-contrast", "2021-01")
    assert "low-contrast" not in ignored.output and "(1 ignored)" in ignored.output


# --- the issue's Markdown -------------------------------------------------------------------------


def test_link_text_and_alt_text_in_the_issue_file(project: Path) -> None:
    path = project / "issues" / "2021-01.md"
    lines = path.read_text(encoding="utf-8").split("\n")
    title = next(n for n, line in enumerate(lines) if line.startswith("## "))
    summary = next(n for n in range(title, len(lines)) if not lines[n].strip()) + 1
    lines[summary + 1] += (
        " [full text is here](https://example.org/a), [here](https://example.org/b)."
    )
    lines[summary + 2] += " <https://example.org/c> ![](https://example.org/chart.png)"
    lines[summary + 3] += " ![Burnout scores by profession](https://example.org/chart.png)"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = run(project, "check", "--offline", "2021-01")
    assert result.exit_code == 0, result.output
    advice = "screen readers read links out of context, so say where it leads ([the full study](…))"
    assert result.output.splitlines()[:3] == [
        f'issues/2021-01.md:{summary + 2}: warning: the link to "https://example.org/b" says '
        f'only "here": {advice} [link-text]',
        f'issues/2021-01.md:{summary + 3}: warning: the link to "https://example.org/c" is a '
        f"bare address: {advice} [link-text]",
        f'issues/2021-01.md:{summary + 3}: warning: the image "https://example.org/chart.png" has '
        "no alt text: say what it shows, ![a chart of the results](https://example.org/chart.png) "
        "[empty-alt]",
    ]
    # the file's findings name the line; the email's repeats of them are not shown again
    assert result.output.splitlines()[3] == "1 file checked: 0 errors, 3 warnings"
