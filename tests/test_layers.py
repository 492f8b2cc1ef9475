"""The package's layers point one way (docs/architecture.md): no import from a lower layer to a higher
one, hence no import cycle between subpackages. Every ``import``/``from … import`` of ``genbel`` in the
source counts, also those inside functions (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "genbel"

#: layer of each top-level module or subpackage of genbel; a module may import its own layer or lower ones
LAYERS: dict[str, int] = {
    "_version": 0, "errors": 0, "io": 0, "deps": 0, "textio": 0,
    "models": 1,
    "kb": 2,
    "data": 3, "trie": 3,
    "encoders": 4, "generation": 4,
    "linkers": 5, "ner": 5,
    "eval": 6, "training": 6, "pipeline": 6, "annotate": 6,
    "cli": 7, "integrations": 7, "serve": 7, "distributed": 7,
    "__init__": 8,
}


def _unit(module: str) -> str:
    """``genbel.linkers.dense`` → ``linkers``; ``genbel`` → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "genbel":
            out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "genbel"]
    return out


def test_every_unit_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert units - set(LAYERS) == set(), "give the new module a layer in LAYERS and docs/architecture.md"


def test_imports_point_down() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        here = _unit(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
        for module, line in _imports(path):
            there = _unit(module)
            if there == "__init__" and module == "genbel" and here == "__init__":
                continue
            if LAYERS[there] > LAYERS[here]:
                bad.append(f"{path.relative_to(SRC)}:{line}: {here} (layer {LAYERS[here]}) imports {module} "
                           f"(layer {LAYERS[there]})")
    assert bad == []


def test_no_cycle_within_a_layer() -> None:
    deps: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        here = _unit(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
        deps.setdefault(here, set()).update(_unit(m) for m, _ in _imports(path) if _unit(m) != here)
    both = sorted({tuple(sorted((a, b))) for a, bs in deps.items() for b in bs if a in deps.get(b, set())})
    assert both == []
