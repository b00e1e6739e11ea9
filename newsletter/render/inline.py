"""CSS inlining for email clients that ignore <style>: the only module that imports ``premailer``."""

from __future__ import annotations

import logging
import re

from newsletter.errors import RenderError

DOCTYPE = "<!DOCTYPE html>"
_DOCTYPE_RE = re.compile(r"^\s*<!doctype html>\s*", re.IGNORECASE)


def inline_css(html: str) -> str:
    """Move CSS rules into ``style`` attributes; media queries (responsive, dark mode) stay in <style>."""
    from premailer import Premailer  # on first render: commands that render nothing never load it

    body = _DOCTYPE_RE.sub("", html)
    premailer = Premailer(
        base_url=None,  # never rewrite links: the placeholders must reach personalise() intact
        disable_link_rewrites=True,
        allow_network=False,
        allow_loading_external_files=False,
        keep_style_tags=False,  # leftovers that cannot be inlined (@media) are kept anyway
        strip_important=False,  # dark-mode rules need !important to beat the inlined colours
        exclude_pseudoclasses=True,
        # cssutils logs every property it does not know (mso-*, -webkit-*) as an error: noise.
        cssutils_logging_level=logging.CRITICAL,
        disable_validation=True,
    )
    try:
        inlined = premailer.transform(body, pretty_print=False)
    except Exception as err:  # lxml and cssutils raise many types on malformed markup or CSS
        raise RenderError(f"CSS inlining failed: {err}") from err
    return f"{DOCTYPE}\n{inlined.rstrip()}\n"
