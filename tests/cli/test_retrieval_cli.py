"""``genbel train-retriever``, ``genbel build-index`` and ``genbel export-retriever`` via CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.errors import ConfigError
from genbel.kb import load_kb
from genbel.linkers.dense import DenseLinker
from genbel.linkers.registry import create_linker
from genbel.linkers.sparse import SparseLinker
from tests.linkers.retrieval_fixtures import make_tiny_encoder

runner = CliRunner()

MEDIC = """D001||Breast Neoplasms|breast cancer|breast tumor
D002|114500||Colorectal Neoplasms|colorectal cancer|colon cancer
D003||Adenomatous Polyposis Coli|APC|familial adenomatous polyposis
"""

TEXT = "Germline APC mutations cause FAP and colorectal carcinoma."
PUBTATOR = (
    f"1|t|{TEXT}\n1|a|\n"
    "1\t9\t12\tAPC\tDisease\tD003\n"
    "1\t29\t32\tFAP\tDisease\tD003\n"
    "1\t37\t57\tcolorectal carcinoma\tDisease\tOMIM:114500\n\n"
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("retrieval-cli")
    (d / "kb.txt").write_text(MEDIC)
    (d / "train.pubtator").write_text(PUBTATOR)
    make_tiny_encoder(d / "enc")
    return d


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_build_index_with_augmentation_and_prior(files, tmp_path):
    out = tmp_path / "idx"
    _ok(runner.invoke(app, [
        "build-index", "--linker", "sparse", "--kb", str(files / "kb.txt"), "--kb-format", "medic",
        "--augment-kb", str(files / "train.pubtator"), "--prior-corpus", str(files / "train.pubtator"),
        "--out", str(out),
    ]))
    kb = load_kb(files / "kb.txt", format="medic")
    from genbel.data import load_corpus
    from genbel.kb import augment_kb

    augment_kb(kb, load_corpus(files / "train.pubtator"))
    linker = create_linker(f"sparse:{out}", kb)
    assert isinstance(linker, SparseLinker)
    assert linker.prior == {"D003": 2.0, "D002": 1.0}
    assert linker.candidates(["FAP"], 1)[0][0].concept_id == "D003"  # an augmented name
    bad = runner.invoke(
        app, ["build-index", "--linker", "exact", "--kb", str(files / "kb.txt"), "--out", str(out)]
    )
    assert bad.exit_code != 0 and isinstance(bad.exception, ConfigError)


def test_train_sapbert_builds_an_index_and_exports(files, tmp_path):
    out = tmp_path / "run"
    _ok(runner.invoke(app, [
        "train-retriever", "--method", "sapbert", "--kb", str(files / "kb.txt"), "--kb-format", "medic",
        "--train", str(files / "train.pubtator"), "--encoder", str(files / "enc"), "--out", str(out),
        "--max-steps", "2", "--batch-size", "4", "--threads", "1",
    ]))
    assert (out / "encoder").is_dir() and (out / "index" / "faiss.index").is_file()
    meta = json.loads((out / "index" / "meta.json").read_text())
    kb = load_kb(files / "kb.txt", format="medic")
    assert meta["n_names"] == 9 + 2  # the index KB holds the 2 new training mention strings (FAP, carcinoma)
    from genbel.data import load_corpus
    from genbel.kb import augment_kb

    augment_kb(kb, load_corpus(files / "train.pubtator"))
    linker = create_linker(f"dense:{out}", kb)
    assert isinstance(linker, DenseLinker) and linker.prior == {"D003": 2.0, "D002": 1.0}
    assert linker.candidates(["colorectal carcinoma"], 1)[0][0].concept_id == "D002"

    small = tmp_path / "small"
    _ok(runner.invoke(app, ["export-retriever", str(out), "--out", str(small), "--kb", str(files / "kb.txt"),
                            "--corpus", str(files / "train.pubtator")]))
    assert sorted(p.name for p in small.iterdir()) == ["concept_prior.json", "encoder", "retriever.json"]
    compact = create_linker(f"dense:{small}", kb)
    assert compact.candidates(["colorectal carcinoma"], 1)[0][0].concept_id == "D002"


def test_train_biosyn_needs_a_corpus(files, tmp_path):
    res = runner.invoke(app, ["train-retriever", "--method", "biosyn", "--kb", str(files / "kb.txt"), "--out",
                              str(tmp_path / "x"), "--encoder", str(files / "enc")])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)
    res = runner.invoke(app, ["train-retriever", "--method", "triplet", "--kb", str(files / "kb.txt"),
                              "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Index and name-vector caches of the trained retrievers go to a temporary folder."""
    monkeypatch.setenv("GENBEL_CACHE", str(tmp_path / "cache"))


