"""Saved linker directories, and their export as a ``trust_remote_code`` Hugging Face model.

A saved :class:`~genbel.linkers.generative.GenerativeLinker` directory holds:

``genbel_linker.json``
    architecture (``causal`` | ``seq2seq``), ``base_model`` reference, prompt format, KB name and
    fingerprint, maximum source/target lengths;
model weights
    a full checkpoint (``config.json`` + ``model.safetensors``) or a peft LoRA adapter
    (``adapter_config.json`` + ``adapter_model.safetensors``) over ``base_model``;
tokenizer files; ``text_to_code.json`` (KB name → concept codes); ``trie/`` (the
:class:`~genbel.trie.CandidateTrie`, memory-mapped at load time); ``kb/`` (the KB store).

:func:`export_linker` turns such a directory into a folder that loads with
``AutoModelForCausalLM.from_pretrained(OUT, trust_remote_code=True)`` (``AutoModelForSeq2SeqLM``
for seq2seq models) into an object with the model-card API::

    model = AutoModelForCausalLM.from_pretrained("OUT", trust_remote_code=True)
    model.sample(sentences=["[Ibuprofen]{Chemicals & Drugs} is an NSAID"], constrained=True, num_beams=3)

The folder is the linker directory with merged full weights, plus ``modeling_genbel.py``: a
subclass of the base architecture's class (registered through ``auto_map`` in ``config.json``)
whose ``sample()`` reads ``text_to_code.json``, the trie and the KB from the folder itself. That
module imports :mod:`genbel`, which must be installed where the model is loaded. The folder is also
a valid linker directory (``genbel link --linker generative:OUT``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genbel.errors import ConfigError, Errors
from genbel.kb.base import KnowledgeBase
from genbel.linkers.generative import GenerativeLinker, check_replaceable

logger = logging.getLogger(__name__)

MODELING_FILE = "modeling_genbel.py"

_TEMPLATE = '''"""{cls}: {base} with genbel's constrained generative entity linking (``.sample()``).

Written by ``genbel export``. Needs the ``genbel`` package (pip install genbel): ``sample()`` builds a
genbel GenerativeLinker around this model from the files of this folder (text_to_code.json, trie/, kb/).
"""

from transformers import {base}

from genbel.linkers.export import GenbelSampleMixin


class {cls}(GenbelSampleMixin, {base}):
    pass
'''


class GenbelSampleMixin:
    """Adds the SynCABEL model-card API (``sample``) to a transformers model class.

    The linker (trie, ``text_to_code.json``, KB) is read lazily from ``self.name_or_path`` — the
    folder the model was loaded from — on the first call.
    """

    def genbel_linker(self) -> GenerativeLinker:
        lk = self.__dict__.get("_genbel_linker")
        if lk is None:
            lk = GenerativeLinker.load(self.name_or_path, model=self)
            self.__dict__["_genbel_linker"] = lk
        return lk

    def sample(
        self,
        sentences: Sequence[str] | str,
        constrained: bool = True,
        num_beams: int = 5,
        batch_size: int | None = None,
        restrict_to_group: bool = True,
        candidates: Sequence[Sequence[str] | None] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """See :meth:`genbel.linkers.generative.GenerativeLinker.sample`."""
        return self.genbel_linker().sample(
            sentences,
            constrained=constrained,
            num_beams=num_beams,
            batch_size=batch_size,
            restrict_to_group=restrict_to_group,
            candidates=candidates,
        )


def _transformers_base(model: Any) -> type:
    """The class of ``model`` defined by transformers itself (skips genbel subclasses)."""
    import transformers

    for cls in type(model).__mro__:
        if cls.__module__.startswith("transformers.") and getattr(transformers, cls.__name__, None) is cls:
            return cls
    raise ConfigError(Errors.E254.format(path=type(model).__name__, reason="not a transformers model class"))


def export_linker(linker_dir: str | Path, out: str | Path, kb: KnowledgeBase | None = None) -> Path:
    """Write ``out``: the linker at ``linker_dir`` as a ``trust_remote_code`` model folder (atomically).

    A LoRA adapter is merged into its base model, so ``out`` holds full weights. ``out`` must not
    exist, or be an earlier genbel linker/export directory (it is then replaced).
    """
    from genbel.io import atomic_dir

    linker_dir, out = Path(linker_dir), Path(out)
    check_replaceable(out)
    lk = GenerativeLinker.load(linker_dir, kb, merge_lora=True)
    base = _transformers_base(lk.model)
    cls_name = f"Genbel{base.__name__}"
    auto = "AutoModelForSeq2SeqLM" if lk.architecture == "seq2seq" else "AutoModelForCausalLM"
    lk.model.config.auto_map = {auto: f"{MODELING_FILE[:-3]}.{cls_name}"}

    def write(d: Path) -> None:
        lk.write_to(d)
        (d / MODELING_FILE).write_text(_TEMPLATE.format(cls=cls_name, base=base.__name__), encoding="utf-8")

    atomic_dir(out, write)
    logger.info("exported %s to %s (%s, %s)", linker_dir, out, auto, cls_name)
    return out
