"""Generative entity linking: a language model writes the concept *name*, a prefix trie keeps it in the KB.

:class:`GenerativeLinker` wraps any Hugging Face causal LM (Llama family incl. SmolLM2, Qwen, Gemma)
or encoder-decoder model (BART, T5). For each mention it builds a prompt
(:class:`~genbel.linkers.prompts.PromptFormat`: SynCABEL's inline ``[mention]{Group}`` for causal
models, GenBioEL's ``[ST] mention [ET]`` + decoder prompt ``"mention is"`` for seq2seq models),
runs beam search, and — in *constrained* mode — lets the model write only the token sequences of KB
names (:class:`genbel.trie.CandidateTrie` + :class:`genbel.trie.TrieConstraint`). A generated name
maps to its concept codes (N names → 1 concept, GenBioEL's multi-synonym trie).

Scores
------
Each beam ``i`` has the length-normalised log-probability of its target tokens (EOS included)::

    s_i = (1 / |y_i|) * sum_t log p(y_i,t | prompt, y_i,<t)

which is what :meth:`~transformers.GenerationMixin.generate` reports with ``length_penalty=1``,
and what :meth:`GenerativeLinker.score_candidates` computes by teacher forcing. The user-facing
``beam_score`` is ``exp(s_i - max_j s_j)``: the best beam scores ``1.0`` and the others their
per-token probability ratio to it.

Batching
--------
Causal prompts are LEFT-padded (attention mask 0 on the pads, position ids counted from the first
real token) so every prompt ends where generation starts; seq2seq inputs are right-padded on the
encoder side and batched by equal decoder-prompt length (no decoder padding, so models with
absolute decoder positions such as BART give the same results in a batch as one by one).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbel.deps import require

require("torch", "transformers", extra="models", feature="the generative linker")

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from genbel.errors import ConfigError, Errors, IndexMismatchError, InputError
from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Candidate, Linker, MentionQuery, dedupe_candidates
from genbel.linkers.encoding import EncodedQuery, PromptEncoder
from genbel.linkers.groups import resolve_group
from genbel.linkers.prompts import PromptFormat, parse_markup
from genbel.linkers.registry import register_linker

logger = logging.getLogger(__name__)

NO_CODE = "NO_CODE"
CONFIG_FILE = "genbel_linker.json"
TEXT_TO_CODE_FILE = "text_to_code.json"
TRIE_DIR = "trie"
KB_DIR = "kb"
FORMAT_VERSION = 1
# Beams scored below this are filler hypotheses (a trie with fewer names than beams: generate pads
# with sequences penalised by -1e9, then divided by their length). Real scores are mean token
# log-probabilities, far above it.
_INVALID = -1.0e4


@dataclass
class _Scope:
    """What one query may be linked to: a trie restriction, and the codes a decoded name may keep."""

    restriction: Any | None
    possible: bool
    group: str | None = None
    concept_ids: set[str] | None = None


@dataclass
class Beam:
    """One decoded hypothesis: the name, its concept codes (empty if not a KB name), and ``s_i``."""

    name: str
    codes: list[str]
    logprob: float


def _decode_key(enc: EncodedQuery, scope: _Scope) -> tuple:
    """What decoding depends on besides the model: the token ids and the query's scope."""
    ids = frozenset(scope.concept_ids) if scope.concept_ids is not None else None
    return (tuple(enc.input_ids), tuple(enc.decoder_ids or ()), scope.group, ids)


