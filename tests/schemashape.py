"""The shape of a live database (tables, columns, keys, indexes), comparable across databases.

Two databases built different ways (migrations from scratch, an upgraded old file,
``metadata.create_all`` from ``store/schema.py``) must give equal shapes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def _type(column: dict[str, Any]) -> str:
    kind = column["type"]
    generic = type(kind).__name__.upper()
    for wide, narrow in (("TIMESTAMP", "DATETIME"), ("VARCHAR", "VARCHAR"), ("INTEGER", "INTEGER")):
        if generic.startswith(wide):
            generic = narrow
    length = getattr(kind, "length", None)
    return f"{generic}({length})" if length else generic


def _default(value: object) -> str | None:
    """Server defaults as text without the quoting and casts each database adds."""
    if value is None:
        return None
    text = str(value).split("::")[0]
    return text.strip("'\"")


def shape(engine: sa.Engine) -> dict[str, Any]:
    """Every table but the migrations' own bookkeeping, described in comparable terms."""
    inspector = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        columns = {
            c["name"]: (_type(c), bool(c["nullable"]), _default(c.get("default")))
            for c in inspector.get_columns(table)
        }
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        indexes = set()
        for index in inspector.get_indexes(table):
            columns_of = tuple(index["column_names"])
            if index.get("unique"):
                uniques.add(columns_of)  # PostgreSQL reports some uniques as unique indexes
            else:
                indexes.add(columns_of)
        foreign = {
            (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
            for f in inspector.get_foreign_keys(table)
        }
        tables[table] = {
            "columns": columns,
            "primary_key": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "unique": sorted(uniques),
            "indexes": sorted(indexes),
            "foreign_keys": sorted(foreign),
        }
    return tables
