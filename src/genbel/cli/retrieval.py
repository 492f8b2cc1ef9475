"""Retrieval commands: ``genbel train-retriever`` (SapBERT / BioSyn), ``genbel build-index``,
``genbel export-retriever``, and the cross-encoder reranker's ``genbel train-reranker`` and
``genbel export-reranker``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from genbel.cli.nproc import NPROC_OPTION, relaunch
from genbel.io import check_output, output_errors
from genbel.pipeline import linker_path

console = Console(stderr=True)


def _set_threads(threads: int | None) -> None:
    """torch CPU threads for dense encoders (a base install without torch has nothing to set)."""
    import importlib.util

    if threads and importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(threads)


def train_retriever(
    method: str = typer.Option(
        "recipe", "--method",
        help="recipe (the shipped model's: SapBERT-style then one BioSyn epoch, planned to fit "
        "--max-minutes), sapbert (synonym metric learning only) or biosyn (only).",
    ),
    kb: str = typer.Option(..., "--kb", help="KB dictionary file or built KB directory."),
    kb_format: str | None = typer.Option(
        None, "--kb-format", help="medic|ctd|biosyn|umls|obo|jsonl|tsv|genbel"
    ),
    train: list[str] = typer.Option([], "--train", help="Training corpus file or NAME:SPLIT (repeatable)."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Folder of registry datasets (for NAME:SPLIT)."
    ),
    entity_types: str | None = typer.Option(
        None, "--entity-types", help="Comma-separated entity types to train on (e.g. Disease)."
    ),
    augment: bool = typer.Option(
        True, "--augment/--no-augment",
        help="Index a KB augmented with the training mentions "
        "(the BioSyn/SapBERT protocol; training uses the plain KB).",
    ),
    encoder: str = typer.Option("minilm", "--encoder", help="Initial encoder: a local checkpoint or alias."),
    out: Path = typer.Option(..., "--out", help="Run directory (config, log, checkpoints, encoder/)."),
    max_minutes: float | None = typer.Option(
        30.0, "--max-minutes",
        help="recipe: wall-time budget; the stage-1 steps are cut to fit it on this machine (0: no budget).",
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="recipe: stage-1 (SapBERT-style) steps when the budget allows (600)."
    ),
    epochs: int = typer.Option(1, "--epochs", help="sapbert/biosyn: epochs (the recipe's BioSyn stage: 1)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Pairs (sapbert, 64) or mentions (biosyn, 16)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (sapbert 2e-5, biosyn 1e-5)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="sapbert: stop after this many steps."),
    loss: str = typer.Option("infonce", "--loss", help="sapbert: infonce or multi-similarity."),
    kb_pairs: int | None = typer.Option(
        None, "--kb-pairs", help="sapbert: at most this many KB synonym pairs."
    ),
    kb_concepts: str = typer.Option(
        "all", "--kb-concepts", help="sapbert: all or mentioned (KB pairs of training concepts)."
    ),
    topk: int = typer.Option(20, "--topk", help="biosyn: candidates per mention."),
    freeze: int = typer.Option(
        0, "--freeze-layers", help="Freeze the embeddings + first N layers (-1: train all)."
    ),
    mention_repeats: int = typer.Option(
        1, "--mention-repeats", help="sapbert: uses of each mention pair per epoch."
    ),
    pooling: str | None = typer.Option(None, "--pooling", help="mean or cls (default: the encoder's)."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last epoch checkpoint in --out."),
    index: bool = typer.Option(True, "--index/--no-index", help="Also build the KB index into OUT/index."),
    threads: int | None = typer.Option(
        None, "--threads",
        help="torch CPU threads (default: torch's, one per core; 1 is fastest on a busy machine).",
    ),
    init_index: Path | None = typer.Option(
        None,
        "--init-index",
        help="biosyn: a dense index of this KB built with --encoder (skips one KB embedding).",
    ),
    nproc: int | None = NPROC_OPTION,
) -> None:
    """Train a dense retriever (SapBERT-style or BioSyn) on CPU, saved for ``--linker dense|biosyn:OUT``."""
    t_start = time.perf_counter()
    relaunch(nproc)
    from genbel.errors import ConfigError, Errors
    from genbel.linkers.dense import load_retriever
    from genbel.linkers.dense_index import index_vectors
    from genbel.training.distributed import setup
    from genbel.training.retriever import BiosynConfig, SapbertConfig, train_biosyn, train_sapbert

    main = setup("cpu").is_main  # under torchrun: rank 0 reports and builds the index

    check_output(out, [*train, encoder, init_index], stores=[kb], kind="run")
    _set_threads(threads)
    if method not in ("recipe", "sapbert", "biosyn"):
        raise ConfigError(
            Errors.E022.format(value=method, field="--method", known="recipe, sapbert, biosyn")
        )
    _check_method_options(method, {
        "--epochs": epochs != 1, "--batch-size": batch_size is not None, "--lr": lr is not None,
        "--max-steps": max_steps is not None, "--loss": loss != "infonce", "--kb-pairs": kb_pairs is not None,
        "--kb-concepts": kb_concepts != "all", "--freeze-layers": freeze != 0,
        "--mention-repeats": mention_repeats != 1, "--pooling": pooling is not None,
        "--init-index": init_index is not None, "--steps": steps is not None,
        "--max-minutes": max_minutes != 30.0, "--topk": topk != 20,
    })
    from genbel.data import filter_entity_types, load_documents, parse_entity_types
    from genbel.kb import augment_kb as add_mentions
    from genbel.kb import open_kb

    documents = load_documents(train, data_dir) if train else []
    types = parse_entity_types(entity_types)
    if types and documents:
        documents = filter_entity_types(documents, types)
    # train against the plain dictionary (BioSyn's train_dictionary): with the training mentions in
    # it, every training mention would find itself and the loss would teach nothing
    kb_obj = open_kb(kb, kb_format)
    index_kb = kb_obj
    if augment and documents:
        index_kb = open_kb(kb, kb_format)
        n = add_mentions(index_kb, documents)
        if main:
            console.print(f"the index KB is augmented with {n} training mention strings")
    with _resume_hint(out, main):
        t0 = time.perf_counter()
        planned: list = []  # the recipe's (plan, time it was printed), for its ETA
        if method == "recipe":
            run = _train_recipe(kb_obj, index_kb, documents, encoder, out, max_minutes=max_minutes, steps=steps,
                                topk=topk, seed=seed, resume=resume, index=index, planned=planned)
        elif method == "sapbert":
            cfg = SapbertConfig(epochs=epochs, max_steps=max_steps, loss=loss, max_kb_pairs=kb_pairs,
                                kb_concepts=kb_concepts, pooling=pooling, seed=seed, freeze_layers=freeze,
                                mention_repeats=mention_repeats)
            if batch_size:
                cfg.batch_size = batch_size
            if lr:
                cfg.lr = lr
            run = train_sapbert(kb_obj, encoder, out, documents=documents or None, config=cfg, resume=resume)
        else:
            if not documents:
                raise ConfigError(Errors.E360)
            cfg_b = BiosynConfig(epochs=epochs, topk=topk, pooling=pooling, seed=seed, freeze_layers=freeze)
            if batch_size:
                cfg_b.batch_size = batch_size
            if lr:
                cfg_b.lr = lr
            vectors = None
            if init_index:
                from genbel.linkers.nametable import read_index_meta

                meta_fp = read_index_meta(init_index, kind="dense").get("kb_fingerprint")
                built_for = index_kb if meta_fp == index_kb.fingerprint() else None
                vectors = index_vectors(init_index, kb_obj, built_for)
            run = train_biosyn(kb_obj, documents, encoder, out, config=cfg_b, initial_name_vectors=vectors,
                               resume=resume)
        if not main:
            return
        console.print(f"trained {method} retriever in {time.perf_counter() - t0:.0f} s → {run}")
        if index:
            t1 = time.perf_counter()
            linker = load_retriever(run, index_kb, progress=True, cache_dir=True)
            linker.save(run / "index")
            console.print(f"index for KB {index_kb.name} ({index_kb.fingerprint()}) built in "
                          f"{time.perf_counter() - t1:.0f} s → {run / 'index'}; "
                          f"{time.perf_counter() - t0:.0f} s in all")
        if planned:
            from genbel.training.recipe import eta_line

            plan, t_plan = planned[0]
            now = time.perf_counter()
            console.print(eta_line(plan, now - t_plan, now - t_start, resumed=resume), soft_wrap=True)


@contextmanager
def _resume_hint(out: Path, main: bool) -> Iterator[None]:
    """On Ctrl-C, tell the user how to continue (checkpoints are written atomically)."""
    try:
        yield
    except KeyboardInterrupt:
        if main:
            console.print(f"interrupted: the same command with --resume continues from the last checkpoint in {out}",
                          soft_wrap=True)
        raise


# the options each --method reads (the others would be silently ignored: E492 says so instead)
_METHOD_OPTIONS = {
    "recipe": {"--steps", "--max-minutes", "--topk"},
    "sapbert": {"--epochs", "--batch-size", "--lr", "--max-steps", "--loss", "--kb-pairs", "--kb-concepts",
                "--freeze-layers", "--mention-repeats", "--pooling"},
    "biosyn": {"--epochs", "--batch-size", "--lr", "--topk", "--freeze-layers", "--pooling", "--init-index"},
}
_WHY = {
    "recipe": "its settings are the shipped model's, sized by --max-minutes; --steps sets stage 1",
    "sapbert": "one SapBERT-style stage, without a plan or a BioSyn stage",
    "biosyn": "one BioSyn stage, without a plan or a SapBERT-style stage",
}


def _check_method_options(method: str, given: dict[str, bool]) -> None:
    """E492 when an option that ``method`` does not read was given (``given``: option → set by the user)."""
    from genbel.errors import ConfigError, Errors

    extra = [opt for opt, set_ in given.items() if set_ and opt not in _METHOD_OPTIONS[method]]
    if extra:
        other = [m for m in _METHOD_OPTIONS if m != method and set(extra) <= _METHOD_OPTIONS[m]]
        raise ConfigError(Errors.E492.format(options=", ".join(extra), method=method, why=_WHY[method],
                                             other=" or ".join(other) if other else "sapbert or biosyn"))


def _train_recipe(kb_obj, index_kb, documents, encoder: str, out: Path, *, max_minutes: float | None,
                  steps: int | None, topk: int, seed: int, resume: bool, index: bool, planned: list) -> Path:
    """``--method recipe``: plan (printed with its ETA; appended to ``planned`` with the time), then both stages."""
    from genbel.errors import ConfigError, Errors
    from genbel.training.recipe import RecipeConfig, RecipePlan, train_recipe

    if not documents:
        raise ConfigError(Errors.E360)
    cfg = RecipeConfig(max_minutes=max_minutes or None, topk=topk, seed=seed,
                       index_names=index_kb.n_names() if index else 0)
    if steps is not None:
        cfg.sapbert_steps = steps
    if not (resume and (out / "plan.json").is_file()):
        console.print("measuring this machine to plan the run …")
    from genbel.encoders.vector_store import vector_store_dir

    def show(plan: RecipePlan) -> None:
        planned.append((plan, time.perf_counter()))
        console.print(plan.describe(cfg.max_minutes), soft_wrap=True)

    return train_recipe(kb_obj, documents, encoder, out, config=cfg, resume=resume, vector_store=vector_store_dir(),
                        on_plan=show, report=lambda line: console.print(line, soft_wrap=True))


def build_index(
    linker: str = typer.Option("sparse", "--linker", help="sparse|tfidf|dense|biosyn[:PATH]"),
    kb: str = typer.Option(..., "--kb", help="KB dictionary file or built KB directory."),
    kb_format: str | None = typer.Option(None, "--kb-format"),
    augment: list[str] = typer.Option(
        [], "--augment-kb", help="Corpus (or NAME:SPLIT) whose mentions augment the KB."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    out: Path = typer.Option(..., "--out", help="Index directory to write."),
    prior: list[str] = typer.Option(
        [],
        "--prior-corpus",
        help="Annotated corpus (or NAME:SPLIT) whose gold-concept counts rank ties (repeatable).",
    ),
    prior_weight: float = typer.Option(
        0.0, "--prior-weight", help="Add WEIGHT * log(1 + count) to concept scores."
    ),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads for dense encoders."),
) -> None:
    """Build a retrieval index for a KB and save it (load it later with ``--linker NAME:OUT``)."""
    from genbel.errors import ConfigError, Errors
    from genbel.linkers.registry import create_linker

    check_output(out, [linker_path(linker), *augment, *prior], stores=[kb], kind="dir")
    _set_threads(threads)
    name = linker.partition(":")[0]
    if name not in ("sparse", "tfidf", "dense", "biosyn"):
        raise ConfigError(Errors.E309.format(spec=linker))
    from genbel.data import load_documents
    from genbel.linkers.nametable import concept_prior
    from genbel.pipeline import load_augmented_kb

    kb_obj, augmented = load_augmented_kb(kb, kb_format, augment, data_dir)
    if augment:
        console.print(f"KB augmented with {sum(n for _, n in augmented)} mention strings")
    t0 = time.perf_counter()
    if name in ("sparse", "tfidf") and linker == name:  # streamed straight into OUT (UMLS-sized KBs)
        from genbel.linkers.sparse import SparseLinker

        counts = concept_prior(load_documents(prior, data_dir), kb_obj) if prior else None
        with output_errors(out):
            SparseLinker.build(kb_obj, out, progress=True, prior=counts, prior_weight=prior_weight)
        if counts:
            console.print(f"concept prior from {len(counts)} concepts of {', '.join(prior)}")
        console.print(f"{name} index over {kb_obj.n_names()} names built in {time.perf_counter() - t0:.1f} s → {out}")
        return
    if name in ("dense", "biosyn"):
        lk = create_linker(linker, kb_obj, progress=True)
    else:
        lk = create_linker(linker, kb_obj)
    built = time.perf_counter() - t0
    if prior:
        counts = concept_prior(load_documents(prior, data_dir), kb_obj)
        lk.set_prior(counts, prior_weight)  # type: ignore[attr-defined]
        console.print(f"concept prior from {len(counts)} concepts of {', '.join(prior)}")
    with output_errors(out):
        lk.save(out)  # type: ignore[attr-defined]
    console.print(f"{name} index over {kb_obj.n_names()} names built in {built:.1f} s → {out}")


def export_retriever_cmd(
    run: Path = typer.Argument(..., help="A trained retriever directory (from train-retriever)."),
    out: Path = typer.Option(..., "--out", help="Directory for the compact copy."),
    kb: list[str] = typer.Option([], "--kb", help="KB whose names define the kept vocabulary (repeatable)."),
    kb_format: str | None = typer.Option(None, "--kb-format"),
    corpus: list[str] = typer.Option(
        [], "--corpus", help="Corpus (or NAME:SPLIT) whose text is kept too (repeatable)."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    weights: str = typer.Option(
        "int8", "--weights", help="int8, float16 or float32 (with --delta-from: int8 or float32)."
    ),
    delta_from: str | None = typer.Option(
        None, "--delta-from",
        help="Base model (alias such as minilm, or a directory): store only the encoder tensors that "
        "differ from it (no --kb/--corpus: the base's tokenizer is used).",
    ),
) -> None:
    """Write a small shippable copy of a trained retriever (pruned vocabulary or a delta from its base
    model, int8 weights)."""
    from genbel.data import load_documents
    from genbel.kb import open_kb
    from genbel.training.retriever import export_retriever

    check_output(out, [run, *corpus, delta_from], stores=kb, kind="dir")
    texts: list[str] = []
    for k in kb:
        texts.extend(n for n, _ in open_kb(k, kb_format).name_pairs())
    for d in load_documents(corpus, data_dir) if corpus else []:
        texts.append(d.text)
    path = export_retriever(run, out, texts, weights=weights, delta_from=delta_from)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    kind = f"retriever, delta from {delta_from}" if delta_from else "compact retriever"
    console.print(f"{kind} ({size:.1f} MB) → {path}")


def train_reranker_cmd(
    kb: str = typer.Option(..., "--kb", help="KB dictionary file, built KB directory or 'default'."),
    kb_format: str | None = typer.Option(None, "--kb-format"),
    train: list[str] = typer.Option(..., "--train", help="Training corpus file or NAME:SPLIT (repeatable)."),
    dev: list[str] = typer.Option(
        [], "--dev", help="Dev corpus (or NAME:SPLIT) to choose the context window, gate and NIL threshold on."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Folder of registry datasets (for NAME:SPLIT)."),
    retriever: str = typer.Option(
        "dense:default", "--retriever", help="Linker spec whose candidates are reranked (and mined)."
    ),
    base: str = typer.Option("minilm", "--base", help="Base model: an alias (minilm) or a checkpoint."),
    out: Path = typer.Option(..., "--out", help="Run directory (config, log, checkpoints, the reranker)."),
    epochs: int = typer.Option(2, "--epochs"),
    batch_size: int = typer.Option(8, "--batch-size", help="Mentions per step."),
    negatives: int = typer.Option(3, "--negatives", help="Hard negatives per mention."),
    candidates: int = typer.Option(5, "--candidates", help="Concepts reranked per mention when linking."),
    lr: float = typer.Option(4e-5, "--lr"),
    head_lr: float = typer.Option(1e-3, "--head-lr", help="Learning rate of the classification head."),
    warmup: int = typer.Option(20, "--warmup-steps"),
    freeze: int = typer.Option(3, "--freeze-layers", help="Freeze the embeddings + first N layers (-1: none)."),
    layers: int | None = typer.Option(None, "--layers", help="Keep only the first N transformer layers."),
    context_window: int = typer.Option(4, "--context-window", help="Words of context each side (0: none)."),
    folds: int = typer.Option(5, "--folds", help="Leave-one-fold-out mining folds."),
    max_lists: int | None = typer.Option(
        None, "--max-lists", help="Train on the N mentions hardest for the retriever (default: all)."
    ),
    max_length: int = typer.Option(40, "--max-length", help="Tokens per (mention, name) pair."),
    context_rate: float = typer.Option(0.3, "--context-rate", help="Share of training lists read with context."),
    augment: bool = typer.Option(
        True, "--augment/--no-augment",
        help="Mine and tune against the KB + training mentions (other folds' for training mentions).",
    ),
    settings_from: Path | None = typer.Option(
        None, "--settings-from", help="Copy the linking settings chosen on dev by another reranker run."
    ),
    residual: bool = typer.Option(
        False, "--residual/--no-residual",
        help="Learn a correction of the retrieval score (logit = cross-encoder + w x score; starts at the retriever).",
    ),
    pair_text: str = typer.Option(
        "name", "--pair-text", help="What a pair shows of a candidate: name (preferred), matched (synonym) or both."
    ),
    train_pooler: bool = typer.Option(False, "--train-pooler/--freeze-pooler", help="Fine-tune the pooler too."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last epoch checkpoint in --out."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """Train a cross-encoder reranker on retriever-mined hard negatives (``--linker A+rerank:OUT``)."""
    from genbel.data import load_documents
    from genbel.kb import augment_kb as add_mentions
    from genbel.kb import open_kb
    from genbel.linkers.rerank import RERANKER_CONFIG, CrossEncoder
    from genbel.textio import read_json
    from genbel.training.reranker import (
        RerankerConfig,
        apply_settings,
        score_dev,
        train_reranker,
        tune_reranker,
    )
    from genbel.training.reranker_data import mine_lists

    check_output(out, [*train, *dev, base, settings_from], stores=[kb], kind="run")
    _set_threads(threads)
    documents = load_documents(train, data_dir)
    kb_obj = open_kb(kb, kb_format)
    cfg = RerankerConfig(epochs=epochs, batch_size=batch_size, n_negatives=negatives, link_candidates=candidates, lr=lr, head_lr=head_lr, warmup_steps=warmup, freeze_layers=freeze,
                         layers=layers, context_window=context_window, folds=folds, augment=augment, seed=seed,
                         max_lists=max_lists, max_length=max_length, context_rate=context_rate, residual=residual,
                         pair_text=pair_text, train_pooler=train_pooler)
    t0 = time.perf_counter()
    run = train_reranker(kb_obj, documents, out, retriever=retriever, base=base, config=cfg, resume=resume)
    console.print(f"trained the reranker in {time.perf_counter() - t0:.0f} s → {run}")
    if settings_from is not None:
        keep = ("context_window", "retriever_weight", "gate_score", "gate_margin", "nil_threshold", "dev")
        chosen = {k: v for k, v in read_json(settings_from / RERANKER_CONFIG, expect=dict).items() if k in keep}
        apply_settings(run, {**chosen, "settings_from": str(settings_from)})
        console.print(f"linking settings copied from {settings_from}")
    if dev:
        t1 = time.perf_counter()
        dev_docs = load_documents(dev, data_dir)
        dev_kb = kb_obj
        if augment:
            dev_kb = kb_obj.filter()
            add_mentions(dev_kb, documents)
        lists = mine_lists(dev_docs, dev_kb, retriever, n_candidates=cfg.link_candidates, augment=False,
                           context_window=cfg.context_window, unique=False)
        ce, saved = CrossEncoder.load(run)
        chosen = tune_reranker(score_dev(ce, lists, int(saved.get("n_candidates", 8)), pair_text=cfg.pair_text),
                               cfg.context_window, learned_weight=saved.get("retriever_weight") if residual else None)
        apply_settings(run, chosen)
        d = chosen["dev"]
        console.print(
            f"dev ({d['mentions']} mentions, {time.perf_counter() - t1:.0f} s): R@1 retriever {d['retriever_r1']}, "
            f"reranked {d['rerank_r1']}, gated {d['gated_r1']} ({100 * d['gated_share']:.0f}% skipped); "
            f"context_window={chosen['context_window']}, retriever_weight={chosen['retriever_weight']}, "
            f"NIL threshold {chosen['nil_threshold']}"
        )


def export_reranker_cmd(
    run: Path = typer.Argument(..., help="A trained reranker directory (from train-reranker)."),
    out: Path = typer.Option(..., "--out", help="Directory for the shippable copy."),
    base: str = typer.Option("minilm", "--delta-from", help="Base model the delta is taken from."),
    weights: str = typer.Option("int8", "--weights", help="int8 or float32 differences."),
) -> None:
    """Write a small shippable copy of a trained reranker (a delta over its base model + the head)."""
    from genbel.training.reranker import export_reranker

    check_output(out, [run, base], kind="dir")
    path = export_reranker(run, out, base=base, weights=weights)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    console.print(f"reranker, delta from {base} ({size:.1f} MB) → {path}")


def register(app: typer.Typer) -> None:
    app.command("export-retriever")(export_retriever_cmd)
    app.command("train-retriever")(train_retriever)
    app.command("build-index")(build_index)
    app.command("train-reranker")(train_reranker_cmd)
    app.command("export-reranker")(export_reranker_cmd)
