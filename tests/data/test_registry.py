from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from genbel.data.registry import DATASETS, dataset_path, get_dataset, list_datasets, load_dataset
from genbel.errors import ConfigError, InputError
from tests.conftest import shared
from tests.helpers import raises_code


def test_registry_contents() -> None:
    assert list_datasets() == ["bc5cdr", "medmentions-full", "medmentions-st21pv", "ncbi-disease"]
    ncbi = get_dataset("ncbi-disease")
    assert ncbi.splits == {
        "train": "NCBItrainset_corpus.txt",
        "dev": "NCBIdevelopset_corpus.txt",
        "test": "NCBItestset_corpus.txt",
    }
    assert (
        ncbi.urls["test"] == "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/NCBItestset_corpus.zip"
    )
    assert "MEDIC" in ncbi.kb and ncbi.format == "pubtator"
    assert get_dataset("bc5cdr").entity_types == ("Chemical", "Disease") and "CTD" in get_dataset("bc5cdr").kb
    st21 = get_dataset("medmentions-st21pv")
    assert len(st21.entity_types) == 21 and "2017AA" in st21.kb
    assert st21.urls["train"].endswith("/st21pv/data/corpus_pubtator.txt.gz")
    assert "2017AA" in get_dataset("medmentions-full").kb
    for spec in DATASETS.values():
        assert set(spec.urls) == set(spec.splits)
        assert all(u.startswith("https://") for u in spec.urls.values())


def test_unknown_dataset_and_split() -> None:
    with raises_code("E015", ConfigError) as exc:
        get_dataset("ncbi")
    assert (
        str(exc.value)
        == "[E015] unknown dataset 'ncbi'; known: bc5cdr, medmentions-full, medmentions-st21pv, ncbi-disease"
    )
    with raises_code("E151", 
        ConfigError, match="dataset 'bc5cdr' has no split 'validation'; known splits: train, dev, test"
    ):
        load_dataset("bc5cdr", "validation", ".")


def test_missing_file_names_path_and_url(tmp_path: Path) -> None:
    with raises_code("E150", InputError) as exc:
        load_dataset("bc5cdr", "test", tmp_path)
    assert str(exc.value) == (
        f"[E150] {tmp_path / 'CDR_TestSet.PubTator.txt'}: file of dataset 'bc5cdr' split 'test' not found; "
        "download it from https://ftp.ncbi.nlm.nih.gov/pub/lu/BC5CDR/CDR_Data.zip "
        "and pass the folder that holds it as data_dir"
    )
    with raises_code("E150", InputError, match="MedMentions/raw/master/st21pv/data/corpus_pubtator.txt.gz"):
        load_dataset("medmentions-st21pv", "train", shared("medmentions-sample"))


def test_ncbi_splits_from_shared_folder() -> None:
    folder = shared("ncbi-disease")
    counts = {
        s: (len(d), sum(len(x.entities) for x in d))
        for s in ("dev", "test")
        for d in [load_dataset("ncbi-disease", s, folder)]
    }
    assert counts == {"dev": (100, 787), "test": (100, 960)}
    train = load_dataset("ncbi-disease", "train", folder)  # documented quirks handled by the registry
    assert (len(train), sum(len(x.entities) for x in train)) == (592, 5134)
    with raises_code("E004", InputError, match="duplicate document id '8528200'"):
        load_dataset("ncbi-disease", "train", folder, on_duplicate="error")


def test_file_found_in_unpacked_archive_folder(tmp_path: Path) -> None:
    sub = tmp_path / "CDR_Data" / "CDR.Corpus.v010516"
    sub.mkdir(parents=True)
    (sub / "CDR_TestSet.PubTator.txt").write_text("1|t|Aspirin.\n1|a|\n1\t0\t7\tAspirin\tChemical\tD001241\n")
    assert dataset_path("bc5cdr", "test", tmp_path) == sub / "CDR_TestSet.PubTator.txt"
    (doc,) = load_dataset("bc5cdr", "test", tmp_path)
    assert doc.entities[0].gold_ids == ["D001241"]


def test_medmentions_sample_and_pmid_split(tmp_path: Path) -> None:
    sample = shared("medmentions-sample", "st21pv_sample_3docs_from_scispacy_fixture.txt")
    docs = load_dataset("medmentions-st21pv", "sample", sample.parent)
    assert len(docs) == 3 and sum(len(d.entities) for d in docs) == 115
    # a full-corpus layout: one gzip corpus + PMID lists select the split
    with sample.open("rb") as src, gzip.open(tmp_path / "corpus_pubtator.txt.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    ids = [d.document_id for d in docs]
    (tmp_path / "corpus_pubtator_pmids_trng.txt").write_text("\n".join(ids[:2]) + "\n")
    (tmp_path / "corpus_pubtator_pmids_test.txt").write_text(ids[2] + "\n")
    assert [d.document_id for d in load_dataset("medmentions-st21pv", "train", tmp_path)] == ids[:2]
    assert [d.document_id for d in load_dataset("medmentions-full", "test", tmp_path)] == ids[2:]
    with raises_code("E150", 
        InputError, match=r"corpus_pubtator_pmids_dev.txt: file of dataset 'medmentions-st21pv' split 'dev'"
    ):
        load_dataset("medmentions-st21pv", "dev", tmp_path)
