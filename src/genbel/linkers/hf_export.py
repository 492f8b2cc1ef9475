"""Export of a saved linker directory as a ``trust_remote_code`` Hugging Face model.

A saved :class:`~genbel.linkers.generative.GenerativeLinker` directory (its layout:
:mod:`genbel.generation.saved`) holds the model, the tokenizer, ``genbel_linker.json``,
``text_to_code.json``, ``trie/`` and ``kb/``. :func:`export_linker` turns such a directory into a
folder that loads with ``AutoModelForCausalLM.from_pretrained(OUT, trust_remote_code=True)``
(``AutoModelForSeq2SeqLM`` for seq2seq models) into an object with the model-card API::

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
from genbel.generation.saved import CONFIG_FILE, check_replaceable, is_linker_dir
from genbel.kb.base import KnowledgeBase
from genbel.linkers.generative import GenerativeLinker

logger = logging.getLogger(__name__)

MODELING_FILE = "modeling_genbel.py"

_TEMPLATE = '''"""{cls}: {base} with genbel's constrained generative entity linking (``.sample()``).

Written by ``genbel export``. Needs the ``genbel`` package (pip install genbel): ``sample()`` builds a
genbel GenerativeLinker around this model from the files of this folder (text_to_code.json, trie/, kb/).
"""

from transformers import {base}

from genbel.linkers.hf_export import GenbelSampleMixin


class {cls}(GenbelSampleMixin, {base}):
    pass
'''


class GenbelSampleMixin:
    """Adds the SynCABEL model-card API (``sample``) to a transformers model class.

    The linker (trie, ``text_to_code.json``, KB) is read lazily from ``self.name_or_path`` — the
    folder the model was loaded from — on the first call. The model class itself loads with
    ``from_pretrained`` (the Hugging Face name; genbel's own classes use ``load``).
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
        """Link ``[mention]{Group}`` sentences by beam search (``sample`` is the model card's name).

        See :meth:`genbel.linkers.generative.GenerativeLinker.sample`.
        """
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
    linker_dir, out = Path(linker_dir), Path(out)
    if not is_linker_dir(linker_dir):
        raise ConfigError(Errors.E251.format(path=linker_dir, missing=CONFIG_FILE))
    check_replaceable(out)
    lk = GenerativeLinker.load(linker_dir, kb, merge_lora=True, quantize="none")  # full-precision weights out
    base = _transformers_base(lk.model)
    cls_name = f"Genbel{base.__name__}"
    auto = "AutoModelForSeq2SeqLM" if lk.architecture == "seq2seq" else "AutoModelForCausalLM"
    lk.model.config.auto_map = {auto: f"{MODELING_FILE[:-3]}.{cls_name}"}
    lk.save(out, extra_files={MODELING_FILE: _TEMPLATE.format(cls=cls_name, base=base.__name__)})
    logger.info("exported %s to %s (%s, %s)", linker_dir, out, auto, cls_name)
    return out
