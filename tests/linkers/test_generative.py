"""GenerativeLinker on tiny random Llama / BART / T5 models: constrained outputs, scores, restrictions,
batching, persistence (full checkpoints and LoRA adapters) and the registry factory."""

from __future__ import annotations

import json
import math

import pytest
import torch

from genbel.data.queries import MentionQuery
from genbel.errors import ConfigError, Errors, InputError
from genbel.generation.prompts import parse_markup
from genbel.generation.saved import save_linker_config
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.linkers.generative import NO_CODE, GenerativeLinker
from genbel.linkers.registry import create_linker
from tests.helpers import raises_code
from tests.linkers.generative_tiny import (
    SENTENCES,
    tiny_kb,
    tiny_model,
    tiny_tokenizer,
)
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)

ARCHS = ["llama", "bart", "t5"]


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return tiny_kb()


@pytest.fixture(scope="module")
def tok(kb):
    return tiny_tokenizer(kb)


@pytest.fixture(scope="module")
def linkers(kb, tok) -> dict[str, GenerativeLinker]:
    return {a: GenerativeLinker(tiny_model(a, len(tok)), tok, kb) for a in ARCHS}


def _queries(sentences=SENTENCES):
    return [parse_markup(s) for s in sentences]


def _summary(results):
    return [[(b["pred_concept_name"], b["pred_concept_codes"]) for b in r] for r in results]


# ---------------------------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("arch", ARCHS)
def test_constrained_beams_are_kb_names_sorted_best_first(linkers, kb, arch):
    lk = linkers[arch]
    results = lk.sample(sentences=SENTENCES, constrained=True, num_beams=4)
    assert len(results) == len(SENTENCES)
    for sentence, beams in zip(SENTENCES, results):
        assert 1 <= len(beams) <= 4
        assert beams[0]["beam_score"] == 1.0
        scores = [b["beam_score"] for b in beams]
        assert scores == sorted(scores, reverse=True) and all(0.0 < s <= 1.0 for s in scores)
        names = [b["pred_concept_name"] for b in beams]
        assert len(set(names)) == len(names)
        for b in beams:
            assert b["mention"] == parse_markup(sentence).surface
            assert b["pred_concept_name"] in lk.text_to_code
            assert b["pred_concept_codes"] and set(b["pred_concept_codes"]) <= set(
                lk.text_to_code[b["pred_concept_name"]]
            )
            assert b["pred_concept_code"] == b["pred_concept_codes"][0]
            assert all(b["pred_concept_name"] in kb[c].names for c in b["pred_concept_codes"])


@pytest.mark.parametrize("arch", ARCHS)
def test_beam_scores_equal_teacher_forced_length_normalised_logprobs(linkers, arch):
    lk = linkers[arch]
    qs = _queries()
    beams = lk.generate(qs, num_beams=4)
    scored = lk.score_candidates(qs, [[b.name for b in bs] for bs in beams])
    for bs, ss in zip(beams, scored):
        assert [round(b.logprob, 4) for b in bs] == pytest.approx([round(s, 4) for s in ss], abs=2e-4)
    # beam_score = exp(s_i - s_max)
    sample = lk.sample(SENTENCES, num_beams=4)
    for bs, r in zip(beams, sample):
        assert [x["beam_score"] for x in r] == pytest.approx(
            [math.exp(b.logprob - bs[0].logprob) for b in bs]
        )


def test_score_candidates_sum_is_mean_times_target_length(linkers):
    lk = linkers["llama"]
    qs = _queries(SENTENCES[:2])
    names = [["Breast Neoplasms", "ache"], ["Aspirin"]]
    mean = lk.score_candidates(qs, names)
    total = lk.score_candidates(qs, names, normalize=False)
    for n_row, m_row, t_row in zip(names, mean, total):
        for n, m, t in zip(n_row, m_row, t_row):
            assert t == pytest.approx(m * len(lk.encoder.encode_target(n)), rel=1e-5)
            assert t < 0
    with raises_code("E252", InputError, match="E252|candidate lists"):
        lk.score_candidates(qs, [["ache"]])


