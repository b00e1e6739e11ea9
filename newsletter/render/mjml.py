"""MJML → responsive HTML: the only module that imports the ``mjml`` package."""

from __future__ import annotations

import contextlib
import io

from newsletter.errors import RenderError


def to_html(source: str) -> str:
    """Compile an MJML document; its errors (and its crashes on bad markup) become ``RenderError``."""
    from mjml import mjml_to_html  # on first render: commands that render nothing never load it

    noise = io.StringIO()
    try:
        # mjml prints "No matching component" to stdout instead of raising: capture it.
        with contextlib.redirect_stdout(noise):
            result = mjml_to_html(source)
    except KeyError as err:
        raise RenderError(f"MJML: unknown element <{err.args[0]}>") from err
    except Exception as err:  # mjml raises bare ValueError/AssertionError/… on malformed input
        raise RenderError(f"MJML could not compile the email: {err}") from err
    problems = [*result.errors, *noise.getvalue().splitlines()]
    if problems:
        raise RenderError("MJML: " + "; ".join(str(problem) for problem in problems))
    return str(result.html)
