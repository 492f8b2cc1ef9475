"""DocumentLinker (LongBEL): memory of earlier predictions, token-trimmed context, batching across
documents, semantic-guided decoding, the flat ``sample(bigbio_pages=...)`` API and errors."""

from __future__ import annotations

import pytest

from genbel.data.queries import queries_from_documents
from genbel.errors import ConfigError, InputError
from genbel.generation.cache import PromptPrefill
from genbel.generation.encoding import DocumentQuery
from genbel.linkers.document import NO_CODE, DocumentLinker
from genbel.linkers.ensemble import EnsembleLinker
from genbel.linkers.registry import create_linker
from tests.helpers import raises_code
from tests.linkers.document_fixtures import build, docs
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def gens():
    return {"llama": build("llama"), "bart": build("bart")}


def _by_doc(queries):
    out: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        out.setdefault(q.doc_id, []).append(i)
    return out


# ---------------------------------------------------------------------------------------------- memory
@pytest.mark.parametrize("arch", ["llama", "bart"])
def test_memory_is_exactly_the_earlier_top_predictions(gens, arch):
    dl = DocumentLinker(gens[arch], batch_size=2)
    queries = queries_from_documents(docs())
    linked, beams = dl.run(queries)
    assert [(q.doc_id, q.entity_id) for q in linked] == [(q.doc_id, q.entity_id) for q in queries]
    assert all(isinstance(q, DocumentQuery) for q in linked)
    for idx in _by_doc(linked).values():
        for j, i in enumerate(idx):
            expected = [(linked[p].text, beams[p][0].name) for p in idx[:j]]
            assert linked[i].memory == expected
    # the memory reaches the prompt: the memory block comes first
    q = linked[3]  # 4th mention of d1: three earlier mentions, two distinct
    text, kept = dl.encoder.fit_prompt(q)
    assert kept == 2
    assert text.startswith(dl.format.memory_block(q.memory))
    assert text.startswith(f"APC is {beams[1][0].name}\nbreast cancer is {beams[2][0].name}\n---\n")


def test_without_memory_every_prompt_is_memory_free(gens):
    dl = DocumentLinker(gens["llama"], use_memory=False)
    linked, _ = dl.run(queries_from_documents(docs()))
    assert all(q.memory == [] for q in linked)
    assert all("---" not in dl.encoder.fit_prompt(q)[0] for q in linked)


def test_batched_across_documents_equals_one_document_at_a_time(gens):
    dl = DocumentLinker(gens["llama"], batch_size=2)
    ds = docs()
    together = dl.link_documents(ds, k=3)
    alone = [pair for d in ds for pair in dl.link_documents([d], k=3)]
    assert len(together) == len(alone) == 8
    for (qa, ca), (qb, cb) in zip(together, alone):
        assert (qa.doc_id, qa.entity_id, qa.memory) == (qb.doc_id, qb.entity_id, qb.memory)
        assert [c.concept_id for c in ca] == [c.concept_id for c in cb]
        assert [c.score for c in ca] == pytest.approx([c.score for c in cb], abs=1e-4)


def test_an_unchanged_prompt_is_decoded_once_per_run(gens, monkeypatch):
    from genbel.data.model import Document, Entity, Passage

    # "APC" repeated, context 0: whenever a mention's prompt (its distinct memory included) equals an
    # earlier one in the run — here at least across the two identical documents — it is not decoded again
    text = "APC and APC and APC and APC"

    def doc(doc_id: str) -> Document:
        ents = [Entity(id=f"e{i}", type="Disease", text=["APC"], offsets=[(s, s + 3)], normalized=[])
                for i, s in enumerate((0, 8, 16, 24))]
        passage = Passage(id="p", type="abstract", text=[text], offsets=[(0, len(text))])
        return Document(id=doc_id, document_id=doc_id, passages=[passage], entities=ents)

    dl = DocumentLinker(gens["llama"], context_chars=0, batch_size=4, reuse_repeats=False)
    sizes = _record_batch_sizes(dl, monkeypatch)
    linked, beams = dl.run(queries_from_documents([doc("r1"), doc("r2")]))
    prompts = [tuple(dl.encoder.encode(q).input_ids) for q in linked]
    assert sum(sizes) == len(set(prompts)) <= 4 < len(linked)
    for i, p in enumerate(prompts):
        j = prompts.index(p)
        assert [(b.name, b.logprob) for b in beams[i]] == [(b.name, b.logprob) for b in beams[j]]


