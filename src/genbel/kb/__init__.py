"""Knowledge bases: concepts, loaders for common biomedical vocabularies, and a SQLite store.

>>> from genbel.kb import load_kb, default_kb, KnowledgeBase
>>> kb = load_kb("medic_06Jul2012.txt")          # format detected; MEDIC concepts get "Disorders"
>>> kb.lookup("breast cancer")                    # ids of the concepts having this name
>>> kb.save("kbs/medic"); KnowledgeBase.load("kbs/medic")
>>> Hierarchy(default_kb()).relation("D017202", "D009203")   # "broader": myocardial ischemia ⊃ infarction
"""

from __future__ import annotations

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.hierarchy import Hierarchy
from genbel.kb.ids import normalize_id, split_ids
from genbel.kb.loaders import (
    DEFAULT_KB_SPEC,
    KB_FORMATS,
    augment_kb,
    default_kb,
    detect_kb_format,
    load_biosyn,
    load_ctd,
    load_jsonl,
    load_kb,
    load_medic,
    load_tsv,
    open_kb,
)
from genbel.kb.normalize import normalize_name
from genbel.kb.obo import load_obo
from genbel.kb.semantic_groups import (
    GROUPS,
    ST21PV_TUIS,
    TUI_TO_GROUP,
    group_of_tui,
    normalize_group,
    resolve_group,
)
from genbel.kb.store import is_kb_dir, read_meta
from genbel.kb.umls import load_umls

__all__ = [
    "resolve_group",
    "DEFAULT_KB_SPEC",
    "GROUPS",
    "KB_FORMATS",
    "ST21PV_TUIS",
    "TUI_TO_GROUP",
    "Concept",
    "Hierarchy",
    "KnowledgeBase",
    "augment_kb",
    "default_kb",
    "detect_kb_format",
    "group_of_tui",
    "is_kb_dir",
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
    "open_kb",
    "read_meta",
    "split_ids",
]
