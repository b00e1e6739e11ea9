"""The project's database: subscribers, their events, the send ledger (SQLAlchemy Core).

``schema`` declares the tables, ``migrations`` creates and upgrades them by name,
``engine.open_database`` returns a migrated engine for a URL. Nothing here is SQLite-only.
"""
