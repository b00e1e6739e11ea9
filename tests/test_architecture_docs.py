"""docs/architecture.md draws the import-linter contracts of pyproject.toml: the two cannot drift."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "importlinter"
]["contracts"]


def _contracts(kind: str) -> list[dict[str, object]]:
    return [contract for contract in CONTRACTS if contract["type"] == kind]


def test_the_diagram_lists_the_layers_in_the_contracts_order() -> None:
    (layers,) = _contracts("layers")
    expected = [re.sub(r"[()]", "", str(layer)) for layer in layers["layers"]]
    diagram = DOC.split("```")[1]
    drawn = [line.split("  ")[0].strip() for line in diagram.strip().splitlines()]
    assert drawn == expected


def test_every_protected_library_is_in_the_table_with_its_one_importer() -> None:
    for contract in _contracts("protected"):
        for library in contract["protected_modules"]:
            rows = [line for line in DOC.splitlines() if line.startswith("| `")]
            (row,) = [line for line in rows if f"`{library}`" in line.split("|")[1]]
            for importer in contract["allowed_importers"]:
                assert str(importer).replace(".", "/") in row, (library, importer)
