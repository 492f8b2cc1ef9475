"""``genbel kb``: build, inspect and query knowledge bases.

* ``genbel kb build SOURCE --out DIR [--kb-format F] [--dedupe] [--group G] [--name N]``
* ``genbel kb info KB`` — counts, semantic groups, fingerprint
* ``genbel kb lookup KB NAME`` — concepts having NAME among their names (after normalisation)

``KB`` is a directory written by ``kb build``, any source ``load_kb`` reads (pass ``--kb-format``
when it cannot be detected), or ``default`` (the bundled MEDIC KB). Errors are :class:`~genbel.errors.GenbelError`; ``genbel`` prints
them on one line and exits with code 2.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

kb_app = typer.Typer(help="Build, inspect and query knowledge bases.", no_args_is_help=True)

_FORMAT_HELP = "medic|ctd|biosyn|umls|obo|jsonl|tsv|genbel (detected when omitted)"


def _console() -> Console:
    return Console(highlight=False)


def _summary_table(title: str, kb, meta: dict | None = None, extra: dict[str, str] | None = None) -> Table:
    from collections import Counter

    s = kb.summary()
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value")
    t.add_row("name", str(s["name"]))
    t.add_row("concepts", f"{s['concepts']:,}")
    t.add_row("names", f"{s['names']:,}")
    t.add_row("alternate ids", f"{s['alt_ids']:,}")
    t.add_row("with definition", f"{s['with_definition']:,}")
    groups = Counter(g for c in kb for g in c.semantic_groups)
    no_group = sum(1 for c in kb if not c.semantic_groups)
    glist = [f"{g} ({n:,})" for g, n in sorted(groups.items())]
    if no_group:
        glist.append(f"none ({no_group:,})")
    t.add_row("semantic groups", ", ".join(glist) or "none")
    t.add_row("fingerprint", s["fingerprint"])
    if meta:
        t.add_row("store version", str(meta.get("format_version")))
        if meta.get("created"):
            t.add_row("created", str(meta["created"]))
        if meta.get("source"):
            t.add_row("source", str(meta["source"]))
    for k, v in (extra or {}).items():
        t.add_row(k, v)
    return t


@kb_app.command("build")
def build(
    source: Path = typer.Argument(..., help="Vocabulary file or directory (UMLS META, KB directory)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the KB to (replaced atomically)."),
    fmt: str | None = typer.Option(None, "--kb-format", help=_FORMAT_HELP),
    dedupe: bool = typer.Option(False, "--dedupe", help="GenBioEL synonym de-duplication across concepts."),
    group: str | None = typer.Option(
        None, "--group", "-g",
        help="Semantic group for concepts without one (name, code such as DISO, or TUI).",
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="KB name (default: from the format or file)."),
) -> None:
    """Build a KB directory (kb.sqlite + meta.json) from SOURCE and print a summary."""
    from genbel.io import check_output, output_errors
    from genbel.kb import detect_kb_format, load_kb, read_meta

    check_output(out, [source], kind="dir")
    t0 = time.perf_counter()
    used = fmt or detect_kb_format(source)
    kb = load_kb(source, used, name=name, group=group, dedupe=False)
    removed = kb.deduplicate_synonyms() if dedupe else None
    t1 = time.perf_counter()
    with output_errors(out):
        kb.save(out, source=f"{source} ({used})")
    t2 = time.perf_counter()
    extra = {"format": used, "output": str(out), "time": f"load {t1 - t0:.2f} s · save {t2 - t1:.2f} s"}
    if removed is not None:
        extra["dedupe removed"] = f"{removed:,} names"
    _console().print(_summary_table(f"KB built from {source}", kb, read_meta(out), extra))


@kb_app.command("info")
def info(
    kb_path: Path = typer.Argument(..., metavar="KB", help="KB directory, vocabulary file or 'default'."),
    fmt: str | None = typer.Option(None, "--kb-format", help=_FORMAT_HELP),
) -> None:
    """Counts, semantic groups and fingerprint of a KB."""
    from genbel.kb import is_kb_dir, open_kb, read_meta

    kb = open_kb(kb_path, fmt)
    meta = read_meta(kb_path) if is_kb_dir(kb_path) else None
    _console().print(_summary_table(f"KB {kb_path}", kb, meta))


@kb_app.command("lookup")
def lookup(
    kb_path: Path = typer.Argument(..., metavar="KB", help="KB directory or vocabulary file."),
    name: str = typer.Argument(..., help="A name; compared after lowercasing and stripping punctuation."),
    fmt: str | None = typer.Option(None, "--kb-format", help=_FORMAT_HELP),
) -> None:
    """Concepts that have NAME among their names (after normalisation)."""
    from genbel.kb import normalize_name, open_kb

    kb = open_kb(kb_path, fmt)
    ids = kb.lookup(name)
    console = _console()
    if not ids:
        console.print(f"no concept found for {name!r} (normalised: {normalize_name(name)!r}) in KB {kb.name}")
        raise typer.Exit(code=1)
    t = Table(title=f"{len(ids)} concept(s) named {name!r} in {kb.name}", title_justify="left")
    t.add_column("id", no_wrap=True)
    t.add_column("preferred name")
    t.add_column("alternate ids")
    t.add_column("groups")
    t.add_column("names", justify="right")
    for cid in ids:
        c = kb[cid]
        t.add_row(c.id, c.name, ", ".join(c.alt_ids), ", ".join(c.semantic_groups), str(len(c.names)))
    console.print(t)


def register(app: typer.Typer) -> None:
    """Add the ``kb`` sub-command group to the main ``genbel`` app."""
    app.add_typer(kb_app, name="kb")
