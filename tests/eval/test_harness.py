from genbel.eval import evaluate
from genbel.linkers.exact import ExactMatchLinker
from tests.conftest import make_doc
from tests.helpers import raises_code


def _docs():
    d1 = make_doc(
        "1", "Germline APC mutations cause familial adenomatous polyposis (FAP) and colorectal cancer.",
        [("APC", "Gene", "D003"), ("familial adenomatous polyposis", "Disease", "D003"),
         ("FAP", "Disease", "D003"), ("colorectal cancer", "Disease", "D002")],
    )
    d2 = make_doc(
        "2", "Breast tumor and hereditary nonpolyposis cancer in a -1 family.",
        [("Breast tumor", "Disease", "D001"),
         ("hereditary nonpolyposis cancer", "Disease", "OMIM:114500|D999"),
         ("family", "Disease", "-1")],
    )
    return [d1, d2]


def test_exact_linker_recall_nil_and_composites(tiny_kb):
    r = evaluate(_docs(), tiny_kb, ExactMatchLinker(tiny_kb), n_bootstrap=200)
    # NIL mention dropped and counted; 6 mentions left
    assert r.n_nil_dropped == 1
    assert r.n_mentions == 6
    # APC, familial adenomatous polyposis, colorectal cancer, Breast tumor are exact names; FAP and
    # "hereditary nonpolyposis cancer" are not
    assert r.recall_at_1 == round(100 * 4 / 6, 2)
    assert r.n_gold_not_in_kb == 0  # OMIM:114500 is an alternate id of D002
    assert r.subsets["words:single"].n_mentions == 2
    assert r.subsets["type:Gene"].recall_at_1 == 100.0
    assert set(r.ci95) == {"recall_at_1", "recall_at_5"}
    assert r.mentions_per_second > 0


def test_abbreviation_expansion_links_the_long_form(tiny_kb):
    off = evaluate(_docs(), tiny_kb, ExactMatchLinker(tiny_kb), n_bootstrap=50)
    on = evaluate(_docs(), tiny_kb, ExactMatchLinker(tiny_kb), n_bootstrap=50, expand_abbreviations=True,
                  keep_predictions=True)
    assert on.recall_at_1 > off.recall_at_1  # FAP -> familial adenomatous polyposis
    fap = [p for p in on.predictions if p.mention == "FAP"][0]
    assert fap.linked_text == "familial adenomatous polyposis"
    assert fap.rank == 0


def test_seen_unseen_split_and_entity_type_filter(tiny_kb):
    train = [make_doc("t", "colon cancer", [("colon cancer", "Disease", "MESH:D002")])]
    r = evaluate(_docs(), tiny_kb, ExactMatchLinker(tiny_kb), train_documents=train, entity_types=["Disease"],
                 n_bootstrap=50)
    assert r.n_mentions == 5
    # colorectal cancer and hereditary nonpolyposis cancer (OMIM alt id of D002) are "seen"
    assert r.subsets["concept:seen"].n_mentions == 2
    assert r.subsets["concept:unseen"].n_mentions == 3
    assert "type:Gene" not in r.subsets


def test_json_contract_keys(tiny_kb):
    r = evaluate(_docs(), tiny_kb, ExactMatchLinker(tiny_kb), n_bootstrap=20)
    d = r.model_dump()
    for key in ("recall_at_1", "recall_at_5", "ci95", "n_mentions", "mentions_per_second"):
        assert key in d


def test_expand_gold_ids_adds_every_id_of_the_gold_concepts(tiny_kb):
    from genbel.eval import expand_gold_ids

    # OMIM:114500 is an alternate id of D002; D999 is not in the KB
    all_ids, main = expand_gold_ids(["OMIM:114500", "D999"], tiny_kb)
    assert main == {"D002"}
    assert all_ids == {"OMIM:114500", "D999"} | tiny_kb.ids_of("D002")
    assert expand_gold_ids(["D999"], tiny_kb) == ({"D999"}, set())


def test_entity_types_use_the_data_rule(tiny_kb):
    """The harness filters with genbel.data.filter_entity_types: comma-separated types match by part,
    and a type that occurs nowhere is E012 (not a silent empty evaluation)."""

    from genbel.errors import InputError

    docs = [make_doc("1", "colorectal cancer and APC", [("colorectal cancer", "Disease,Neoplasm", "D002"),
                                                        ("APC", "Gene", "D003")])]
    r = evaluate(docs, tiny_kb, ExactMatchLinker(tiny_kb), entity_types=["Neoplasm"], n_bootstrap=10)
    assert r.n_mentions == 1
    with raises_code("E012", InputError) as e:
        evaluate(docs, tiny_kb, ExactMatchLinker(tiny_kb), entity_types=["Diseases"], n_bootstrap=10)
    assert str(e.value).startswith("[E012]")
