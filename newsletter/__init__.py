"""newsletter: a monthly research digest built from Markdown files in git.

The pipeline: ``issues.read_issue`` → ``render.render_issue`` → ``render.personalise``
→ ``delivery`` backends, driven by ``send.send_issue`` and the scheduler.
"""

__version__ = "0.1.0"