@pytest.mark.parametrize("arch", ARCHS)
def test_exhaustive_beam_search_returns_every_group_name_best_first(linkers, arch):
    """The Chemicals group has 5 names: 5 beams enumerate them, ranked as teacher forcing ranks them."""
    lk = linkers[arch]
    chem = [n for n, codes in lk.text_to_code.items() if any(c.startswith("C") for c in codes)]
    assert len(chem) == 5
    q = parse_markup("Treatment with [Ibuprofen]{Chemicals & Drugs} reduced the pain.")
    beams = lk.generate([q], num_beams=5)[0]
    assert sorted(b.name for b in beams) == sorted(chem)
    scores = lk.score_candidates([q], [chem])[0]
    assert [b.name for b in beams] == [n for _, n in sorted(zip(scores, chem), key=lambda x: -x[0])]


@pytest.mark.parametrize("arch", ARCHS)
def test_batch_results_equal_one_by_one(linkers, arch):
    lk = linkers[arch]
    batched = lk.sample(SENTENCES, num_beams=3, batch_size=len(SENTENCES))
    single = [lk.sample([s], num_beams=3, batch_size=1)[0] for s in SENTENCES]
    assert _summary(batched) == _summary(single)
    for a, b in zip(batched, single):
        assert [x["beam_score"] for x in a] == pytest.approx([x["beam_score"] for x in b], abs=1e-4)


@pytest.mark.parametrize("arch", ["llama", "bart"])
def test_repeated_inputs_are_decoded_once_with_identical_results(linkers, arch, monkeypatch):
    lk = linkers[arch]
    qs = _queries(SENTENCES[:2])
    calls: list[int] = []
    real = lk.decoder.decode_todo

    def counting(encoded, scopes, todo, *args, **kwargs):
        calls.append(len(todo))
        return real(encoded, scopes, todo, *args, **kwargs)

    monkeypatch.setattr(lk.decoder, "decode_todo", counting)
    alone = lk.generate(qs, num_beams=3)
    n_alone = sum(calls)
    calls.clear()
    # the same two queries three times, plus the first under candidate restrictions (another scope)
    repeated = lk.generate(qs * 3 + qs[:1], num_beams=3, candidates=[None] * 6 + [["D001"]])
    assert sum(calls) == n_alone + 1
    for i in range(6):
        want = alone[i % 2]
        assert [(b.name, b.codes) for b in repeated[i]] == [(b.name, b.codes) for b in want]
        assert [b.logprob for b in repeated[i]] == pytest.approx([b.logprob for b in want], abs=1e-4)
    assert {c for b in repeated[6] for c in b.codes} <= {"D001"}
    repeated[0][0].codes.append("X")  # copies do not share state
    assert "X" not in repeated[2][0].codes


def test_unconstrained_returns_no_code_for_names_outside_the_kb(linkers):
    lk = linkers["llama"]
    results = lk.sample(SENTENCES[:3], constrained=False, num_beams=3)
    seen_no_code = False
    for beams in results:
        assert beams and beams[0]["beam_score"] == 1.0
        for b in beams:
            if b["pred_concept_name"] in lk.text_to_code:
                assert b["pred_concept_codes"] == lk.text_to_code[b["pred_concept_name"]]
            else:
                seen_no_code = True
                assert b["pred_concept_code"] == NO_CODE and b["pred_concept_codes"] == []
    assert seen_no_code  # an untrained model writes strings that are not KB names
    assert lk.sample(SENTENCES[:3], constrained=False, num_beams=3) == results  # deterministic


