"""Web pages: the local preview (preview.py) and the public app (subscribe, unsubscribe, archive)."""
