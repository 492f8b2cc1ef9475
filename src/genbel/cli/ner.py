"""``genbel train-ner`` (train the BIO tagger) and ``genbel evaluate-e2e`` (mention detection and
end-to-end linking scored on an annotated corpus)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbel.io import atomic_write_json, check_input_file, check_output, output_errors

console = Console()


def _load(paths: list[Path], entity_types: str | None) -> list:
    from genbel.data import LENIENT, filter_entity_types, load_corpus, parse_entity_types

    docs = [d for p in paths for d in load_corpus(check_input_file(p, "corpus"), **LENIENT)]
    types = parse_entity_types(entity_types)
    return filter_entity_types(docs, types) if types else docs


def train_ner_cmd(
    train: list[Path] = typer.Argument(..., help="Annotated training corpora (PubTator or BigBio)."),
    out: Path = typer.Option(..., "--out", help="Run directory (the tagger is written to OUT/tagger)."),
    dev: Path | None = typer.Option(None, "--dev", help="Dev corpus: scored each epoch, best epoch kept."),
    dev_docs: int | None = typer.Option(None, "--dev-docs", min=1, help="Use only the first N dev documents."),
    entity_types: str | None = typer.Option(None, "--entity-types", help="Comma-separated types to learn."),
    base: str = typer.Option("minilm", "--base", help="Base encoder (packaged alias or directory)."),
    epochs: int = typer.Option(8, "--epochs", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    lr: float = typer.Option(1e-4, "--lr", help="Learning rate of the trained encoder layers."),
    head_lr: float = typer.Option(1e-3, "--head-lr"),
    train_layers: int = typer.Option(6, "--train-layers", min=0,
                                      help="Top encoder layers trained (the others frozen and cached)."),
    lora_rank: int = typer.Option(0, "--lora-rank", min=0,
                                  help="Train LoRA adapters of this rank on every projection of every layer "
                                       "(0: train the top --train-layers layers instead)."),
    word_level: bool = typer.Option(False, "--word-level/--piece-level",
                                    help="Label the first word piece of each word (word labels)."),
    crf: bool = typer.Option(False, "--crf", help="A CRF layer over the word labels (needs --word-level)."),
    windows: bool = typer.Option(False, "--windows/--sentences",
                                 help="Read texts in windows of sentences (--max-chars) instead of sentences."),
    max_chars: int = typer.Option(600, "--max-chars", min=1, help="Longest sentence or window, in characters."),
    context_chars: int = typer.Option(0, "--context-chars", min=0,
                                      help="With --windows: overlap, characters of context on each side."),
    max_length: int = typer.Option(256, "--max-length", min=8, help="Longest window, in word pieces."),
    dev_fraction: float = typer.Option(0.0, "--dev-fraction", min=0.0, max=0.5,
                                       help="Hold out this share of the training documents (seeded) as the dev "
                                            "set, when the corpus has no dev split of its own to choose on."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue after the last finished epoch."),
) -> None:
    """Train a BIO mention tagger (a delta over the base encoder) on annotated corpora."""
    from genbel.training.ner import NERConfig, hold_out, train_ner

    check_output(out / "tagger", [*train, dev], option="--out")
    cfg = NERConfig(base=base, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr,
                    train_layers=train_layers, seed=seed, num_threads=threads, lora_rank=lora_rank,
                    word_level=word_level, crf=crf, windows=windows, max_chars=max_chars,
                    context_chars=context_chars, max_length=max_length)
    cfg.check()
    docs = _load(train, entity_types)
    dv = _load([dev], entity_types) if dev else None
    if dev_fraction:
        docs, held = hold_out(docs, dev_fraction, seed)
        dv = (dv or []) + held
    if dv is not None and dev_docs:
        dv = dv[:dev_docs]
    t0 = time.perf_counter()
    path = train_ner(docs, out, cfg, dev_docs=dv, resume=resume)
    console.print(f"tagger written to {path} ({time.perf_counter() - t0:.0f} s); "
                  f"use it with --detector tagger:{path}")


def _table(title: str, result: object) -> Table:
    t = Table(title=title)
    for col in ("type", "matching", "P", "R", "F1 [95% CI]", "predicted", "gold"):
        t.add_column(col, justify="left" if col in ("type", "matching") else "right")
    rows = [("all", result.scores)] + list(result.per_type.items())  # type: ignore[attr-defined]
    for typ, scores in rows:
        for m, s in scores.items():
            t.add_row(typ, m, f"{s.precision:.1f}", f"{s.recall:.1f}",
                      f"{s.f1:.1f} [{s.f1_ci[0]:.1f}, {s.f1_ci[1]:.1f}]", str(s.n_pred), str(s.n_gold))
    return t


def evaluate_e2e_cmd(
    corpus: Path = typer.Argument(..., help="Annotated corpus (PubTator or BigBio) to detect and link."),
    kb: str = typer.Option("default", "--kb", help="KB dictionary file, built KB directory or 'default'."),
    kb_format: str | None = typer.Option(None, "--kb-format"),
    detector: str = typer.Option(
        "combined", "--detector", help="dictionary | tagger[:PATH] | combined[:TAGGER_PATH]"),
    mode: str = typer.Option("primary-types", "--mode",
                             help="combined: primary-types (the tagger for its types, the dictionary for the "
                                  "others) | primary-first (tagger first) | dictionary-first | union | intersection"),
    train_corpus: list[Path] | None = typer.Option(
        None, "--train-corpus", help="Training corpus: its mentions join the dictionary (repeatable)."),
    linker: str = typer.Option("dense:default", "--linker", help="Linker spec, or 'none' to score NER only."),
    augment_kb: list[Path] | None = typer.Option(
        None, "--augment-kb", help="Add this corpus's mentions as synonyms for the linker (repeatable)."),
    entity_types: str | None = typer.Option(None, "--entity-types", help="Comma-separated gold types kept."),
    abbreviations: bool = typer.Option(
        True, "--abbreviations/--no-abbreviations", help="Tag short forms of detected long forms; link them "
        "by their long form."),
    linker_options: list[str] | None = typer.Option(None, "--set", help="Linker option KEY=VALUE."),
    n_bootstrap: int = typer.Option(1000, "--bootstrap", min=0),
    seed: int = typer.Option(0, "--seed"),
    json_out: Path | None = typer.Option(None, "--json-out", help="Write the scores as JSON."),
) -> None:
    """Detect mentions in a corpus, link them, and score NER (exact/overlap) and strict end-to-end F1."""
    from tqdm.auto import tqdm

    from genbel.eval.spans import end_to_end_scores, link_spans, ner_scores
    from genbel.linkers.registry import create_linker, parse_options
    from genbel.ner import create_detector
    from genbel.pipeline import load_augmented_kb

    if json_out is not None:
        check_output(json_out, [corpus, *(train_corpus or []), *(augment_kb or [])], stores=[kb],
                     option="--json-out")
    docs = _load([corpus], entity_types)
    train_docs = _load(list(train_corpus), entity_types) if train_corpus else None
    kb_plain, _ = load_augmented_kb(kb, kb_format, [])
    opts = {"training_docs": train_docs} if detector.startswith(("dictionary", "combined")) else {}
    if detector.startswith("combined"):
        opts.update(mode=mode, abbreviations=abbreviations)
    det = create_detector(detector, kb_plain, **opts)
    texts = [d.text for d in docs]
    t0 = time.perf_counter()
    preds = []
    with tqdm(total=len(texts), desc="detecting", unit="doc") as bar:
        for b in range(0, len(texts), 16):
            preds.extend(det.detect_batch(texts[b:b + 16]))
            bar.update(len(texts[b:b + 16]))
    detect_s = time.perf_counter() - t0
    if entity_types:  # spans of the groups of other types are not scored
        from genbel.data import parse_entity_types
        from genbel.ner.dictionary import entity_group

        groups = {entity_group(t) for t in parse_entity_types(entity_types) or []}
        preds = [[s for s in spans if entity_group(s.type) in groups] for spans in preds]
    ner = ner_scores(docs, preds, n_bootstrap=n_bootstrap, seed=seed)
    console.print(_table(f"NER: {det.name} on {corpus.name}", ner))
    chars = sum(len(t) for t in texts)
    console.print(f"detection {detect_s:.1f} s · {len(texts) / max(detect_s, 1e-9):.1f} docs/s · "
                  f"{chars / max(detect_s, 1e-9):,.0f} chars/s")
    payload: dict = {"corpus": str(corpus), "detector": det.describe(), "ner": ner.to_dict(),
                     "detect_seconds": detect_s}
    if linker != "none":
        kb_link, _ = load_augmented_kb(kb, kb_format, augment_kb or []) if augment_kb else (kb_plain, [])
        lk = create_linker(linker, kb_link, **parse_options(linker_options))
        t1 = time.perf_counter()
        with tqdm(total=len(docs), desc="linking", unit="doc") as bar:
            linked = link_spans(docs, preds, lk, expand_abbreviations=abbreviations, progress=bar.update)
        link_s = time.perf_counter() - t1
        e2e = end_to_end_scores(docs, preds, linked, kb_link, n_bootstrap=n_bootstrap, seed=seed)
        console.print(_table(f"end to end: {det.name} + {linker}", e2e))
        console.print(f"linking {link_s:.1f} s · end to end {len(docs) / max(detect_s + link_s, 1e-9):.1f} docs/s · "
                      f"NIL gold left out {e2e.notes['nil_gold_left_out']}")
        payload.update(linker=linker, end_to_end=e2e.to_dict(), link_seconds=link_s)
    if json_out is not None:
        with output_errors(json_out, "--json-out"):
            atomic_write_json(json_out, payload)


def register(app: typer.Typer) -> None:
    app.command("train-ner")(train_ner_cmd)
    app.command("evaluate-e2e")(evaluate_e2e_cmd)