# ---------------------------------------------------------------------------------------------- restrictions
@pytest.mark.parametrize("arch", ["llama", "bart"])
def test_group_restriction_keeps_names_and_codes_of_the_group(linkers, kb, arch):
    lk = linkers[arch]
    sentences = ["[APC]{Chemical} was given", "[APC]{DISO} mutations", "[APC]{T047} mutations"]
    chem, diso = lk.sample(sentences[:2], num_beams=6)
    assert {c for b in chem for c in b["pred_concept_codes"]} <= {"C001", "C002"}
    assert {c for b in diso for c in b["pred_concept_codes"]} <= {"D001", "D002", "D003", "D004"}
    # "APC" names a disorder and a chemical: the codes shown are those of the requested group
    for beams, code in ((chem, "C001"), (diso, "D003")):
        apc = [b for b in beams if b["pred_concept_name"] == "APC"]
        assert [b["pred_concept_codes"] for b in apc] in ([], [[code]])
    free = lk.sample(["[APC]{Chemical} was given"], num_beams=12, restrict_to_group=False)[0]
    assert {c for b in free for c in b["pred_concept_codes"]} & {"D001", "D002", "D003", "D004"}
    apc = [b for b in free if b["pred_concept_name"] == "APC"]
    assert [b["pred_concept_codes"] for b in apc] == [["D003", "C001"]]


@pytest.mark.parametrize("arch", ARCHS)
def test_more_beams_than_allowed_names_returns_only_real_names(linkers, arch):
    """generate() pads an exhausted trie with penalised filler hypotheses: none may come out."""
    chem = {"Ibuprofen", "ibuprofen", "APC", "Aspirin", "acetylsalicylic acid"}
    (beams,) = linkers[arch].sample(["[APC]{Chemical} was given"], num_beams=9)
    assert [b["pred_concept_name"] for b in beams if b["pred_concept_name"] in chem] == [
        b["pred_concept_name"] for b in beams
    ]
    assert len(beams) == 5 and min(b["beam_score"] for b in beams) > 1e-6
    (only,) = linkers[arch].link([parse_markup("[APC]{Disease} x")], k=5, candidates=[["C002"]])
    assert [c.concept_id for c in only] == ["C002"]


def test_group_absent_from_the_kb_gives_no_beam_and_unknown_group_raises(linkers):
    lk = linkers["llama"]
    assert lk.sample(["the [heart]{Anatomy} failed"]) == [[]]
    with raises_code("E250", InputError) as e:
        lk.sample(["[APC]{Disease} x", "a [thing]{Foo} here"])
    assert "sentence 2" in str(e.value) and "'Foo'" in str(e.value)
    assert lk.sample(["no group: [APC]{} x"])[0]  # an empty group is allowed


@pytest.mark.parametrize(
    "line, reason",
    [
        ("no markup at all", "no [mention]{Group} span"),
        ("[APC] without group", "must be followed by {Group}"),
        ("[a]{X} and [b]{Y}", "more than one marked mention"),
    ],
)
def test_malformed_markup_raises_naming_the_sentence(linkers, line, reason):
    with raises_code("E011", InputError) as e:
        linkers["llama"].sample(["[APC]{Disease} fine", line])
    assert "sentence 2" in str(e.value) and reason in str(e.value)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_candidate_restriction(linkers, arch):
    lk = linkers[arch]
    qs = _queries(SENTENCES[:3])
    out = lk.link(qs, k=5, candidates=[["D001"], ["MESH:C002", "D004"], []])
    assert [c.concept_id for c in out[0]] == ["D001"]
    assert {c.concept_id for c in out[1]} == {"C002", "D004"}  # candidates override the {Chemical} group
    assert out[2] == []
    with raises_code("E020", InputError, match="D999"):
        lk.link(qs[:1], candidates=[["D999"]])
    with raises_code("E252", InputError, match="candidate lists"):
        lk.link(qs, candidates=[["D001"]])


