"""CandidateTrie: built from a KB with a tiny tokenizer; names, codes, decode, restrictions, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from genbel.errors import ConfigError, FormatError, IndexMismatchError
from genbel.generation.prompts import PromptFormat
from genbel.kb.base import KnowledgeBase
from genbel.trie import CandidateTrie, Restriction, TokenTrie, TrieConstraint, TrieLogitsProcessor
from tests.helpers import raises_code


@pytest.fixture
def ct(kb: KnowledgeBase, tokenizer: PreTrainedTokenizerFast) -> CandidateTrie:
    return CandidateTrie.from_kb(kb, tokenizer, target=PromptFormat.target, show_progress=False)


def target_ids(tokenizer: PreTrainedTokenizerFast, name: str) -> list[int]:
    return tokenizer(PromptFormat.target(name), add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]


def test_names_and_codes(ct: CandidateTrie, kb: KnowledgeBase) -> None:
    assert ct.names == [
        "Breast Neoplasms",
        "breast cancer",
        "breast tumor",
        "tumor",
        "Colorectal Neoplasms",
        "colorectal cancer",
        "colon cancer",
        "Breast Carcinoma",
        "Breast",
        "breast tissue",
        "Ibuprofen",
        "ibuprofen",
        "Advil",
        "Colon",
    ]
    assert len(ct) == 14 and ct.trie.num_sequences == 14
    assert ct.text_to_code["breast cancer"] == ["D001", "D003"]  # a name of two concepts
    assert ct.text_to_code["tumor"] == ["D001", "D003"]
    assert ct.codes(ct.names.index("Colon")) == ["C006"]
    assert ct.kb_fingerprint == kb.fingerprint()
    assert ct.eos_token_id == 1 and ct.pad_token_id == 0
    assert ct.semantic_groups == ["Anatomy", "Chemicals & Drugs", "Disorders"]


def test_trie_holds_exactly_the_target_sequences(
    ct: CandidateTrie, tokenizer: PreTrainedTokenizerFast
) -> None:
    for payload, name in enumerate(ct.names):
        seq = target_ids(tokenizer, name)
        assert seq[-1] == tokenizer.eos_token_id
        node = ct.trie.walk(seq)
        assert node > 0 and ct.trie.values(node).tolist() == [payload]
        assert ct.trie.children(node).tolist() == []
    # a name without the leading space is not in the trie
    bare = tokenizer("Breast Neoplasms", add_special_tokens=False)["input_ids"]
    assert ct.trie.walk(bare) == -1
    # every root child is a first token of some target
    firsts = sorted({target_ids(tokenizer, n)[0] for n in ct.names})
    assert ct.trie.children(TokenTrie.ROOT).tolist() == firsts


def test_decode(ct: CandidateTrie, tokenizer: PreTrainedTokenizerFast) -> None:
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    tumor = target_ids(tokenizer, "tumor")
    assert ct.decode(tumor) == ("tumor", ["D001", "D003"])
    assert ct.decode(tumor + [eos, eos]) == ("tumor", ["D001", "D003"])
    assert ct.decode(tumor[:-1]) == ("tumor", ["D001", "D003"])  # without EOS
    assert ct.decode(np.array(tumor[:-1] + [pad, pad])) == ("tumor", ["D001", "D003"])
    breast = target_ids(tokenizer, "Breast")
    assert ct.decode(breast) == ("Breast", ["D004"])  # a name that is a prefix of others
    assert ct.decode(breast[:-2]) is None  # an unfinished name
    assert ct.decode([]) is None
    assert ct.decode(breast[:-1] + [5]) is None  # leaves the trie


def test_restrict_to_groups(ct: CandidateTrie) -> None:
    r = ct.restrict_to_groups(["Anatomy"])
    allowed = {ct.names[p] for p in ct.trie.seq_values[np.diff(r.cs) > 0]}
    assert allowed == {"Breast", "breast tissue", "Colon"}
    assert ct.restrict_to_groups({"Anatomy"}) is r  # cached
    both = ct.restrict_to_groups(["Anatomy", "Chemicals & Drugs"])
    assert both.num_allowed == 6
    assert ct.restrict_to_groups(["Nope"]).num_allowed == 0


def test_restrict_to_concepts(ct: CandidateTrie) -> None:
    def allowed(r: Restriction) -> set[str]:
        return {ct.names[p] for p in ct.trie.seq_values[np.diff(r.cs) > 0]}

    assert allowed(ct.restrict_to_concepts(["D003"])) == {"Breast Carcinoma", "breast cancer", "tumor"}
    # alternate ids in any accepted spelling resolve to the concept
    colorectal = {"Colorectal Neoplasms", "colorectal cancer", "colon cancer"}
    assert allowed(ct.restrict_to_concepts(["OMIM:114500"])) == colorectal
    assert allowed(ct.restrict_to_concepts(["114500"])) == colorectal
    assert allowed(ct.restrict_to_concepts(["MESH:C006", "unknown"])) == {"Colon"}
    assert ct.restrict_to_concepts([]).num_allowed == 0
    assert ct.resolve_code("X") is None


def test_save_load(tmp_path, ct: CandidateTrie, kb: KnowledgeBase) -> None:
    ct.save(tmp_path / "ct")
    assert sorted(p.name for p in (tmp_path / "ct").iterdir()) == [
        "concepts.json",
        "meta.json",
        "text_to_code.json",
        "trie",
    ]
    t2c = json.loads((tmp_path / "ct" / "text_to_code.json").read_text())
    assert t2c["breast cancer"] == ["D001", "D003"] and list(t2c) == ct.names
    back = CandidateTrie.load(tmp_path / "ct", expected_fingerprint=kb.fingerprint())
    assert isinstance(back.trie.child_tokens, np.memmap)
    assert back.names == ct.names and back.text_to_code == ct.text_to_code
    assert back.eos_token_id == ct.eos_token_id and back.tokenizer_name == ct.tokenizer_name
    assert np.array_equal(back.trie.child_tokens, ct.trie.child_tokens)
    assert back.restrict_to_groups(["Anatomy"]).num_allowed == 3
    assert back.restrict_to_concepts(["114500"]).num_allowed == 3
    for p in range(len(ct)):
        assert back.decode(ct.trie.sequence(p)) == ct.decode(ct.trie.sequence(p)) is not None


def test_load_refuses_other_kb(tmp_path, ct: CandidateTrie, kb: KnowledgeBase) -> None:
    ct.save(tmp_path / "ct")
    kb.add_synonyms("C006", ["large bowel"])
    with raises_code("E010", IndexMismatchError, match=f"built for KB {ct.kb_fingerprint} but is used with KB"):
        CandidateTrie.load(tmp_path / "ct", expected_fingerprint=kb.fingerprint())
    with raises_code("E200", FormatError, match="missing meta.json"):
        CandidateTrie.load(tmp_path)
    (tmp_path / "ct" / "text_to_code.json").write_text("{}")
    with raises_code("E201", FormatError, match="does not match"):
        CandidateTrie.load(tmp_path / "ct")


def test_no_eos_is_an_error(kb: KnowledgeBase, tokenizer: PreTrainedTokenizerFast) -> None:
    no_eos = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer)
    assert no_eos.eos_token_id is None
    with raises_code("E204", ConfigError, match="no EOS token"):
        CandidateTrie.from_kb(kb, no_eos, target=PromptFormat.target, show_progress=False)
    ct = CandidateTrie.from_kb(kb, no_eos, target=PromptFormat.target, eos_token_id=1, show_progress=False)
    assert ct.eos_token_id == 1 and ct.trie.num_sequences == 14


def test_custom_target_and_small_batches(kb: KnowledgeBase, tokenizer: PreTrainedTokenizerFast) -> None:
    ct = CandidateTrie.from_kb(kb, tokenizer, target=lambda n: n.lower(), batch_size=3, show_progress=False)
    ids = tokenizer("breast cancer", add_special_tokens=False)["input_ids"]
    assert ct.decode(ids) == ("breast cancer", ["D001", "D003"])
    # "Ibuprofen" and "ibuprofen" give the same target when lowered: both payloads end at one node
    node = ct.trie.walk(tokenizer("ibuprofen", add_special_tokens=False)["input_ids"] + [1])
    assert sorted(ct.names[p] for p in ct.trie.values(node)) == ["Ibuprofen", "ibuprofen"]
    assert ct.decode(tokenizer("ibuprofen", add_special_tokens=False)["input_ids"]) == ("Ibuprofen", ["C005"])


def test_constraint_helper(ct: CandidateTrie, tokenizer: PreTrainedTokenizerFast) -> None:
    c = ct.constraint(3, num_beams=2, restrictions=[ct.restrict_to_groups(["Chemicals & Drugs"])])
    assert isinstance(c, TrieConstraint) and c.eos_token_id == 1 and c.pad_token_id == 0
    allowed = c(0, torch.tensor([7, 7, 7]))
    firsts = sorted({target_ids(tokenizer, n)[0] for n in ("Ibuprofen", "ibuprofen", "Advil")})
    assert sorted(allowed) == firsts
    assert isinstance(ct.constraint(3, num_beams=2, logits_processor=True), TrieLogitsProcessor)


def test_the_trie_imports_no_linker_and_no_prompt_format() -> None:
    """The trie is a lower layer: what it needs of prompts (the target text) is a parameter."""
    import subprocess
    import sys

    code = (
        "import sys, genbel.trie; "
        "print(sorted(m for m in sys.modules if m.startswith(('genbel.linkers', 'genbel.generation'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