def test_link_groups_queries_by_document(gens):
    dl = DocumentLinker(gens["llama"])
    ds = docs()
    via_docs = dl.link_documents(ds, k=3)
    via_link = dl.link(queries_from_documents(ds), k=3)
    assert [[c.concept_id for c in cs] for _, cs in via_docs] == [
        [c.concept_id for c in cs] for cs in via_link
    ]
    kb = gens["llama"].kb  # each candidate: the concept's preferred name and the KB name the beam wrote
    assert all(c.name == kb[c.concept_id].name and c.matched in kb[c.concept_id].names
               for _, cs in via_docs for c in cs)


def test_context_chars_model_uses_the_generator_format(gens):
    g = gens["llama"]
    assert DocumentLinker(g, context_chars="model").format.context_chars == g.format.context_chars
    assert DocumentLinker(g).format.context_chars is None
    assert DocumentLinker(g, max_prompt_tokens=64).describe() == "mem10/doc/64tok"


@pytest.mark.parametrize(
    ("kw", "code"),
    [({"context_chars": "x"}, "E024"), ({"context_chars": -1}, "E023"), ({"max_prompt_tokens": 3}, "E023"),
     ({"memory_size": -1}, "E023")],
)
def test_invalid_settings(gens, kw, code):
    with raises_code(code, ConfigError):
        DocumentLinker(gens["llama"], **kw)


