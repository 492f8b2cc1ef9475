"""``genbel evaluate``: Recall@k with bootstrap CIs for any linker on any corpus and KB."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbel.errors import ConfigError, Errors
from genbel.eval.harness import EvaluationResult
from genbel.io import atomic_write_json, check_input_file, check_output, output_errors
from genbel.linkers.default import DEFAULT_LINKER

#: corpus formats of ``--input-format`` (``auto``: detected from the content)
CORPUS_INPUT_FORMATS: tuple[str, ...] = ("auto", "pubtator", "bigbio-json", "bigbio-jsonl")

console = Console()


def print_result(r: EvaluationResult) -> None:
    t = Table(title=f"{r.linker} on {r.corpus or 'corpus'} vs {r.kb}", show_lines=False)
    t.add_column("subset")
    t.add_column("mentions", justify="right")
    t.add_column("R@1", justify="right")
    t.add_column("R@5", justify="right")
    ci1, ci5 = r.ci95["recall_at_1"], r.ci95["recall_at_5"]
    t.add_row(
        "[bold]all[/]", str(r.n_mentions), f"[bold]{r.recall_at_1:.1f}[/] [{ci1[0]:.1f}, {ci1[1]:.1f}]",
        f"{r.recall_at_5:.1f} [{ci5[0]:.1f}, {ci5[1]:.1f}]",
    )
    for name, s in r.subsets.items():
        t.add_row(name, str(s.n_mentions), f"{s.recall_at_1:.1f}", f"{s.recall_at_5:.1f}")
    console.print(t)
    console.print(
        f"documents {r.n_documents} · NIL dropped {r.n_nil_dropped} · gold not in KB {r.n_gold_not_in_kb} · "
        f"abbreviation expansion {'on' if r.expand_abbreviations else 'off'} · KB augmented: "
        f"{', '.join(r.kb_augmented_with) or 'no'}"
    )
    console.print(
        f"setup {r.setup_seconds:.1f} s · linking {r.link_seconds:.2f} s · "
        f"{r.mentions_per_second:,.0f} mentions/s · "
        f"peak RSS {r.peak_rss_mb:,.0f} MB"
    )


def evaluate_cmd(
    corpus: Path = typer.Argument(..., help="PubTator or BigBio JSON/JSONL file with gold mentions."),
    input_format: str = typer.Option(
        "auto", "--input-format", help="Corpus format: auto|pubtator|bigbio-json|bigbio-jsonl."
    ),
    kb: str | None = typer.Option(
        None, "--kb",
        help="KB dictionary file or built KB directory (default: the bundled KB for shipped models).",
    ),
    kb_format: str | None = typer.Option(
        None, "--kb-format", help="medic|ctd|biosyn|umls|obo|jsonl|tsv|genbel"
    ),
    entity_types: str | None = typer.Option(
        None, "--entity-types", help="Comma-separated entity types to keep."
    ),
    linker: str | None = typer.Option(
        None, "--linker",
        help=f"exact|tfidf|sparse|dense|biosyn|generative|hybrid[:PATH] or an alias (default: "
        f"{DEFAULT_LINKER})",
    ),
    train_corpus: Path | None = typer.Option(
        None, "--train-corpus", help="Corpus for the seen/unseen concept split."
    ),
    augment_kb: list[Path] | None = typer.Option(
        None,
        "--augment-kb",
        help="Add this corpus's mention strings as synonyms of their gold concepts (repeatable).",
    ),
    abbreviations: bool = typer.Option(
        False,
        "--abbreviations/--no-abbreviations",
        help="Link the long form of abbreviations (Schwartz-Hearst).",
    ),
    k: int = typer.Option(5, "-k", min=1, help="Candidates per mention (R@k is reported for 1 and 5)."),
    n_bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% CI."),
    seed: int = typer.Option(0, "--seed"),
    json_out: Path | None = typer.Option(None, "--json-out", help="Write the result as JSON."),
    linker_options: list[str] | None = typer.Option(
        None, "--set", help="Linker option KEY=VALUE (repeatable), e.g. mode=constrain for hybrid."
    ),
    predictions_out: bool = typer.Option(
        False, "--with-predictions", help="Include per-mention predictions in JSON."
    ),
    hierarchy: bool = typer.Option(
        False, "--hierarchy", help="Also score top-1 predictions against the KB's hierarchy: exact, broader, "
        "narrower, sibling or unrelated, and the mean tree distance (JSON key 'hierarchy')."
    ),
) -> None:
    """Evaluate a linker: Recall@1/@5 with 95% bootstrap CIs, subsets, mentions/s and peak memory."""
    from genbel.data import load_corpus, load_documents, parse_entity_types
    from genbel.eval import evaluate
    from genbel.linkers.default import default_linker
    from genbel.linkers.registry import parse_options
    from genbel.pipeline import kb_spec_for, linker_path, load_augmented_kb

    kb = kb_spec_for(kb, linker, where="genbel evaluate")
    if json_out is not None:
        inputs = [corpus, linker_path(linker), train_corpus, *(augment_kb or [])]
        check_output(json_out, inputs, stores=[kb], option="--json-out")
    options = parse_options(linker_options)
    if input_format not in CORPUS_INPUT_FORMATS:
        raise ConfigError(
            Errors.E022.format(
                value=input_format, field="--input-format", known=", ".join(CORPUS_INPUT_FORMATS)
            )
        )
    docs = load_corpus(check_input_file(corpus, "corpus"), None if input_format == "auto" else input_format)
    kb_obj, augmented = load_augmented_kb(kb, kb_format, augment_kb or [])
    if hierarchy:  # before linking: E560 when the KB has no hierarchy
        from genbel.eval.hierarchy import check_hierarchy

        check_hierarchy(kb_obj)
    added = [f"{source} (+{n} names)" for source, n in augmented]
    train_docs = load_documents(train_corpus) if train_corpus else None
    t0 = time.perf_counter()
    lk = default_linker(kb_obj, linker, **options)
    setup = time.perf_counter() - t0
    result = evaluate(
        docs, kb_obj, lk, k=k, entity_types=parse_entity_types(entity_types), train_documents=train_docs,
        expand_abbreviations=abbreviations, n_bootstrap=n_bootstrap, seed=seed,
        keep_predictions=predictions_out or hierarchy, corpus_name=corpus.name,
        setup_seconds=setup,
    )
    result.kb_augmented_with = added
    print_result(result)
    stats = getattr(lk, "embedding_stats", None)  # dense linkers: how the setup got the name vectors
    if stats is not None:
        console.print(f"setup: {stats}")
    extra = {}
    if hierarchy:  # genbel evaluate --hierarchy (genbel.eval.hierarchy)
        from genbel.eval.hierarchy import hierarchy_of_result

        h = hierarchy_of_result(result, kb_obj)
        result.predictions = result.predictions if predictions_out else None
        shares = " · ".join(f"{c} {v:.1f}%" for c, v in h.shares.items())
        dist = "n/a" if h.mean_distance is None else f"{h.mean_distance:.2f} (errors {h.mean_distance_errors or 0:.2f})"
        console.print(f"hierarchy of {h.kb} ({h.concepts_with_parents:,} concepts with parents): {shares} · "
                      f"mean tree distance {dist} · gold outside hierarchy {h.n_gold_outside_hierarchy}")
        extra["hierarchy"] = h.model_dump()
    if json_out is not None:
        with output_errors(json_out, "--json-out"):
            atomic_write_json(json_out, {**result.model_dump(exclude_none=True), **extra})


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