def test_link_maps_beams_to_distinct_concepts_and_shared_names_to_all_codes(tok):
    kb = KnowledgeBase(
        [
            Concept("X1", "cold", ["common cold"], semantic_groups=["Disorders"]),
            Concept("X2", "Cold Temperature", ["cold"], semantic_groups=["Disorders"]),
            Concept("X3", "fever", ["pyrexia", "cold fever"], semantic_groups=["Disorders"]),
        ]
    )
    lk = GenerativeLinker(tiny_model("llama", len(tok)), tok, kb, num_beams=6)
    q = [parse_markup("she caught a [cold]{Disease} yesterday")]
    beams = lk.generate(q, num_beams=6)[0]
    cands = lk.link(q, k=3)[0]
    assert [c.concept_id for c in cands] == list(dict.fromkeys(c for b in beams for c in b.codes))[:3]
    assert len({c.concept_id for c in cands}) == len(cands) == 3
    assert cands[0].score == 1.0 and [c.name for c in cands] == [kb[c.concept_id].name for c in cands]
    # matched: the name the beam wrote (one name, "cold", gives X1 "cold" and X2 "Cold Temperature")
    first_beam = {cid: b.name for b in reversed(beams) for cid in b.codes}
    assert [c.matched for c in cands] == [first_beam[c.concept_id] for c in cands]
    assert all(c.matched in kb[c.concept_id].names for c in cands)
    by_name = {b.name: b for b in beams}
    assert by_name["cold"].codes == ["X1", "X2"]
    only_cold = lk.link(q, k=5, candidates=[["X1", "X2"]])[0]
    first = [b for b in beams if b.name == "cold"][0]
    assert [c.concept_id for c in only_cold][:2] == ["X1", "X2"] or beams.index(first) > 0
    assert lk.link(q, k=1)[0] == cands[:1]


# ---------------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("arch", ["llama", "bart"])
def test_save_load_round_trip(linkers, kb, tmp_path, arch):
    lk = linkers[arch]
    d = lk.save(tmp_path / "linker")
    for f in (
        "genbel_linker.json",
        "text_to_code.json",
        "config.json",
        "tokenizer.json",
        "trie/meta.json",
        "kb",
    ):
        assert (d / f).exists(), f
    cfg = json.loads((d / "genbel_linker.json").read_text())
    assert cfg["architecture"] == ("causal" if arch == "llama" else "seq2seq")
    assert cfg["kb"] == {"name": kb.name, "fingerprint": kb.fingerprint()}
    assert cfg["prompt_format"]["style"] == ("syncabel" if arch == "llama" else "genbioel")
    assert json.loads((d / "text_to_code.json").read_text()) == lk.text_to_code
    loaded = GenerativeLinker.load(d, quantize="none")  # KB from kb/, trie memory-mapped from trie/; weights as saved
    assert loaded.kb.fingerprint() == kb.fingerprint()
    assert loaded.trie.kb_fingerprint == kb.fingerprint()
    assert loaded.sample(SENTENCES, num_beams=3) == lk.sample(SENTENCES, num_beams=3)
    again = lk.save(d)  # an earlier linker directory is replaced
    assert again == d and GenerativeLinker.load(d, kb).architecture == lk.architecture


def test_load_with_another_kb_rebuilds_the_trie(linkers, tmp_path):
    d = linkers["llama"].save(tmp_path / "linker")
    other = KnowledgeBase([Concept("Z1", "Zika virus infection", ["zika"], semantic_groups=["Disorders"])])
    lk = GenerativeLinker.load(d, other)
    assert lk.text_to_code == {"Zika virus infection": ["Z1"], "zika": ["Z1"]}
    out = lk.sample(["[zika]{Disorders} outbreak"], num_beams=2)[0]
    assert {b["pred_concept_code"] for b in out} == {"Z1"}