# ---------------------------------------------------------------------------------------------- sample API
def test_sample_returns_a_flat_list_of_k_predictions_per_mention(gens):
    dl = DocumentLinker(gens["llama"])
    pages = [d.to_dict() for d in docs()]
    k = 6
    preds = dl.sample(bigbio_pages=pages, num_beams=k)
    mentions = [e.mention for d in docs() for e in sorted(d.entities, key=lambda e: e.start)]
    assert len(preds) == k * len(mentions)
    keys = {"mention", "pred_concept_name", "pred_concept_code", "pred_concept_codes", "beam_score",
            "document_id", "entity_id", "beam"}
    for i in range(0, len(preds), k):
        block = preds[i : i + k]
        assert all(set(p) == keys for p in block)
        assert {p["mention"] for p in block} == {mentions[i // k]}
        assert [p["beam"] for p in block] == list(range(1, k + 1))
        assert block[0]["beam_score"] == 1.0
        scores = [p["beam_score"] for p in block]
        assert scores == sorted(scores, reverse=True)
    # the Chemicals & Drugs group has 5 names: the 6th beam of a Chemical mention is padding
    chem = [p for p in preds if p["entity_id"] == "d2-0"]
    assert chem[-1] == {
        "mention": "Ibuprofen", "pred_concept_name": "", "pred_concept_code": NO_CODE,
        "pred_concept_codes": [], "beam_score": 0.0, "document_id": "d2", "entity_id": "d2-0", "beam": 6,
    }


def test_semantic_guided_decoding_restricts_each_mention_to_its_group(gens):
    dl = DocumentLinker(gens["llama"])
    pages = [d.to_dict() for d in docs()]
    kb = gens["llama"].kb
    types = {e.id: e.type for d in docs() for e in d.entities}
    preds = dl.sample(bigbio_pages=pages, num_beams=8)
    groups = {"Chemical": "Chemicals & Drugs", "Disease": "Disorders"}
    for p in preds:
        for code in p["pred_concept_codes"]:
            assert groups[types[p["entity_id"]]] in kb[code].semantic_groups
    # "APC" is a name of a disorder and of a chemical: as a Chemical it only maps to the chemical
    apc = [p for p in preds if p["entity_id"] == "d2-1" and p["pred_concept_name"] == "APC"]
    assert apc and all(p["pred_concept_codes"] == ["C001"] for p in apc)
    free = dl.sample(bigbio_pages=pages, num_beams=8, restrict_to_group=False)
    chem_codes = {c for p in free if types[p["entity_id"]] == "Chemical" for c in p["pred_concept_codes"]}
    assert any(c.startswith("D") for c in chem_codes)


def test_bad_offsets_raise_an_error_naming_the_entity(gens):
    dl = DocumentLinker(gens["llama"])
    page = docs()[0].to_dict()
    page["entities"][1]["offsets"] = [[5, 8]]
    with raises_code("E005", InputError, match=r"bigbio_pages\[0\].*entity 'd1-1'.*offsets 5-8"):
        dl.sample(bigbio_pages=[page], num_beams=2)
    doc = docs()[0]
    doc.entities[0].offsets = [(0, 3)]
    with raises_code("E005", InputError, match="d1-0"):
        dl.link_documents([doc])


def test_unknown_type_raises_naming_the_entity(gens):
    dl = DocumentLinker(gens["llama"])
    page = docs()[2].to_dict()
    page["entities"][0]["type"] = "Spaceship"
    with raises_code("E250", InputError, match=r"entity d3-0.*'Spaceship'"):
        dl.sample(bigbio_pages=[page], num_beams=2)


def test_model_card_example_page(gens):
    """The LongBEL card's input shape (``text`` lists, ``type`` = semantic group)."""
    text = "A pregnant woman with breast cancer took ibuprofen for the pain."
    s = text.index("breast cancer")
    page = {
        "id": "001", "document_id": "doc_001",
        "passages": [{"id": "0", "type": "paragraph", "text": [text], "offsets": [[0, len(text)]]}],
        "entities": [
            {"id": "T1", "type": "Disorders", "text": ["breast cancer"], "offsets": [[s, s + 13]]},
            {"id": "T2", "type": "Chemicals & Drugs", "text": ["ibuprofen"],
             "offsets": [[text.index("ibuprofen"), text.index("ibuprofen") + 9]]},
        ],
        "events": [], "coreferences": [], "relations": [],
    }
    preds = DocumentLinker(gens["llama"]).sample(bigbio_pages=[page], num_beams=3)
    assert [p["mention"] for p in preds] == ["breast cancer"] * 3 + ["ibuprofen"] * 3
    assert all(p["pred_concept_code"].startswith("C") for p in preds[3:] if p["pred_concept_name"])


# ---------------------------------------------------------------------------------------------- registry
def test_factory_loads_a_saved_linker(gens, tmp_path):
    g = gens["llama"]
    g.save(tmp_path / "lk")
    lk = create_linker(f"document:{tmp_path / 'lk'}", g.kb, use_memory="false", max_prompt_tokens="64",
                       context_chars="doc")
    assert isinstance(lk, DocumentLinker)
    assert (lk.use_memory, lk.max_prompt_tokens, lk.format.context_chars) == (False, 64, None)
    ens = create_linker(f"document:{tmp_path / 'lk'}", g.kb, ensemble="true")
    assert isinstance(ens, EnsembleLinker)
    assert [m.use_memory for m in ens.members] == [True, False]
    with raises_code("E255", ConfigError):
        create_linker("document", g.kb)
    with raises_code("E024", ConfigError):
        create_linker(f"document:{tmp_path / 'lk'}", g.kb, use_memory="maybe")


@pytest.mark.parametrize("search", ["genbel", "hf"])
@pytest.mark.parametrize("memory_size", [10, 2])
def test_reusing_each_documents_prompt_prefix_gives_the_same_beams(gens, monkeypatch, memory_size, search):
    """The memory block is a growing prefix: its key/value states are reused, with identical results
    (memory_size=2 also exercises prompts whose prefix changed because old entries were left out),
    with genbel's beam-search loop and with Hugging Face generate."""
    gen = gens["llama"]
    monkeypatch.setattr(gen.decoder, "search", search)
    ds = docs()
    plain = DocumentLinker(gen, batch_size=3, memory_size=memory_size, reuse_prefix=False)
    reuse = DocumentLinker(gen, batch_size=3, memory_size=memory_size)
    assert reuse.reuse_prefix and not plain.reuse_prefix
    computed: list[int] = []  # real (unmasked) tokens computed by each batched prefill
    rows: list[int] = []
    real_forward, real_prefill = gen.model.forward, PromptPrefill.prompt_cache_with_prefixes
    in_prefill = []

    def counting(*args, **kwargs):
        ids = kwargs.get("input_ids")
        if in_prefill and ids is not None:
            computed.append(int(kwargs["attention_mask"][:, -ids.shape[1]:].sum()))
            rows.append(ids.shape[0])
        return real_forward(*args, **kwargs)

    def prefill(self, *args, **kwargs):
        in_prefill.append(True)
        try:
            return real_prefill(self, *args, **kwargs)
        finally:
            in_prefill.pop()

    widths: list[tuple[int, int]] = []  # (mask width, longest prompt) of each beam search
    real_generate = gen.model.generate

    def generating(*args, **kwargs):
        mask = kwargs["attention_mask"]
        widths.append((mask.shape[1], int(mask.sum(1).max())))
        return real_generate(*args, **kwargs)

    qa, ba = plain.run(queries_from_documents(ds))
    monkeypatch.setattr(gen.model, "forward", counting)
    monkeypatch.setattr(gen.model, "generate", generating)
    monkeypatch.setattr(PromptPrefill, "prompt_cache_with_prefixes", prefill)
    qb, bb = reuse.run(queries_from_documents(ds))
    assert [q.memory for q in qa] == [q.memory for q in qb]
    for x, y in zip(ba, bb):
        assert [b.name for b in x] == [b.name for b in y]
        assert [b.logprob for b in x] == pytest.approx([b.logprob for b in y], abs=1e-4)
    # prompts are prefilled a batch at a time, later ones computing only their new tokens
    full = sum(len(reuse.encoder.encode(q).input_ids) - 1 for q in qb)
    assert computed and max(rows) > 1
    assert sum(computed) < full
    # HF beam search runs on the compact layout [pad][prompt]: as wide as the batch's longest prompt
    if search == "hf":
        assert widths and all(width == longest for width, longest in widths)
    else:
        assert not widths


def test_a_repeated_mention_takes_the_beams_of_its_earlier_occurrence(gens, monkeypatch):
    gen = gens["llama"]
    queries = queries_from_documents(docs())
    by_doc = _by_doc(queries)
    def key(i):
        return queries[i].text, queries[i].type

    repeats = [i for idx in by_doc.values() for j, i in enumerate(idx) if any(key(p) == key(i) for p in idx[:j])]
    assert repeats  # the fixture repeats "APC" in d1
    decoded: list[str] = []

    dl = DocumentLinker(gen, batch_size=2)
    monkeypatch.setattr(dl.decoder, "generate", _recording(dl.decoder.generate, decoded))
    linked, beams = dl.run(queries)
    assert len(decoded) == len(queries) - len(repeats)
    for i in repeats:
        idx = by_doc[queries[i].doc_id]
        prev = max(p for p in idx[: idx.index(i)] if key(p) == key(i))
        assert [(b.name, b.codes, b.logprob) for b in beams[i]] == [
            (b.name, b.codes, b.logprob) for b in beams[prev]
        ]
        assert linked[i].memory[-1][0] == linked[i - 1].text  # its memory still holds every earlier mention
    full = DocumentLinker(gen, batch_size=2, reuse_repeats=False)
    decoded.clear()
    monkeypatch.setattr(full.decoder, "generate", _recording(full.decoder.generate, decoded))
    full.run(queries)
    assert len(decoded) == len(queries)


def _recording(generate, log):
    def wrapper(batch, **kwargs):
        log.extend(q.text for q in batch)
        return generate(batch, **kwargs)

    return wrapper


def test_types_count_for_a_repeat_only_where_they_change_the_decode(gens, monkeypatch):
    from tests.conftest import make_doc

    # NCBI-disease style: one string, several corpus types, all of them Disorders
    d = make_doc(
        "n1", "APC here, APC there and APC once more.",
        [("APC", "SpecificDisease", "D003"), ("APC", "Modifier", "D003"), ("APC", "Chemical", "C001")],
    )
    queries = queries_from_documents([d])
    decoded: list[str] = []
    dl = DocumentLinker(gens["llama"], batch_size=2, include_group=False)  # types not in the prompt
    monkeypatch.setattr(dl.decoder, "generate", _recording(dl.decoder.generate, decoded))
    _, beams = dl.run(queries)
    assert len(decoded) == 2  # SpecificDisease and Modifier are one group; Chemical is another
    assert [b.name for b in beams[1]] == [b.name for b in beams[0]]
    assert all(c.startswith("C") for b in beams[2] for c in b.codes)

    shown = DocumentLinker(gens["llama"], batch_size=2, include_group=True)  # the prompt shows the type
    assert shown.format.include_group
    decoded.clear()
    monkeypatch.setattr(shown.decoder, "generate", _recording(shown.decoder.generate, decoded))
    shown.run(queries)
    assert len(decoded) == 3


def test_a_repeat_does_not_hold_its_document_back_a_round(gens, monkeypatch):
    """Rounds decode the next mention *that needs a decode* of every document: repeats take none."""
    from tests.conftest import make_doc

    x = make_doc(
        "x", "pain, pain, pain and APC.", [("pain", "Disease", "D004")] * 3 + [("APC", "Disease", "D003")]
    )
    y = make_doc(
        "y", "breast cancer, colon cancer and a tumour of the breast.",
        [("breast cancer", "Disease", "D001"), ("colon cancer", "Disease", "D002"),
         ("tumour of the breast", "Disease", "D001")],
    )
    dl = DocumentLinker(gens["llama"], batch_size=2, include_group=False)
    sizes = _record_batch_sizes(dl, monkeypatch)
    _, beams = dl.run(queries_from_documents([x, y]))
    # x decodes "pain" then "APC", y its three mentions: [pain, breast cancer], [APC, colon cancer],
    # [tumour of the breast] (rounds by mention index took 4 batches: x's repeats held "APC" back)
    assert sizes == [2, 2, 1]
    alone = [
        DocumentLinker(gens["llama"], batch_size=2, include_group=False).run(queries_from_documents([d]))[1]
        for d in (x, y)
    ]
    for together, one in zip(beams, [bs for r in alone for bs in r]):
        assert [b.name for b in together] == [b.name for b in one]


def _record_batch_sizes(dl, monkeypatch) -> list[int]:
    """How many queries ``dl`` decodes in each of its rounds from now on (filled as it runs)."""
    sizes: list[int] = []
    real = dl.decoder.decode_todo

    def counting(encoded, scopes, todo, *args, **kwargs):
        sizes.append(len(todo))
        return real(encoded, scopes, todo, *args, **kwargs)

    monkeypatch.setattr(dl.decoder, "decode_todo", counting)
    return sizes


def test_lines_memory_prompts_extend_one_another_and_compute_fewer_prompt_tokens(gens, monkeypatch):
    """A model trained with ``memory_style="lines"`` (mention-only prompts): the memory keeps each
    mention's first name, each decode's prompt extends the previous one of its document, and reusing
    the prefix computes fewer prompt tokens than the block layout, with the same beams as without reuse."""
    from dataclasses import replace

    gen = gens["llama"]
    new_tokens: list[int] = []
    real_rows = PromptPrefill.prefill_rows

    def counting(self, bodies, reused):
        new_tokens.append(sum(len(b) - p for b, (p, _) in zip(bodies, reused)))
        return real_rows(self, bodies, reused)

    monkeypatch.setattr(PromptPrefill, "prefill_rows", counting)
    cost = {}
    runs = {}
    for style in ("block", "lines"):
        monkeypatch.setattr(gen, "format", replace(gen.format, context_chars=0, memory_style=style))
        for reuse in (True, False):
            new_tokens.clear()
            dl = DocumentLinker(gen, batch_size=2, context_chars=0, reuse_prefix=reuse)
            assert dl.format.memory_style == style
            runs[style, reuse] = dl.run(queries_from_documents(docs()))
            cost[style, reuse] = sum(new_tokens)
    linked, beams = runs["lines", True]
    assert [[b.name for b in bs] for bs in beams] == [[b.name for b in bs] for bs in runs["lines", False][1]]
    dl = DocumentLinker(gen, context_chars=0)
    full = sum(len(dl.encoder.encode(q).input_ids) - 1 for q in linked)
    assert cost["lines", True] < cost["block", True] and cost["lines", True] < full
    by_doc = _by_doc(linked)
    d1 = by_doc["d1"]  # breast cancer, APC, breast cancer (a repeat: not decoded), pain
    texts = [dl.encoder.fit_prompt(linked[i])[0] for i in (d1[1], d1[3])]
    first, apc = beams[d1[0]][0].name, beams[d1[1]][0].name
    assert texts[0] == f"breast cancer is {first}\nAPC is"
    assert texts[1] == f"breast cancer is {first}\nAPC is {apc}\npain is"
    assert dl.describe().startswith("mem10-lines/0ch")
