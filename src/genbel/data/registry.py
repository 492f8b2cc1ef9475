"""Registry of public entity-linking corpora: where to download them, their files, types and KBs.

Nothing is downloaded: :func:`load_dataset` reads files a user has already placed in a local folder
(on the project's machines ``../shared/data/<folder>``) and, when one is missing, raises an error
naming the path it looked for and the official download URL.

>>> from genbel.data.registry import get_dataset
>>> get_dataset("ncbi-disease").splits["test"]
'NCBItestset_corpus.txt'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genbel.data.model import Document
from genbel.data.pubtator import read_pubtator
from genbel.errors import ConfigError, Errors, InputError

logger = logging.getLogger(__name__)

__all__ = ["DatasetSpec", "DATASETS", "get_dataset", "list_datasets", "dataset_path", "load_dataset"]

ST21PV_TYPES: tuple[str, ...] = (
    "T005",
    "T007",
    "T017",
    "T022",
    "T031",
    "T033",
    "T037",
    "T038",
    "T058",
    "T062",
    "T074",
    "T082",
    "T091",
    "T092",
    "T097",
    "T098",
    "T103",
    "T168",
    "T170",
    "T201",
    "T204",
)

_MM_BASE = "https://github.com/chanzuckerberg/MedMentions/raw/master"


@dataclass(frozen=True)
class DatasetSpec:
    """What genbel knows about one public corpus.

    Attributes:
        name: registry name (``ncbi-disease`` …).
        description: one line for listings.
        folder: the folder name used on the project's machines (``../shared/data/<folder>``).
        format: file format of the split files (``pubtator``).
        splits: split → file name inside the data folder.
        urls: split → official download URL (an archive may hold several splits).
        homepage: the corpus' home page.
        entity_types: the entity types of the corpus (empty when open-ended).
        kb: the knowledge base the corpus is usually linked against.
        licence: the data licence.
        pmid_lists: split → file of PMIDs selecting that split from one corpus file (MedMentions).
        load_options: reader options per split for documented quirks of the official files.
        notes: quirks worth knowing.
    """

    name: str
    description: str
    folder: str
    format: str
    splits: Mapping[str, str]
    urls: Mapping[str, str]
    homepage: str
    entity_types: tuple[str, ...]
    kb: str
    licence: str
    pmid_lists: Mapping[str, str] = field(default_factory=dict)
    load_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: str = ""


def _medmentions(subset: str, description: str, types: tuple[str, ...], kb: str) -> DatasetSpec:
    corpus = f"{_MM_BASE}/{subset}/data/corpus_pubtator.txt.gz"
    pmids = {
        s: f"corpus_pubtator_pmids_{f}.txt" for s, f in (("train", "trng"), ("dev", "dev"), ("test", "test"))
    }
    splits = {s: "corpus_pubtator.txt.gz" for s in pmids}
    urls = {s: corpus for s in pmids}
    if subset == "st21pv":
        splits["sample"] = "st21pv_sample_3docs_from_scispacy_fixture.txt"
        urls["sample"] = "https://github.com/allenai/scispacy/raw/main/tests/fixtures/med_mentions.txt"
    return DatasetSpec(
        name=f"medmentions-{subset}",
        description=description,
        folder="medmentions-sample" if subset == "st21pv" else f"medmentions-{subset}",
        format="pubtator",
        splits=splits,
        urls=urls,
        homepage="https://github.com/chanzuckerberg/MedMentions",
        entity_types=types,
        kb=kb,
        licence="CC0 1.0",
        pmid_lists=pmids,
        notes=(
            "One corpus file for all splits; a split is selected by the PMID lists "
            f"{_MM_BASE}/full/data/corpus_pubtator_pmids_{{trng,dev,test}}.txt (put them beside the corpus). "
            "The type column holds UMLS semantic type ids (T###, comma-separated when several), ids are "
            "'UMLS:C#######'. Only the 3-document ST21pv 'sample' split is available offline."
        ),
    )


DATASETS: dict[str, DatasetSpec] = {
    "ncbi-disease": DatasetSpec(
        name="ncbi-disease",
        description="NCBI-disease corpus (Dogan et al. 2014): 793 PubMed abstracts, disease mentions",
        folder="ncbi-disease",
        format="pubtator",
        splits={
            "train": "NCBItrainset_corpus.txt",
            "dev": "NCBIdevelopset_corpus.txt",
            "test": "NCBItestset_corpus.txt",
        },
        urls={
            "train": "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/NCBItrainset_corpus.zip",
            "dev": "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/NCBIdevelopset_corpus.zip",
            "test": "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/NCBItestset_corpus.zip",
        },
        homepage="https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/",
        entity_types=("SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"),
        kb="MEDIC (CTD disease vocabulary, MeSH + OMIM)",
        licence="Public domain (US Government work, NLM)",
        load_options={"train": {"on_duplicate": "skip-identical", "offsets": "fix"}},
        notes=(
            "train holds PMID 8528200 twice (identical copies; 593 abstracts, 592 documents) and one mention "
            "(PMID 10923035, line 3249) whose mention column has two trailing spaces; load_dataset reads "
            "train "
            "with on_duplicate='skip-identical', offsets='fix'."
        ),
    ),
    "bc5cdr": DatasetSpec(
        name="bc5cdr",
        description="BioCreative V CDR corpus (Li et al. 2016): 1,500 abstracts, chemicals and diseases",
        folder="bc5cdr",
        format="pubtator",
        splits={
            "train": "CDR_TrainingSet.PubTator.txt",
            "dev": "CDR_DevelopmentSet.PubTator.txt",
            "test": "CDR_TestSet.PubTator.txt",
        },
        urls={s: "https://ftp.ncbi.nlm.nih.gov/pub/lu/BC5CDR/CDR_Data.zip" for s in ("train", "dev", "test")},
        homepage="https://biocreative.bioinformatics.udel.edu/tasks/biocreative-v/track-3-cdr/",
        entity_types=("Chemical", "Disease"),
        kb="CTD (CTD diseases + CTD chemicals, MeSH ids)",
        licence="Public Domain Mark 1.0 (as listed by BigBio)",
        notes="Composite mentions carry a 7th column; '-1' = NIL; relation rows (PMID CID D1 D2) skipped.",
    ),
    "medmentions-st21pv": _medmentions(
        "st21pv",
        "MedMentions ST21pv (Mohan & Li 2019): 4,392 abstracts, 21 UMLS semantic types, 18 vocabularies",
        ST21PV_TYPES,
        "UMLS 2017AA (ST21pv subset)",
    ),
    "medmentions-full": _medmentions(
        "full",
        "MedMentions full (Mohan & Li 2019): 4,392 abstracts, all 127 UMLS semantic types",
        (),
        "UMLS 2017AA (full)",
    ),
}


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(DATASETS)


def get_dataset(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` called ``name`` (E015 if unknown)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(Errors.E015.format(name=name, known=", ".join(list_datasets()))) from None


def _find(data_dir: Path, filename: str) -> Path | None:
    """``data_dir/filename``, or the file one or two folders down (an unpacked archive); else ``None``."""
    for pattern in (filename, f"*/{filename}", f"*/*/{filename}"):
        hits = sorted(data_dir.glob(pattern))
        if hits:
            return hits[0]
    if filename.endswith(".gz"):
        return _find(data_dir, filename[:-3])
    return None


def dataset_path(name: str, split: str, data_dir: str | Path) -> Path:
    """The local file of ``name``/``split`` under ``data_dir`` (E150 naming the path and URL if missing)."""
    spec = get_dataset(name)
    if split not in spec.splits:
        raise ConfigError(Errors.E151.format(name=name, split=split, known=", ".join(spec.splits)))
    d = Path(data_dir)
    found = _find(d, spec.splits[split]) if d.is_dir() else None
    if found is None:
        raise InputError(
            Errors.E150.format(path=d / spec.splits[split], name=name, split=split, url=spec.urls[split])
        )
    return found


def _read_pmids(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def load_dataset(name: str, split: str, data_dir: str | Path, **opts: Any) -> list[Document]:
    """Read split ``split`` of dataset ``name`` from the local folder ``data_dir``.

    Reader options for documented quirks of the official files (see :attr:`DatasetSpec.load_options`)
    are applied; ``opts`` override them (for example ``offsets="error"``).

    Raises:
        ConfigError: E015 (unknown dataset), E151 (unknown split).
        InputError: E150 (file missing: names the path and the official URL), or a reader error.
    """
    spec = get_dataset(name)
    path = dataset_path(name, split, data_dir)
    options = {**spec.load_options.get(split, {}), **opts}
    docs = read_pubtator(path, **options)
    pmid_list = spec.pmid_lists.get(split)
    if pmid_list is not None:
        lst = _find(Path(data_dir), pmid_list)
        if lst is None:
            raise InputError(
                Errors.E150.format(
                    path=Path(data_dir) / pmid_list,
                    name=name,
                    split=split,
                    url=f"{_MM_BASE}/full/data/{pmid_list}",
                )
            )
        keep = set(_read_pmids(lst))
        docs = [d for d in docs if d.document_id in keep]
    logger.info(
        "%s/%s: %d documents, %d mentions from %s",
        name,
        split,
        len(docs),
        sum(len(d.entities) for d in docs),
        path,
    )
    return docs