def test_train_recipe_prints_a_plan_and_trains_both_stages(files, tmp_path):
    out = tmp_path / "recipe"
    res = runner.invoke(app, [
        "train-retriever", "--kb", str(files / "kb.txt"), "--kb-format", "medic",
        "--train", str(files / "train.pubtator"), "--encoder", str(files / "enc"), "--out", str(out),
        "--steps", "3", "--threads", "1",
    ])
    _ok(res)
    plan = json.loads((out / "plan.json").read_text())
    # the tiny KB has 9 names in concepts with synonyms (9 pairs) + 3 mentions × 2 repeats: 1 step of 64
    assert plan["sapbert_steps"] == 1 and plan["kb_pairs"] == 9
    assert plan["biosyn_steps"] == 1 and plan["mentions"] == 3
    assert "stage 1 SapBERT-style: 1 steps" in res.output and "ETA" in res.output
    assert json.loads((out / "sapbert" / "retriever.json").read_text())["steps"] == 1
    saved = json.loads((out / "retriever.json").read_text())
    assert saved["method"] == "biosyn" and saved["recipe"]["sapbert_steps"] == 1
    assert (out / "index" / "faiss.index").is_file()
    # a resumed run reuses the plan and the finished stage 1 (its files are not rewritten)
    stamp = (out / "sapbert" / "retriever.json").stat().st_mtime_ns
    again = runner.invoke(app, [
        "train-retriever", "--kb", str(files / "kb.txt"), "--kb-format", "medic",
        "--train", str(files / "train.pubtator"), "--encoder", str(files / "enc"), "--out", str(out),
        "--steps", "3", "--threads", "1", "--resume", "--no-index",
    ])
    _ok(again)
    assert (out / "sapbert" / "retriever.json").stat().st_mtime_ns == stamp
    # the user is told what a resume reuses, and how the run compared with its ETA
    assert "plan recorded in plan.json is reused" in again.output and "measuring this machine" not in again.output
    assert "stage 1 (SapBERT-style) finished in an earlier run" in again.output
    assert "stage 2 (BioSyn) continues from its checkpoint epoch-1" in again.output
    assert "recipe finished" in again.output and "its ETA" in again.output
    assert "recipe finished" in res.output
    # a resume with other settings is refused, naming them
    other = runner.invoke(app, [
        "train-retriever", "--kb", str(files / "kb.txt"), "--kb-format", "medic",
        "--train", str(files / "train.pubtator"), "--encoder", str(files / "enc"), "--out", str(out),
        "--steps", "5", "--resume",
    ])
    assert isinstance(other.exception, ConfigError) and "[E352]" in str(other.exception)
    assert "sapbert_steps=3 (now 5)" in str(other.exception)


@pytest.mark.parametrize(("method", "options", "named"), [
    ("recipe", ["--lr", "1e-4", "--epochs", "2"], "--epochs, --lr"),
    ("sapbert", ["--topk", "10"], "--topk"),
    ("biosyn", ["--steps", "100"], "--steps"),
])
def test_options_another_method_reads_are_refused(files, tmp_path, method, options, named):
    res = runner.invoke(app, [
        "train-retriever", "--method", method, "--kb", str(files / "kb.txt"), "--kb-format", "medic",
        "--train", str(files / "train.pubtator"), "--encoder", str(files / "enc"), "--out", str(tmp_path / "x"),
        *options,
    ])
    assert isinstance(res.exception, ConfigError) and "[E492]" in str(res.exception)
    assert named in str(res.exception) and f"--method {method}" in str(res.exception)
    assert not (tmp_path / "x").exists()


def test_train_recipe_rejects_a_bad_budget(files, tmp_path):
    res = runner.invoke(app, [
        "train-retriever", "--kb", str(files / "kb.txt"), "--kb-format", "medic",
        "--train", str(files / "train.pubtator"), "--encoder", str(files / "enc"),
        "--out", str(tmp_path / "x"), "--max-minutes", "-5",
    ])
    assert isinstance(res.exception, ConfigError) and "[E490]" in str(res.exception)


def test_an_interrupted_training_says_how_to_continue(tmp_path, capsys):
    from genbel.cli.retrieval import _resume_hint

    with pytest.raises(KeyboardInterrupt), _resume_hint(tmp_path / "run", True):
        raise KeyboardInterrupt
    err = capsys.readouterr().err
    assert "with --resume continues from the last checkpoint" in err and str(tmp_path / "run") in err
