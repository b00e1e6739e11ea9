"""What a DOI points to: Crossref and Unpaywall records, kept in git under ``issues/.metadata/``.

``record`` normalises a Crossref work (and an Unpaywall answer) into a ``Record``; ``store`` keeps
one JSON file per DOI; ``client`` fetches them (polite User-Agent, timeouts, bounded retries,
base URLs from ``NEWSLETTER_CROSSREF_URL`` and ``NEWSLETTER_UNPAYWALL_URL``); ``compare`` turns
an issue's articles and their records into findings; ``cite`` formats a reference with
citeproc-py; ``export`` writes RIS and BibTeX. Nothing here reads the settings: callers pass the
metadata folder and the contact email.
"""
