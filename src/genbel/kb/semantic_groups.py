"""UMLS semantic types (TUIs) and the 15 semantic groups of the NLM Semantic Network.

The table follows NLM's ``SemGroups.txt`` (2018 edition, 127 semantic types): each TUI belongs
to exactly one group. Concepts in genbel carry TUIs in :attr:`Concept.semantic_types` and full
group names (``"Disorders"``, ``"Chemicals & Drugs"`` …, the names used in ``[mention]{Group}``
prompts) in :attr:`Concept.semantic_groups`.

Six chemical types that older UMLS releases still used (Carbohydrate, Eicosanoid, Lipid, …) are
kept in :data:`LEGACY_TUI_TO_GROUP` so that KBs built from those releases still get a group.

:data:`ST21PV_TUIS` lists the 21 semantic types of the MedMentions ST21pv subset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from genbel.errors import ConfigError, Errors, InputError

#: group code → group name (NLM SemGroups).
GROUPS: dict[str, str] = {
    "ACTI": "Activities & Behaviors",
    "ANAT": "Anatomy",
    "CHEM": "Chemicals & Drugs",
    "CONC": "Concepts & Ideas",
    "DEVI": "Devices",
    "DISO": "Disorders",
    "GENE": "Genes & Molecular Sequences",
    "GEOG": "Geographic Areas",
    "LIVB": "Living Beings",
    "OBJC": "Objects",
    "OCCU": "Occupations",
    "ORGA": "Organizations",
    "PHEN": "Phenomena",
    "PHYS": "Physiology",
    "PROC": "Procedures",
}

#: group name → group code.
GROUP_CODES: dict[str, str] = {v: k for k, v in GROUPS.items()}

# (group code, TUI, semantic type name), in SemGroups.txt order.
_SEMGROUPS: tuple[tuple[str, str, str], ...] = (
    ("ACTI", "T052", "Activity"),
    ("ACTI", "T053", "Behavior"),
    ("ACTI", "T056", "Daily or Recreational Activity"),
    ("ACTI", "T051", "Event"),
    ("ACTI", "T064", "Governmental or Regulatory Activity"),
    ("ACTI", "T055", "Individual Behavior"),
    ("ACTI", "T066", "Machine Activity"),
    ("ACTI", "T057", "Occupational Activity"),
    ("ACTI", "T054", "Social Behavior"),
    ("ANAT", "T017", "Anatomical Structure"),
    ("ANAT", "T029", "Body Location or Region"),
    ("ANAT", "T023", "Body Part, Organ, or Organ Component"),
    ("ANAT", "T030", "Body Space or Junction"),
    ("ANAT", "T031", "Body Substance"),
    ("ANAT", "T022", "Body System"),
    ("ANAT", "T025", "Cell"),
    ("ANAT", "T026", "Cell Component"),
    ("ANAT", "T018", "Embryonic Structure"),
    ("ANAT", "T021", "Fully Formed Anatomical Structure"),
    ("ANAT", "T024", "Tissue"),
    ("CHEM", "T116", "Amino Acid, Peptide, or Protein"),
    ("CHEM", "T195", "Antibiotic"),
    ("CHEM", "T123", "Biologically Active Substance"),
    ("CHEM", "T122", "Biomedical or Dental Material"),
    ("CHEM", "T103", "Chemical"),
    ("CHEM", "T120", "Chemical Viewed Functionally"),
    ("CHEM", "T104", "Chemical Viewed Structurally"),
    ("CHEM", "T200", "Clinical Drug"),
    ("CHEM", "T196", "Element, Ion, or Isotope"),
    ("CHEM", "T126", "Enzyme"),
    ("CHEM", "T131", "Hazardous or Poisonous Substance"),
    ("CHEM", "T125", "Hormone"),
    ("CHEM", "T129", "Immunologic Factor"),
    ("CHEM", "T130", "Indicator, Reagent, or Diagnostic Aid"),
    ("CHEM", "T197", "Inorganic Chemical"),
    ("CHEM", "T114", "Nucleic Acid, Nucleoside, or Nucleotide"),
    ("CHEM", "T109", "Organic Chemical"),
    ("CHEM", "T121", "Pharmacologic Substance"),
    ("CHEM", "T192", "Receptor"),
    ("CHEM", "T127", "Vitamin"),
    ("CONC", "T185", "Classification"),
    ("CONC", "T077", "Conceptual Entity"),
    ("CONC", "T169", "Functional Concept"),
    ("CONC", "T102", "Group Attribute"),
    ("CONC", "T078", "Idea or Concept"),
    ("CONC", "T170", "Intellectual Product"),
    ("CONC", "T171", "Language"),
    ("CONC", "T080", "Qualitative Concept"),
    ("CONC", "T081", "Quantitative Concept"),
    ("CONC", "T089", "Regulation or Law"),
    ("CONC", "T082", "Spatial Concept"),
    ("CONC", "T079", "Temporal Concept"),
    ("DEVI", "T203", "Drug Delivery Device"),
    ("DEVI", "T074", "Medical Device"),
    ("DEVI", "T075", "Research Device"),
    ("DISO", "T020", "Acquired Abnormality"),
    ("DISO", "T190", "Anatomical Abnormality"),
    ("DISO", "T049", "Cell or Molecular Dysfunction"),
    ("DISO", "T019", "Congenital Abnormality"),
    ("DISO", "T047", "Disease or Syndrome"),
    ("DISO", "T050", "Experimental Model of Disease"),
    ("DISO", "T033", "Finding"),
    ("DISO", "T037", "Injury or Poisoning"),
    ("DISO", "T048", "Mental or Behavioral Dysfunction"),
    ("DISO", "T191", "Neoplastic Process"),
    ("DISO", "T046", "Pathologic Function"),
    ("DISO", "T184", "Sign or Symptom"),
    ("GENE", "T087", "Amino Acid Sequence"),
    ("GENE", "T088", "Carbohydrate Sequence"),
    ("GENE", "T028", "Gene or Genome"),
    ("GENE", "T085", "Molecular Sequence"),
    ("GENE", "T086", "Nucleotide Sequence"),
    ("GEOG", "T083", "Geographic Area"),
    ("LIVB", "T100", "Age Group"),
    ("LIVB", "T011", "Amphibian"),
    ("LIVB", "T008", "Animal"),
    ("LIVB", "T194", "Archaeon"),
    ("LIVB", "T007", "Bacterium"),
    ("LIVB", "T012", "Bird"),
    ("LIVB", "T204", "Eukaryote"),
    ("LIVB", "T099", "Family Group"),
    ("LIVB", "T013", "Fish"),
    ("LIVB", "T004", "Fungus"),
    ("LIVB", "T096", "Group"),
    ("LIVB", "T016", "Human"),
    ("LIVB", "T015", "Mammal"),
    ("LIVB", "T001", "Organism"),
    ("LIVB", "T101", "Patient or Disabled Group"),
    ("LIVB", "T002", "Plant"),
    ("LIVB", "T098", "Population Group"),
    ("LIVB", "T097", "Professional or Occupational Group"),
    ("LIVB", "T014", "Reptile"),
    ("LIVB", "T010", "Vertebrate"),
    ("LIVB", "T005", "Virus"),
    ("OBJC", "T071", "Entity"),
    ("OBJC", "T168", "Food"),
    ("OBJC", "T073", "Manufactured Object"),
    ("OBJC", "T072", "Physical Object"),
    ("OBJC", "T167", "Substance"),
    ("OCCU", "T091", "Biomedical Occupation or Discipline"),
    ("OCCU", "T090", "Occupation or Discipline"),
    ("ORGA", "T093", "Health Care Related Organization"),
    ("ORGA", "T092", "Organization"),
    ("ORGA", "T094", "Professional Society"),
    ("ORGA", "T095", "Self-help or Relief Organization"),
    ("PHEN", "T038", "Biologic Function"),
    ("PHEN", "T069", "Environmental Effect of Humans"),
    ("PHEN", "T068", "Human-caused Phenomenon or Process"),
    ("PHEN", "T034", "Laboratory or Test Result"),
    ("PHEN", "T070", "Natural Phenomenon or Process"),
    ("PHEN", "T067", "Phenomenon or Process"),
    ("PHYS", "T043", "Cell Function"),
    ("PHYS", "T201", "Clinical Attribute"),
    ("PHYS", "T045", "Genetic Function"),
    ("PHYS", "T041", "Mental Process"),
    ("PHYS", "T044", "Molecular Function"),
    ("PHYS", "T032", "Organism Attribute"),
    ("PHYS", "T040", "Organism Function"),
    ("PHYS", "T042", "Organ or Tissue Function"),
    ("PHYS", "T039", "Physiologic Function"),
    ("PROC", "T060", "Diagnostic Procedure"),
    ("PROC", "T065", "Educational Activity"),
    ("PROC", "T058", "Health Care Activity"),
    ("PROC", "T059", "Laboratory Procedure"),
    ("PROC", "T063", "Molecular Biology Research Technique"),
    ("PROC", "T062", "Research Activity"),
    ("PROC", "T061", "Therapeutic or Preventive Procedure"),
)

#: TUI → group code, for the 127 semantic types of the current Semantic Network.
TUI_TO_GROUP: dict[str, str] = {tui: code for code, tui, _ in _SEMGROUPS}

#: TUI → semantic type name.
TUI_NAMES: dict[str, str] = {tui: name for _, tui, name in _SEMGROUPS}

#: Semantic types retired from the Semantic Network but present in older UMLS releases.
LEGACY_TUI_TO_GROUP: dict[str, str] = {
    "T110": "CHEM",  # Steroid
    "T111": "CHEM",  # Eicosanoid
    "T115": "CHEM",  # Organophosphorus Compound
    "T118": "CHEM",  # Carbohydrate
    "T119": "CHEM",  # Lipid
    "T124": "CHEM",  # Neuroreactive Substance or Biogenic Amine
}

#: The 21 semantic types of MedMentions ST21pv (concepts of these types or their descendants).
ST21PV_TUIS: tuple[str, ...] = (
    "T005",  # Virus
    "T007",  # Bacterium
    "T017",  # Anatomical Structure
    "T022",  # Body System
    "T031",  # Body Substance
    "T033",  # Finding
    "T037",  # Injury or Poisoning
    "T038",  # Biologic Function
    "T058",  # Health Care Activity
    "T062",  # Research Activity
    "T074",  # Medical Device
    "T082",  # Spatial Concept
    "T091",  # Biomedical Occupation or Discipline
    "T092",  # Organization
    "T097",  # Professional or Occupational Group
    "T098",  # Population Group
    "T103",  # Chemical
    "T168",  # Food
    "T170",  # Intellectual Product
    "T201",  # Clinical Attribute
    "T204",  # Eukaryote
)

# Entity types of common corpora → semantic group name (BC5CDR, NCBI-disease, …).
_ENTITY_TYPE_ALIASES: dict[str, str] = {
    "disease": "Disorders",
    "diseases": "Disorders",
    "disorder": "Disorders",
    "specificdisease": "Disorders",
    "diseaseclass": "Disorders",
    "compositemention": "Disorders",
    "modifier": "Disorders",
    "chemical": "Chemicals & Drugs",
    "chemicals": "Chemicals & Drugs",
    "drug": "Chemicals & Drugs",
    "gene": "Genes & Molecular Sequences",
    "geneorgeneproduct": "Genes & Molecular Sequences",
    "species": "Living Beings",
    "organism": "Living Beings",
}


def group_code_of_tui(tui: str) -> str | None:
    """Group code (``"DISO"``) of a TUI, or ``None`` for an unknown TUI."""
    t = tui.strip().upper()
    return TUI_TO_GROUP.get(t) or LEGACY_TUI_TO_GROUP.get(t)


def group_of_tui(tui: str) -> str | None:
    """Group name (``"Disorders"``) of a TUI, or ``None`` for an unknown TUI."""
    code = group_code_of_tui(tui)
    return GROUPS[code] if code is not None else None


def groups_of_tuis(tuis: Iterable[str]) -> list[str]:
    """Distinct group names of several TUIs, in first-seen order; unknown TUIs are skipped."""
    out: list[str] = []
    for t in tuis:
        g = group_of_tui(t)
        if g is not None and g not in out:
            out.append(g)
    return out


def normalize_group(value: str) -> str:
    """Canonical group name for a group name, a group code, a TUI or a common corpus entity type.

    ``"DISO"``, ``"disorders"``, ``"T047"`` and ``"Disease"`` all give ``"Disorders"``. Raises
    :class:`~genbel.errors.ConfigError` (``E012``) for anything else.
    """
    v = value.strip()
    if v in GROUP_CODES:
        return v
    up = v.upper()
    if up in GROUPS:
        return GROUPS[up]
    lowered = {name.lower(): name for name in GROUP_CODES}
    if v.lower() in lowered:
        return lowered[v.lower()]
    g = group_of_tui(v)
    if g is not None:
        return g
    key = "".join(ch for ch in v.lower() if ch.isalnum())
    if key in _ENTITY_TYPE_ALIASES:
        return _ENTITY_TYPE_ALIASES[key]
    known = ", ".join(f"{code} ({name})" for code, name in GROUPS.items())
    raise ConfigError(Errors.E012.format(group=value, known=known))


__all__ = [
    "GROUPS",
    "GROUP_CODES",
    "LEGACY_TUI_TO_GROUP",
    "ST21PV_TUIS",
    "TUI_NAMES",
    "TUI_TO_GROUP",
    "group_code_of_tui",
    "group_of_tui",
    "groups_of_tuis",
    "normalize_group",
]


#: corpus entity type → semantic group name. Keys are compared lower-cased with only letters and
#: digits kept (``"SpecificDisease"``, ``"specific_disease"`` → ``"Disorders"``). Group codes
#: (``DISO``) and TUIs (``T047``) are resolved through :func:`normalize_group`.
GROUP_ALIASES: Mapping[str, str] = MappingProxyType(_ENTITY_TYPE_ALIASES)


def resolve_group(type_: str, kb_groups: Iterable[str] = (), where: str = "<input>") -> str:
    """The semantic group that a group name, group code, TUI or corpus entity type stands for.

    A group of the KB itself wins (exact, then case-insensitive), so KBs with their own group
    names work; then :func:`normalize_group`. Anything else raises
    :class:`~genbel.errors.InputError` (``E250``) naming ``where``.
    """
    kb_groups = list(kb_groups)
    if type_ in kb_groups:
        return type_
    low = type_.strip().lower()
    for g in kb_groups:
        if g.lower() == low:
            return g
    try:
        return normalize_group(type_)
    except ConfigError:
        known = sorted(set(kb_groups) | set(GROUPS.values()))
        raise InputError(Errors.E250.format(where=where, group=type_, known="; ".join(known))) from None
