"""Knowledge bases: concepts, loaders for common biomedical vocabularies, and a SQLite store.

>>> from genbel.kb import load_kb, default_kb
>>> kb = load_kb("medic_06Jul2012.txt")          # format detected; MEDIC concepts get "Disorders"
>>> kb.lookup("breast cancer")                    # ids of the concepts having this name
>>> kb.to_disk("kbs/medic"); KnowledgeBase.from_disk("kbs/medic")
"""

from __future__ import annotations

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.ids import normalize_id, split_ids
from genbel.kb.loaders import (
    FORMATS,
    augment_kb,
    default_kb,
    detect_format,
    load_biosyn,
    load_ctd,
    load_jsonl,
    load_kb,
    load_medic,
    load_obo,
    load_tsv,
    load_umls,
)
from genbel.kb.normalize import normalize_name
from genbel.kb.semantic_groups import GROUPS, ST21PV_TUIS, TUI_TO_GROUP, group_of_tui, normalize_group
from genbel.kb.store import read_meta, save_kb

__all__ = [
    "FORMATS",
    "GROUPS",
    "ST21PV_TUIS",
    "TUI_TO_GROUP",
    "Concept",
    "KnowledgeBase",
    "augment_kb",
    "default_kb",
    "detect_format",
    "group_of_tui",
    "load_biosyn",
    "load_ctd",
    "load_jsonl",
    "load_kb",
    "load_medic",
    "load_obo",
    "load_tsv",
    "load_umls",
    "normalize_group",
    "normalize_id",
    "normalize_name",
    "read_meta",
    "save_kb",
    "split_ids",
]