def _left_padded_layers(
    rows: Sequence[tuple[Any, int]], width: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the (keys, values) of a batch: row ``r`` = the first ``n_r`` positions of its own
    per-layer ``(keys, values)`` list (``kv_r``, ``None`` when ``n_r == 0``), left-padded with zeros to
    ``width`` (the padding is masked)."""
    template = next(kv for kv, n in rows if n)
    layers = []
    for li, (k0, _v0) in enumerate(template):
        ks, vs = [], []
        for kv, n in rows:
            if n:
                k, v = kv[li][0][:, :, :n], kv[li][1][:, :, :n]
            else:
                k = v = k0.new_zeros((1, k0.shape[1], 0, k0.shape[3]))
            ks.append(F.pad(k, (0, 0, width - n, 0)))
            vs.append(F.pad(v, (0, 0, width - n, 0)))
        layers.append((torch.cat(ks), torch.cat(vs)))
    return layers


def _architecture_of(config: Any) -> str:
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def _auto_class(architecture: str):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM if architecture == "seq2seq" else AutoModelForCausalLM


def save_linker_config(
    path: str | Path,
    *,
    architecture: str,
    prompt_format: PromptFormat,
    base_model: str | None = None,
    kb_fingerprint: str | None = None,
    kb_name: str | None = None,
    max_source_length: int = 512,
    max_target_length: int = 64,
    memory_training: dict | None = None,
) -> Path:
    """Write ``genbel_linker.json`` into ``path`` (for trainers that save adapter + tokenizer themselves).

    A directory with this file, the model (full checkpoint or a peft LoRA adapter over
    ``base_model``) and the tokenizer loads with :meth:`GenerativeLinker.load`; the trie and
    ``text_to_code.json`` are then built from the KB given to ``load`` when absent.
    ``memory_training`` (a model trained with document-level memory prompts, ``genbel train --memory``)
    is stored as is and read back as :attr:`GenerativeLinker.memory_training`.
    """
    from genbel import __version__

    cfg = {
        "format": "genbel.GenerativeLinker",
        "format_version": FORMAT_VERSION,
        "genbel_version": __version__,
        "architecture": architecture,
        "base_model": base_model,
        "prompt_format": prompt_format.to_dict(),
        "kb": {"name": kb_name, "fingerprint": kb_fingerprint},
        "max_source_length": max_source_length,
        "max_target_length": max_target_length,
    }
    if memory_training:
        cfg["memory_training"] = dict(memory_training)
    p = Path(path) / CONFIG_FILE
    p.write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")
    return p


def check_replaceable(path: Path) -> None:
    """Refuse to overwrite anything but a missing/empty directory or an earlier linker directory."""
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / CONFIG_FILE).is_file())):
        raise ConfigError(Errors.E256.format(path=path))


class GenerativeLinker(Linker):
    """Trie-constrained generative linker over a Hugging Face causal LM or seq2seq model.

    Build with :meth:`from_pretrained` (a model path, packaged alias such as ``smollm2-135m`` or a
    hub id, plus a KB) or :meth:`load` (a directory written by :meth:`save`). Use :meth:`sample`
    (model-card API over ``[mention]{Group}`` sentences), :meth:`link` (the :class:`Linker`
    interface) and :meth:`score_candidates` (teacher-forced scores of given names).
    """

    name = "generative"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        kb: KnowledgeBase,
        *,
        trie: Any | None = None,
        prompt_format: PromptFormat | None = None,
        base_model: str | None = None,
        max_source_length: int = 512,
        max_target_length: int | None = None,
        num_beams: int = 5,
        batch_size: int = 8,
        restrict_to_group: bool = True,
        constrained: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        self.architecture = _architecture_of(model.config)
        self.model = model
        self.tokenizer = tokenizer
        self.kb = kb
        self.base_model = base_model
        self.format = prompt_format or PromptFormat(
            style="genbioel" if self.architecture == "seq2seq" else "syncabel"
        )
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.restrict_to_group = restrict_to_group
        self.constrained = constrained
        #: the memory-training settings when the model was trained on memory prompts (``genbel train
        #: --memory``; read from ``genbel_linker.json``), else None
        self.memory_training: dict | None = None
        #: causal models: compute the prompt's KV cache once per query, not once per beam (same results)
        self.share_prompt_cache = True
        #: causal models with plain full-attention layers: keep that cache once per query during beam
        #: search, not once per beam (same results; a step's cost no longer grows with the prompt)
        self.share_prompt_across_beams = True
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.model.eval()
        self.encoder = PromptEncoder(
            tokenizer,
            self.format,
            self.architecture,
            max_source_length=max_source_length,
            decoder_start_token_id=getattr(model.config, "decoder_start_token_id", None),
        )
        if trie is None:
            from genbel.trie import CandidateTrie

            trie = CandidateTrie.from_kb(
                kb,
                tokenizer,
                target=PromptFormat.target,
                eos_token_id=self.encoder.eos_token_id,
                show_progress=kb.n_names() > 50_000,
            )
        self.trie = trie
        self._trie_depth = self._longest_target()
        self.max_target_length = max_target_length or self._trie_depth
        self._groups = set(kb.semantic_groups)
        self._group_restrictions: dict[str, Any] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | Path,
        kb: KnowledgeBase,
        *,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> GenerativeLinker:
        """Load a model from a local path, a packaged alias (``genbel.models.resolve_model``) or a hub id."""
        from transformers import AutoConfig, AutoTokenizer

        from genbel.models import resolve_model

        ref = resolve_model(model_name_or_path)
        config = AutoConfig.from_pretrained(ref)
        arch = _architecture_of(config)
        if arch == "causal" and not any(
            a.endswith(("ForCausalLM", "LMHeadModel")) for a in config.architectures or []
        ):
            if config.architectures:  # an encoder-only checkpoint (BERT …) cannot generate
                raise ConfigError(Errors.E253.format(model=model_name_or_path, model_type=config.model_type))
        tokenizer = AutoTokenizer.from_pretrained(ref)
        model = (
            _auto_class(arch).from_pretrained(ref, dtype=dtype)
            if dtype
            else _auto_class(arch).from_pretrained(ref)
        )
        return cls(model, tokenizer, kb, base_model=str(model_name_or_path), **kwargs)

    @classmethod
    def load(
        cls,
        path: str | Path,
        kb: KnowledgeBase | None = None,
        *,
        model: Any | None = None,
        merge_lora: bool = True,
        **kwargs: Any,
    ) -> GenerativeLinker:
        """Load a directory written by :meth:`save` (or by a trainer, see :func:`save_linker_config`).

        The model is a full checkpoint, or a peft LoRA adapter (``adapter_config.json``) applied to
        ``base_model`` and merged (``merge_lora``). The KB is ``kb`` or the saved ``kb/``; the trie is
        loaded (memory-mapped) when it was built for that KB, else rebuilt.
        """
        from transformers import AutoTokenizer

        path = Path(path)
        cfg_file = path / CONFIG_FILE
        if not cfg_file.is_file():
            raise ConfigError(Errors.E251.format(path=path, missing=CONFIG_FILE))
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(Errors.E013.format(path=cfg_file, line=e.lineno, reason=e.msg)) from e
        if kb is None:
            if not (path / KB_DIR).is_dir():
                raise ConfigError(Errors.E251.format(path=path, missing=f"{KB_DIR}/ (or pass a KB)"))
            kb = KnowledgeBase.load(path / KB_DIR)
        if (path / "tokenizer_config.json").is_file() or not cfg.get("base_model"):
            tokenizer = AutoTokenizer.from_pretrained(path)
        else:  # an adapter saved without its tokenizer: the base model's
            from genbel.models import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(cfg["base_model"]))
        arch = cfg.get("architecture", "causal")
        if model is None:
            model = cls._load_model(path, cfg, arch, tokenizer, merge_lora)
        trie = None
        if (path / TRIE_DIR).is_dir():
            from genbel.trie import CandidateTrie

            try:
                trie = CandidateTrie.load(path / TRIE_DIR, mmap=True, expected_fingerprint=kb.fingerprint())
            except IndexMismatchError:
                logger.info("KB %s differs from the one saved with %s; building a trie for it", kb.name, path)
        options = {
            "prompt_format": PromptFormat.from_dict(cfg.get("prompt_format") or {}),
            "base_model": cfg.get("base_model"),
            "max_source_length": cfg.get("max_source_length", 512),
            "max_target_length": cfg.get("max_target_length"),
        }
        options.update(kwargs)
        linker = cls(model, tokenizer, kb, trie=trie, **options)
        linker.memory_training = cfg.get("memory_training") or None
        return linker

    @staticmethod
    def _load_model(path: Path, cfg: dict, arch: str, tokenizer: Any, merge_lora: bool) -> Any:
        auto = _auto_class(arch)
        adapter_cfg = path / "adapter_config.json"
        if not adapter_cfg.is_file():
            if not (path / "config.json").is_file():
                raise ConfigError(Errors.E251.format(path=path, missing="config.json or adapter_config.json"))
            return auto.from_pretrained(path)
        from peft import PeftModel

        from genbel.models import resolve_model

        base_ref = cfg.get("base_model") or json.loads(adapter_cfg.read_text(encoding="utf-8")).get(
            "base_model_name_or_path"
        )
        if not base_ref:
            raise ConfigError(Errors.E251.format(path=path, missing="base_model in genbel_linker.json"))
        base = auto.from_pretrained(resolve_model(base_ref))
        if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:  # tokens added at training time
            base.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(base, path)
        return model.merge_and_unload() if merge_lora else model

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the linker directory atomically (layout: :mod:`genbel.linkers.export`).

        ``path`` must not exist, be empty, or be an earlier linker directory (which is replaced).
        """
        from genbel.io import atomic_dir

        check_replaceable(Path(path))
        return atomic_dir(path, self.write_to)

    def write_to(self, d: Path) -> None:
        """Write the linker's files into the existing directory ``d`` (non-atomic; :meth:`save` wraps it)."""
        d = Path(d)
        self.model.save_pretrained(d)
        self.tokenizer.save_pretrained(d)
        self.trie.save(d / TRIE_DIR)
        try:  # the model-card asset; a hard link to the trie's copy costs no space
            os.link(d / TRIE_DIR / TEXT_TO_CODE_FILE, d / TEXT_TO_CODE_FILE)
        except OSError:
            shutil.copyfile(d / TRIE_DIR / TEXT_TO_CODE_FILE, d / TEXT_TO_CODE_FILE)
        self.kb.save(d / KB_DIR)
        base = self.base_model
        peft_cfg = getattr(self.model, "peft_config", None)
        if peft_cfg and not base:
            base = next(iter(peft_cfg.values())).base_model_name_or_path
        save_linker_config(
            d,
            architecture=self.architecture,
            prompt_format=self.format,
            base_model=base,
            kb_fingerprint=self.kb.fingerprint(),
            kb_name=self.kb.name,
            max_source_length=self.encoder.max_source_length,
            max_target_length=self.max_target_length,
            memory_training=self.memory_training,
        )

    @property
    def text_to_code(self) -> dict[str, list[str]]:
        """KB name → concept codes (the ``text_to_code.json`` of the SynCABEL/LongBEL model cards)."""
        return self.trie.text_to_code

    # ------------------------------------------------------------------ restrictions
    def _longest_target(self) -> int:
        trie = self.trie.trie
        if trie.num_nodes <= 1:
            return 1
        # nodes are numbered level by level: the depth of the last node is the longest sequence
        return len(trie.path(trie.num_nodes - 1))

    def _group_restriction(self, group: str) -> Any | None:
        if group not in self._group_restrictions:
            n_in = sum(1 for c in self.kb if group in c.semantic_groups)
            # a group that covers the whole KB (MEDIC: Disorders) restricts nothing
            self._group_restrictions[group] = (
                None if n_in == len(self.kb) else self.trie.restrict_to_groups([group])
            )
        return self._group_restrictions[group]

    def _scopes(
        self,
        queries: Sequence[MentionQuery],
        candidates: Sequence[Sequence[str] | None] | None,
        restrict_to_group: bool,
        where: Sequence[str],
        check_groups: bool,
    ) -> list[_Scope]:
        """Per query: what it may be linked to (candidate concepts, a semantic group, or anything)."""
        if candidates is not None and len(candidates) != len(queries):
            raise InputError(
                Errors.E252.format(where="candidates", n_candidates=len(candidates), n_queries=len(queries))
            )
        out: list[_Scope] = []
        for i, q in enumerate(queries):
            cands = candidates[i] if candidates is not None else None
            if cands is not None:
                ids: set[str] = set()
                for c in cands:
                    main = self.kb.resolve_id(c)
                    if main is None:
                        raise InputError(Errors.E020.format(where=f"{where[i]}: candidates", concept_id=c))
                    ids.add(main)
                r = self.trie.restrict_to_concepts(sorted(ids)) if ids else None
                out.append(_Scope(r, bool(ids) and r.num_allowed > 0, concept_ids=ids))
                continue
            group = None
            if q.type and (check_groups or (restrict_to_group and self._groups)):
                group = resolve_group(q.type, self._groups, where[i])
            if restrict_to_group and group is not None and self._groups:
                if group not in self._groups:  # nothing of that group in this KB
                    out.append(_Scope(None, False))
                else:
                    out.append(_Scope(self._group_restriction(group), True, group=group))
            else:
                out.append(_Scope(None, True))
        return out

    def _keep_codes(self, codes: Sequence[str], scope: _Scope) -> list[str]:
        """The codes of a decoded name that lie in the query's scope (a name may be shared across groups)."""
        if scope.concept_ids is not None:
            return [c for c in codes if c in scope.concept_ids]
        if scope.group is not None:
            return [
                c for c in codes if (x := self.kb.get(c)) is not None and scope.group in x.semantic_groups
            ]
        return list(codes)

    # ------------------------------------------------------------------ decoding
    def _batches(self, encoded: list[EncodedQuery], todo: list[int], batch_size: int) -> list[list[int]]:
        """Indices grouped into batches: by length (causal) or equal decoder-prompt length (seq2seq)."""
        if self.architecture == "causal":
            order = sorted(todo, key=lambda i: len(encoded[i].input_ids))
            return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        buckets: dict[int, list[int]] = {}
        for i in sorted(todo, key=lambda i: len(encoded[i].input_ids)):
            buckets.setdefault(len(encoded[i].decoder_ids or []), []).append(i)
        out: list[list[int]] = []
        for _, idx in sorted(buckets.items()):
            out.extend(idx[j : j + batch_size] for j in range(0, len(idx), batch_size))
        return out

    def _model_inputs(self, batch: list[EncodedQuery]) -> tuple[dict[str, torch.Tensor], int]:
        pad = self.encoder.pad_token_id
        if self.architecture == "causal":
            n = max(len(e.input_ids) for e in batch)
            ids = torch.tensor(
                [[pad] * (n - len(e.input_ids)) + e.input_ids for e in batch], dtype=torch.long
            )
            mask = torch.tensor(
                [[0] * (n - len(e.input_ids)) + [1] * len(e.input_ids) for e in batch], dtype=torch.long
            )
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
            return {k: v.to(self.device) for k, v in inputs.items()}, n
        n = max(len(e.input_ids) for e in batch)
        ids = torch.tensor([e.input_ids + [pad] * (n - len(e.input_ids)) for e in batch], dtype=torch.long)
        mask = torch.tensor(
            [[1] * len(e.input_ids) + [0] * (n - len(e.input_ids)) for e in batch], dtype=torch.long
        )
        dec = torch.tensor([e.decoder_ids for e in batch], dtype=torch.long)
        inputs = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec}
        return {k: v.to(self.device) for k, v in inputs.items()}, dec.shape[1]

    def _generation_config(self, num_beams: int, max_new_tokens: int):
        from transformers import GenerationConfig

        return GenerationConfig(
            num_beams=num_beams,
            num_return_sequences=num_beams,
            do_sample=False,
            length_penalty=1.0,
            early_stopping=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.encoder.eos_token_id,
            pad_token_id=self.encoder.pad_token_id,
            decoder_start_token_id=self.encoder.decoder_start_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )

    def _prompt_cache(self, inputs: dict[str, torch.Tensor]) -> Any:
        """KV cache of every prompt but its last token, computed once per query.

        ``generate`` copies each prompt ``num_beams`` times before its first forward pass; feeding it
        this cache instead (shared by the beams, see :meth:`_beam_cache`) makes the prompt cost one
        forward per query, not one per beam (the prompt is most of the tokens a linker processes).
        The last prompt token is left for ``generate`` so that it computes the first next-token
        distribution itself.
        """
        out = self.model(
            input_ids=inputs["input_ids"][:, :-1],
            attention_mask=inputs["attention_mask"][:, :-1],
            position_ids=inputs["position_ids"][:, :-1],
            use_cache=True,
            logits_to_keep=1,
        )
        return out.cache

    def _beam_cache(self, past: Any, num_beams: int) -> tuple[Any, AbstractContextManager]:
        """The per-query prompt cache ``past`` made ready for a ``num_beams`` beam search, and the
        context ``generate`` must run in.

        Plain full-attention models keep each prompt's states once, shared by its beams
        (:mod:`genbel.linkers.beam_cache`: a step's cost no longer grows with the prompt's length,
        same results); other caches (e.g. sliding-window layers) are repeated for each beam."""
        from genbel.linkers.beam_cache import SharedPromptCache, plain_cache, shared_prompt_decoding

        if self.share_prompt_across_beams and plain_cache(past):
            shared = SharedPromptCache([(layer.keys, layer.values) for layer in past.layers], num_beams)
            return shared, shared_prompt_decoding(self.model, shared)
        past.batch_repeat_interleave(num_beams)
        return past, nullcontext()

    def _prompt_cache_with_prefixes(
        self,
        batch: list[EncodedQuery],
        inputs: dict[str, torch.Tensor],
        keys: list[Any],
        store: dict[Any, Any],
    ) -> tuple[Any, dict[str, torch.Tensor], int]:
        """:meth:`_prompt_cache`, but each row first reuses the key/value states stored under its key
        for the longest common token prefix, and only the rest is computed; each row then stores its
        own states under its key.

        Row ``i`` reuses ``p_i`` states and computes ``n_i`` new tokens, in one forward pass for all
        rows whose ``n_i`` are of similar length (:meth:`_prefill_rows`; a row that must recompute its
        whole prompt — its memory lost its oldest entry — is not allowed to pad every other row's few
        new tokens to its length). Returns the cache re-laid out compactly as ``[pad][prompt_i]`` (as
        wide as the longest prompt), the model inputs that match that layout (the prompt's last
        token after it) and their length. Models whose cache is not a plain per-layer key/value cache
        (e.g. sliding-window layers) fall back to :meth:`_prompt_cache`.
        """
        from transformers import DynamicCache

        bodies = [enc.input_ids[:-1] for enc in batch]
        reused: list[tuple[int, Any]] = []
        for body, key in zip(bodies, keys):
            p, entry = 0, store.get(key)
            if entry is not None:
                old_ids = entry[0]
                limit = min(len(old_ids), len(body))
                while p < limit and old_ids[p] == body[p]:
                    p += 1
            reused.append((p, entry[1] if p else None))
        # one pass per run of similar new-part lengths (at most twice the shortest + 8 tokens)
        new = [len(body) - p for body, (p, _) in zip(bodies, reused)]
        groups: list[list[int]] = []
        for r in sorted(range(len(bodies)), key=new.__getitem__):
            if groups and new[r] <= 2 * new[groups[-1][0]] + 8:
                groups[-1].append(r)
            else:
                groups.append([r])
        states: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for group in groups:
            kvs = self._prefill_rows([bodies[r] for r in group], [reused[r] for r in group])
            if kvs is None:
                store.clear()
                self._prefix_reuse_supported = False  # decided once per linker, not once per batch
                return self._prompt_cache(inputs), inputs, inputs["input_ids"].shape[1]
            states.update(zip(group, kvs))
        rows = []
        for r, (body, key) in enumerate(zip(bodies, keys)):
            store[key] = (list(body), states[r])
            rows.append((states[r], len(body)))
        # beam search then runs on the compact layout [pad][prompt_i]: as wide as the longest prompt,
        # not longest reuse + longest new part (the attention over the prompt grows with the width).
        # Keys carry their positions (rotary embeddings), so moving them changes nothing but padding.
        width = max(len(body) for body in bodies)
        past = DynamicCache(ddp_cache_data=_left_padded_layers(rows, width))
        mask = torch.tensor(
            [[0] * (width - len(body)) + [1] * len(body) for body in bodies],
            dtype=torch.long,
            device=self.device,
        )
        # the prompt as generate sees it: the cached layout (its ids are never recomputed) + last token
        pad = self.encoder.pad_token_id
        last = torch.tensor([[enc.input_ids[-1]] for enc in batch], dtype=torch.long, device=self.device)
        full_mask = torch.cat([mask, torch.ones_like(last)], dim=1)
        laid_out = {
            "input_ids": torch.cat([torch.full_like(mask, pad), last], dim=1),
            "attention_mask": full_mask,
            "position_ids": (full_mask.cumsum(-1) - 1).clamp(min=0),
        }
        return past, laid_out, width + 1

    def _prefill_rows(
        self, bodies: list[list[int]], reused: list[tuple[int, Any]]
    ) -> list[list[tuple[torch.Tensor, torch.Tensor]]] | None:
        """Per row, per layer, the (keys, values) of ``body`` (``[1, heads, len(body), d]``): the
        reused ``p`` states of ``reused`` followed by the rest, computed in one forward pass laid out
        as ``[pad][reused p_i][pad][new n_i]``; None if the model's cache is not plain."""
        from transformers import DynamicCache

        from genbel.linkers.beam_cache import plain_cache

        big_p = max(p for p, _ in reused)
        big_n = max(len(body) - p for body, (p, _) in zip(bodies, reused))
        past = None
        if big_p:
            past = DynamicCache(ddp_cache_data=_left_padded_layers([(kv, p) for p, kv in reused], big_p))
        pad = self.encoder.pad_token_id
        mask_rows, id_rows, pos_rows = [], [], []
        for body, (p, _) in zip(bodies, reused):
            n = len(body) - p
            mask_rows.append([0] * (big_p - p) + [1] * p + [0] * (big_n - n) + [1] * n)
            id_rows.append([pad] * (big_n - n) + body[p:])
            pos_rows.append([0] * (big_n - n) + list(range(p, len(body))))
        if big_n:
            out = self.model(
                input_ids=torch.tensor(id_rows, dtype=torch.long, device=self.device),
                attention_mask=torch.tensor(mask_rows, dtype=torch.long, device=self.device),
                position_ids=torch.tensor(pos_rows, dtype=torch.long, device=self.device),
                cache=past,
                use_cache=True,
                logits_to_keep=1,
            )
            past = out.cache
        if not plain_cache(past):
            return None
        total = big_p + big_n
        states = []
        for r, (body, (p, _)) in enumerate(zip(bodies, reused)):
            n = len(body) - p
            kv = []
            for layer in past.layers:
                k, v = layer.keys[r : r + 1], layer.values[r : r + 1]
                kv.append((
                    torch.cat([k[:, :, big_p - p : big_p], k[:, :, total - n :]], dim=2),
                    torch.cat([v[:, :, big_p - p : big_p], v[:, :, total - n :]], dim=2),
                ))
            states.append(kv)
        return states

    @torch.inference_mode()
    def _generate_batch(
        self,
        batch: list[EncodedQuery],
        scopes: list[_Scope],
        constrained: bool,
        num_beams: int,
        prefix: tuple[list[Any], dict[Any, Any]] | None = None,
    ) -> list[list[Beam]]:
        inputs, prompt_len = self._model_inputs(batch)
        kwargs: dict[str, Any] = {}
        decoding: AbstractContextManager = nullcontext()
        if self.architecture == "causal" and num_beams > 1 and prompt_len > 1 and self.share_prompt_cache:
            if prefix is not None and getattr(self, "_prefix_reuse_supported", True):
                past, inputs, prompt_len = self._prompt_cache_with_prefixes(batch, inputs, *prefix)
            else:
                past = self._prompt_cache(inputs)
            kwargs["cache"], decoding = self._beam_cache(past, num_beams)
        if constrained:
            from transformers import LogitsProcessorList

            from genbel.trie import TrieLogitsProcessor

            kwargs["logits_processor"] = LogitsProcessorList(
                [
                    TrieLogitsProcessor(
                        self.trie.trie,
                        prompt_len,
                        num_beams=num_beams,
                        restrictions=[sc.restriction for sc in scopes],
                        eos_token_id=self.encoder.eos_token_id,
                        pad_token_id=self.encoder.pad_token_id,
                    )
                ]
            )
            max_new = self._trie_depth
        else:
            max_new = self.max_target_length
        with decoding:
            out = self.model.generate(
                **inputs, generation_config=self._generation_config(num_beams, max_new), **kwargs
            )
        seqs = out.sequences[:, prompt_len:].tolist()
        scores = out.sequences_scores.tolist()
        eos = self.encoder.eos_token_id
        results: list[list[Beam]] = [[] for _ in batch]
        for row, (tokens, s) in enumerate(zip(seqs, scores)):
            if not math.isfinite(s) or s < _INVALID:
                continue
            cut = tokens.index(eos) + 1 if eos in tokens else len(tokens)
            target = tokens[:cut]
            if constrained:
                hit = self.trie.decode(target)
                if hit is None:
                    continue
                name, codes = hit
            else:
                name = self.tokenizer.decode(target, skip_special_tokens=True).strip()
                codes = list(self.text_to_code.get(name, []))
            codes = self._keep_codes(codes, scopes[row // num_beams])
            if constrained and not codes:  # a name shared with a concept outside the scope
                continue
            results[row // num_beams].append(Beam(name, codes, float(s)))
        for r in results:
            r.sort(key=lambda b: -b.logprob)
        return results

    def generate(
        self,
        queries: Sequence[MentionQuery],
        *,
        constrained: bool | None = None,
        num_beams: int | None = None,
        batch_size: int | None = None,
        candidates: Sequence[Sequence[str] | None] | None = None,
        restrict_to_group: bool | None = None,
        where: Sequence[str] | None = None,
        check_groups: bool = False,
        cache: dict[tuple, list[Beam]] | None = None,
        prefix_keys: Sequence[Any] | None = None,
        prefix_store: dict[Any, Any] | None = None,
    ) -> list[list[Beam]]:
        """Beams per query, best first (``Beam.logprob`` is the length-normalised log-probability).

        Queries with identical model inputs and scope are decoded once. ``cache`` (a dict the caller
        keeps across calls, e.g. for one document-level run) also reuses the beams of earlier calls.
        ``prefix_keys[i]`` + ``prefix_store`` (causal models): the prompt of query ``i`` reuses the
        key/value states of the longest common token prefix with the last prompt stored under the same
        key, and stores its own (document-level linking: the memory block is a growing prefix).

        ``candidates[i]`` (concept ids) restricts query ``i`` to those concepts (an empty list gives
        no beam); otherwise, with ``restrict_to_group``, a query whose ``type`` resolves to a
        semantic group of the KB is restricted to that group (a group the KB lacks gives no beam).
        """
        constrained = self.constrained if constrained is None else constrained
        num_beams = num_beams or self.num_beams
        batch_size = batch_size or self.batch_size
        restrict = self.restrict_to_group if restrict_to_group is None else restrict_to_group
        if where is None:
            where = [
                f"document {q.doc_id}, entity {q.entity_id}" if q.doc_id is not None else f"query {i + 1}"
                for i, q in enumerate(queries)
            ]
        scopes = self._scopes(queries, candidates, restrict and constrained, where, check_groups)
        encoded = [self.encoder.encode(q) for q in queries]
        results: list[list[Beam]] = [[] for _ in queries]
        # identical inputs with the same scope decode identically: run each once (repeated mentions)
        first: dict[tuple, int] = {}
        copies: list[tuple[int, int]] = []
        todo: list[int] = []
        for i in range(len(queries)):
            if not scopes[i].possible:
                continue
            key = _decode_key(encoded[i], scopes[i])
            if cache is not None and key in cache:
                results[i] = [dataclasses.replace(b, codes=list(b.codes)) for b in cache[key]]
            elif key in first:
                copies.append((i, first[key]))
            else:
                first[key] = i
                todo.append(i)
        batches = self._batches(encoded, todo, batch_size)
        with tqdm(
            total=len(todo),
            desc="linking",
            unit="mention",
            disable=True if len(batches) < 4 else None,
            leave=False,
        ) as bar:
            for idx in batches:
                prefix = None
                if prefix_store is not None and prefix_keys is not None:
                    prefix = ([prefix_keys[i] for i in idx], prefix_store)
                beams = self._generate_batch(
                    [encoded[i] for i in idx], [scopes[i] for i in idx], constrained, num_beams, prefix=prefix
                )
                for i, b in zip(idx, beams):
                    results[i] = b
                bar.update(len(idx))
        for i, j in copies:
            results[i] = [dataclasses.replace(b, codes=list(b.codes)) for b in results[j]]
        if cache is not None:
            for key, i in first.items():
                cache[key] = [dataclasses.replace(b, codes=list(b.codes)) for b in results[i]]
        return results

    # ------------------------------------------------------------------ public API
    def sample(
        self,
        sentences: Sequence[str] | str,
        constrained: bool = True,
        num_beams: int = 5,
        batch_size: int | None = None,
        restrict_to_group: bool = True,
        candidates: Sequence[Sequence[str] | None] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Link ``[mention]{Group}`` sentences; the SynCABEL model-card API.

        Returns, per sentence, up to ``num_beams`` dicts, best first::

            {"mention", "pred_concept_name", "pred_concept_code", "pred_concept_codes", "beam_score"}

        ``pred_concept_code`` is the first code of the name (``"NO_CODE"`` when an unconstrained
        generation is not a KB name), ``pred_concept_codes`` all of them. ``beam_score`` is
        ``exp(s_i - s_max)`` of the length-normalised log-probabilities ``s_i`` (best beam = 1.0).
        The group must be a KB group, a UMLS group (name or code), a TUI or a corpus type of
        :data:`genbel.linkers.groups.GROUP_ALIASES`; with ``restrict_to_group`` (and constrained
        decoding) only names of that group are generated.
        """
        if isinstance(sentences, str):
            sentences = [sentences]
        where = [f"sentence {i + 1}" for i in range(len(sentences))]
        queries = [parse_markup(s, w) for s, w in zip(sentences, where)]
        beams = self.generate(
            queries,
            constrained=constrained,
            num_beams=num_beams,
            batch_size=batch_size,
            candidates=candidates,
            restrict_to_group=restrict_to_group,
            where=where,
            check_groups=True,
        )
        out: list[list[dict[str, Any]]] = []
        for q, bs in zip(queries, beams):
            best = bs[0].logprob if bs else 0.0
            out.append(
                [
                    {
                        "mention": q.surface,
                        "pred_concept_name": b.name,
                        "pred_concept_code": b.codes[0] if b.codes else NO_CODE,
                        "pred_concept_codes": list(b.codes),
                        "beam_score": math.exp(b.logprob - best),
                    }
                    for b in bs
                ]
            )
        return out

    def link(
        self,
        queries: Sequence[MentionQuery],
        k: int = 5,
        candidates: Sequence[Sequence[str] | None] | None = None,
    ) -> list[list[Candidate]]:
        """Ranked concepts per query: beams mapped to their concepts, best first, distinct, at most ``k``.

        A name with several codes gives several candidates (in code order, same score). Unconstrained
        generations that are not exact KB names are looked up after normalisation
        (:meth:`KnowledgeBase.lookup`); names still unknown are dropped. ``candidates`` restricts each
        query to the given concept ids (retrieve-then-generate). Scores are ``beam_score``.
        """
        beams = self.generate(queries, num_beams=max(self.num_beams, k), candidates=candidates)
        return [self.candidates_from_beams(bs, k) for bs in beams]

    def candidates_from_beams(self, beams: Sequence[Beam], k: int) -> list[Candidate]:
        """At most ``k`` distinct concepts of ``beams`` (best first), scored ``exp(s_i - s_max)``.

        Beams without codes (unconstrained generations) are looked up after normalisation
        (:meth:`KnowledgeBase.lookup`); names still unknown are dropped.
        """
        best = beams[0].logprob if beams else 0.0
        cands: list[Candidate] = []
        for b in beams:
            codes = b.codes or self.kb.lookup(b.name)
            score = math.exp(b.logprob - best)
            for code in codes:
                concept = self.kb.get(code)
                if concept is not None:
                    cands.append(Candidate(concept.id, concept.name, score))
        return dedupe_candidates(cands, k)

    @torch.inference_mode()
    def score_candidates(
        self,
        queries: Sequence[MentionQuery],
        candidate_names: Sequence[Sequence[str]],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
    ) -> list[list[float]]:
        """Teacher-forced log-likelihood of each given name (target + EOS) for its query.

        ``normalize=True`` gives the mean log-probability per target token (the ``s_i`` that beam
        search ranks by), ``False`` the sum. All (query, name) pairs go through the model in
        batches of ``batch_size * num_beams`` sequences.
        """
        if len(candidate_names) != len(queries):
            raise InputError(
                Errors.E252.format(
                    where="candidate_names", n_candidates=len(candidate_names), n_queries=len(queries)
                )
            )
        encoded = [self.encoder.encode(q) for q in queries]
        pairs = [(qi, ci) for qi, names in enumerate(candidate_names) for ci in range(len(names))]
        targets = {(qi, ci): self.encoder.encode_target(candidate_names[qi][ci]) for qi, ci in pairs}
        out: list[list[float]] = [[0.0] * len(names) for names in candidate_names]
        rows = (batch_size or self.batch_size) * max(1, self.num_beams)
        # seq2seq chunks share one decoder-prompt length (targets then start at the same position)
        groups: dict[int, list[tuple[int, int]]] = {}
        for p in pairs:
            groups.setdefault(len(encoded[p[0]].decoder_ids or []), []).append(p)
        for group in groups.values():
            group.sort(key=lambda p: len(encoded[p[0]].input_ids) + len(targets[p]))
            for j in range(0, len(group), rows):
                chunk = group[j : j + rows]
                logps = self._teacher_forced([encoded[qi] for qi, _ in chunk], [targets[p] for p in chunk])
                for (qi, ci), (total, n) in zip(chunk, logps):
                    out[qi][ci] = total / n if normalize else total
        return out

    def _teacher_forced(
        self, prompts: list[EncodedQuery], targets: list[list[int]]
    ) -> list[tuple[float, int]]:
        pad = self.encoder.pad_token_id
        tmax = max(len(t) for t in targets)
        if self.architecture == "causal":
            pmax = max(len(p.input_ids) for p in prompts)
            ids, mask = [], []
            for p, t in zip(prompts, targets):
                lp, rp = pmax - len(p.input_ids), tmax - len(t)
                ids.append([pad] * lp + p.input_ids + t + [pad] * rp)
                mask.append([0] * lp + [1] * (len(p.input_ids) + len(t)) + [0] * rp)
            ids_t = torch.tensor(ids, dtype=torch.long, device=self.device)
            mask_t = torch.tensor(mask, dtype=torch.long, device=self.device)
            pos = (mask_t.cumsum(-1) - 1).clamp(min=0)
            # only the logits that predict target tokens: the last tmax + 1 positions (lm head and
            # log-softmax over the vocabulary are then not computed for the prompt)
            logits = self.model(
                input_ids=ids_t, attention_mask=mask_t, position_ids=pos, logits_to_keep=tmax + 1
            ).logits
            start = 1  # logits[:, 0] is the prompt's last position, which predicts the first target token
        else:
            dmax = len(prompts[0].decoder_ids or [])  # equal within a chunk (see score_candidates)
            nmax = max(len(p.input_ids) for p in prompts)
            enc = torch.tensor(
                [p.input_ids + [pad] * (nmax - len(p.input_ids)) for p in prompts], device=self.device
            )
            enc_mask = torch.tensor(
                [[1] * len(p.input_ids) + [0] * (nmax - len(p.input_ids)) for p in prompts],
                device=self.device,
            )
            dec = torch.tensor(
                [(p.decoder_ids or []) + t + [pad] * (tmax - len(t)) for p, t in zip(prompts, targets)],
                device=self.device,
            )
            logits = self.model(input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec).logits
            start = dmax
        logp = torch.log_softmax(logits[:, start - 1 : start - 1 + tmax].float(), dim=-1)
        tgt = torch.tensor([t + [0] * (tmax - len(t)) for t in targets], device=self.device)
        tok = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        valid = torch.tensor(
            [[1] * len(t) + [0] * (tmax - len(t)) for t in targets], device=self.device
        ).bool()
        sums = tok.masked_fill(~valid, 0.0).sum(-1).tolist()
        return [(s, len(t)) for s, t in zip(sums, targets)]


@register_linker("generative")
def _factory(kb: KnowledgeBase | None, path: str | None = None, **options: Any) -> GenerativeLinker:
    """``generative:PATH``: a saved linker directory (``genbel_linker.json``) or a model name/path."""
    if not path:
        raise ConfigError(Errors.E255.format(where="--linker generative"))
    p = Path(path)
    if (p / CONFIG_FILE).is_file():
        return GenerativeLinker.load(p, kb, **options)
    if kb is None:
        raise ConfigError(Errors.E014.format(where="generative linker", field="kb"))
    return GenerativeLinker.from_pretrained(path, kb, **options)
