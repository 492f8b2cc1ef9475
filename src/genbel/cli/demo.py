"""``genbel demo``: link the bundled example abstracts against the bundled KB with the default linker."""

from __future__ import annotations

import sys
import time

import typer
from rich.console import Console
from rich.table import Table

from genbel.linkers.default import DEFAULT_LINKER

console = Console(width=None if sys.stdout.isatty() else 150)


def demo_cmd(
    linker: str | None = typer.Option(
        None, "--linker", help=f"Any linker spec or alias, e.g. generative (default: {DEFAULT_LINKER})."
    ),
    k: int = typer.Option(1, "-k", min=1, help="Candidates shown per mention."),
) -> None:
    """Link the mentions of a few bundled example abstracts and print mention -> concept."""
    from genbel.data import example_documents
    from genbel.kb import default_kb
    from genbel.linkers.default import default_linker

    t0 = time.perf_counter()
    kb = default_kb()
    lk = default_linker(kb, linker)
    console.print(
        f"KB [bold]{kb.name}[/]: {len(kb):,} concepts, {kb.n_names():,} names · linker [bold]"
        f"{getattr(lk, 'spec', lk.name)}[/] · ready in {time.perf_counter() - t0:.1f} s"
    )
    docs = example_documents()
    t1 = time.perf_counter()
    pairs = lk.link_documents(docs, k=max(k, 1), expand_abbreviations=True)
    link_seconds = time.perf_counter() - t1
    by_doc: dict[str, list] = {}
    for q, cands in pairs:
        by_doc.setdefault(q.doc_id or "", []).append((q, cands))
    n_ok = n = 0
    for doc in docs:
        title = doc.passages[0].text[0] if doc.passages else doc.document_id
        t = Table(title=f"PMID {doc.document_id}: {title[:90]}", title_justify="left", expand=False)
        t.add_column("mention")
        t.add_column("linked as")
        t.add_column("concept id")
        t.add_column("concept name")
        t.add_column("matched name")
        t.add_column("score", justify="right")
        t.add_column("gold", justify="center")
        for q, cands in by_doc.get(doc.document_id, []):
            gold = set(q.gold_ids)
            for i, c in enumerate(cands[:k] or [None]):
                if c is None:
                    t.add_row(q.surface, q.text, "-", "(no candidate)", "", "", "✗")
                    n += 1
                    continue
                ok = bool(kb.ids_of(c.concept_id) & gold) or bool(
                    {kb.resolve_id(g) for g in gold} & {c.concept_id}
                )
                if i == 0:
                    n += 1
                    n_ok += ok
                t.add_row(
                    q.surface if i == 0 else "", q.text if (i == 0 and q.text != q.surface) else "",
                    c.concept_id, c.name, c.matched if c.matched != c.name else "", f"{c.score:.3f}",
                    "[green]✓[/]" if ok else "[red]✗[/]",
                )
        console.print(t)
    console.print(
        f"top-1 agrees with the gold annotation for {n_ok}/{n} mentions · linked in {link_seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