def test_save_refuses_to_replace_a_foreign_directory_and_is_atomic(linkers, tmp_path, monkeypatch):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with raises_code("E256", ConfigError, match="refusing to replace"):
        linkers["llama"].save(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"

    def boom(path):
        raise OSError("disk full")

    monkeypatch.setattr(linkers["llama"].kb, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        linkers["llama"].save(tmp_path / "half")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_lora_adapter_directory_loads_over_its_base_model(kb, tok, tmp_path):
    from peft import LoraConfig, get_peft_model

    from genbel.generation.prompts import PromptFormat

    base_dir = tmp_path / "base"
    tiny_model("llama", len(tok), seed=1).save_pretrained(base_dir)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    tok.save_pretrained(adapter_dir)
    save_linker_config(
        adapter_dir, architecture="causal", prompt_format=PromptFormat(), base_model=str(base_dir)
    )
    assert (adapter_dir / "adapter_config.json").exists() and not (adapter_dir / "config.json").exists()

    loaded = GenerativeLinker.load(adapter_dir, kb, quantize="none")  # trie built (none saved), adapter merged
    assert not hasattr(loaded.model, "peft_config")
    reference = GenerativeLinker(peft_model.merge_and_unload(), tok, kb)
    plain = GenerativeLinker(AutoModelForCausalLM.from_pretrained(base_dir), tok, kb)
    expected = reference.sample(SENTENCES, num_beams=3, batch_size=6)
    assert loaded.sample(SENTENCES, num_beams=3, batch_size=6) == expected
    assert _summary(plain.sample(SENTENCES, num_beams=3, batch_size=6)) != _summary(expected)
    unmerged = GenerativeLinker.load(adapter_dir, kb, merge_lora=False)
    assert hasattr(unmerged.model, "peft_config")
    assert _summary(unmerged.sample(SENTENCES, num_beams=3, batch_size=6)) == _summary(expected)


def test_load_errors_name_the_directory(tmp_path, kb):
    with raises_code("E251", ConfigError, match="genbel_linker.json"):
        GenerativeLinker.load(tmp_path, kb)
    (tmp_path / "genbel_linker.json").write_text('{"architecture": "causal"}')
    with raises_code("E251", ConfigError, match=r"kb/ \(or pass a KB\)"):
        GenerativeLinker.load(tmp_path)


def test_registry_factory(linkers, kb, tmp_path):
    d = linkers["bart"].save(tmp_path / "linker")
    lk = create_linker(f"generative:{d}", kb, num_beams=2, quantize="none")
    assert isinstance(lk, GenerativeLinker) and lk.num_beams == 2 and lk.architecture == "seq2seq"
    assert lk.sample(SENTENCES[:2], num_beams=3) == linkers["bart"].sample(SENTENCES[:2], num_beams=3)
    q = [MentionQuery("colon cancer", type="Disease")]
    assert [c.concept_id for c in lk.link(q, k=1)[0]] == [lk.generate(q, num_beams=2)[0][0].codes[0]]
    from genbel.linkers.generative import _factory
    from genbel.linkers.registry import resolve_alias

    assert resolve_alias("generative") == "generative:default"  # a bare name is the shipped model
    with raises_code("E255", ConfigError, match="no model given"):
        _factory(kb, None)
    assert Errors.E255.startswith("[E255] {where}")
    # a plain Hugging Face checkpoint (no genbel_linker.json): loaded as a model, trie built for the KB
    plain = tmp_path / "hf"
    linkers["llama"].model.save_pretrained(plain)
    linkers["llama"].tokenizer.save_pretrained(plain)
    lk = create_linker(f"generative:{plain}", kb, batch_size=3, quantize="none")
    assert lk.architecture == "causal" and lk.base_model == str(plain) and lk.batch_size == 3
    assert lk.format.style == "syncabel" and lk.text_to_code == linkers["llama"].text_to_code
    assert lk.sample(SENTENCES[:2], num_beams=3) == linkers["llama"].sample(SENTENCES[:2], num_beams=3)


def test_encoder_only_checkpoint_is_refused(kb, tok, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    BertForMaskedLM(cfg).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    with raises_code("E253", ConfigError, match="unsupported model type 'bert'"):
        GenerativeLinker.load(tmp_path / "bert", kb)
    assert not hasattr(GenerativeLinker, "from_pretrained")  # genbel's verb is load


def test_generative_default_names_the_shipped_model(monkeypatch, kb) -> None:
    from genbel.linkers import generative
    from genbel.linkers.default import default_model_dir

    seen = []
    monkeypatch.setattr(generative.GenerativeLinker, "load", classmethod(lambda cls, path, kb, **kw: seen.append(path)))
    generative._factory(kb, "default")
    assert seen == [str(default_model_dir())]


def test_bf16_linear_layers_round_only_their_products_and_auto_picks_them_where_native(tmp_path, monkeypatch):
    from genbel.generation import quantize
    from genbel.generation.quantize import BFloat16Linear, quantization_of, resolve

    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 8)
    b = BFloat16Linear(lin)
    x = torch.randn(5, 16)
    assert b.weight.dtype == torch.bfloat16 and b(x).dtype == torch.float32
    assert torch.allclose(b(x), lin(x), atol=0.05) and not torch.equal(b(x), lin(x))
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    path = GenerativeLinker(tiny_model("llama", len(tok)), tok, kb).save(tmp_path / "lk")
    fp = GenerativeLinker.load(path, quantize="none")
    bf = GenerativeLinker.load(path, quantize="bf16")
    assert quantization_of(fp.model) == "none" and quantization_of(bf.model) == "bf16"
    assert isinstance(bf.model.get_output_embeddings(), BFloat16Linear)  # the head too
    assert bf.model.get_input_embeddings().weight.dtype == torch.float32
    qs = [parse_markup(s) for s in SENTENCES]
    beams = bf.generate(qs, num_beams=3)
    assert all(b.name in bf.text_to_code for bs in beams for b in bs) and all(beams[:3])
    first = [(bs[0].name, bs[0].logprob) for bs in beams]
    ref = [(bs[0].name, bs[0].logprob) for bs in fp.generate(qs, num_beams=3)]
    assert [n for n, _ in first] == [n for n, _ in ref]  # same top beam, its score within bf16 rounding
    assert all(abs(a - b) < 0.05 for (_, a), (_, b) in zip(first, ref))
    with raises_code("E634", ConfigError, match="quantize='bf16'"):
        bf.save(tmp_path / "again")
    # "auto": bfloat16 only for a float32 CPU model with merged LoRA, where the CPU computes it natively
    monkeypatch.setattr(quantize, "bf16_supported", lambda: True)
    assert resolve("auto", fp.model) == "bf16" and resolve(None, fp.model) == "none"
    assert resolve("auto", fp.model.to(torch.float16)) == "none"
    assert GenerativeLinker.load(path, model=fp.model).model is fp.model  # a caller's model is not changed
    assert quantization_of(fp.model) == "none"
    monkeypatch.setattr(quantize, "bf16_supported", lambda: False)
    assert resolve("auto", fp.model.float()) == "none" and quantization_of(GenerativeLinker.load(path).model) == "none"


def test_int8_quantisation_replaces_the_linear_layers_and_still_decodes_kb_names(tmp_path):
    from genbel.generation.quantize import is_quantized, quantize_model

    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    path = GenerativeLinker(tiny_model("llama", len(tok)), tok, kb).save(tmp_path / "lk")
    fp = GenerativeLinker.load(path)
    q8 = GenerativeLinker.load(path, quantize="int8")
    assert is_quantized(q8.model) and not is_quantized(fp.model)
    qs = [parse_markup(s) for s in SENTENCES]
    beams = q8.generate(qs, num_beams=3)
    assert all(b.name in q8.text_to_code for bs in beams for b in bs) and all(beams[:3])
    assert len(q8.link(qs, k=2)) == len(qs)
    assert quantize_model(fp.model, "none") is fp.model and quantize_model(fp.model, None) is fp.model
    with raises_code("E633", ConfigError, match="int8"):
        GenerativeLinker.load(path, quantize="int4")
    # what `--set quantize=int8` passes (generative and document specs)
    from genbel.linkers.registry import create_linker, parse_options

    for spec in (f"generative:{path}", f"document:{path}"):
        assert is_quantized(create_linker(spec, kb, **parse_options(["quantize=int8"])).decoder.model)
    head = q8.model.get_output_embeddings()
    assert isinstance(head, torch.nn.Linear)  # the output head stays in float
