"""The JSON the API accepts and returns (pydantic models; they are also the OpenAPI schema at /docs).

Requests forbid unknown fields (422 E542 names the field and the known ones) and are strict about
types (a number is not a string). Limits that depend on the server's settings (text length, mentions
per request, ``k``) are checked by the routes, which know the settings, with their own codes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

_STRICT = ConfigDict(extra="forbid", strict=True)


class MentionIn(BaseModel):
    """A mention to link, with the text it occurs in (optional)."""

    model_config = _STRICT
    text: StrictStr = Field(description="The mention as written, e.g. 'colon cancer'.")
    context: StrictStr | None = Field(
        None, description="The text the mention occurs in (a sentence or abstract); improves linking "
        "for context-aware linkers and lets abbreviations defined there be written out.")
    start: StrictInt | None = Field(None, description="Offset of the mention in context (default: its first occurrence).")
    end: StrictInt | None = Field(None, description="End offset in context (exclusive).")
    type: StrictStr | None = Field(
        None, description="Entity type or semantic group (e.g. Disorders, Chemical), used by linkers "
        "that restrict candidates to the mention's group.")


class LinkRequest(BaseModel):
    model_config = _STRICT
    mentions: list[StrictStr | MentionIn] = Field(
        description="Mentions to link: strings, or objects with text/context/start/end/type.")
    k: StrictInt = Field(5, description="Candidates per mention (1..the server's --max-k).")
    abbreviations: StrictBool = Field(
        True, description="Link the long form of an abbreviation defined in the mention's context.")


class AnnotateRequest(BaseModel):
    model_config = _STRICT
    text: StrictStr = Field(description="Raw text: a sentence, an abstract, a note.")
    k: StrictInt = Field(5, description="Candidates per entity (1..the server's --max-k).")
    abbreviations: StrictBool = Field(
        True, description="Link the long form of abbreviations defined in the text (Schwartz-Hearst).")


class CandidateOut(BaseModel):
    id: str
    name: str = Field(description="The concept's preferred name.")
    matched: str = Field(description="The KB name the linker matched (a synonym or the preferred name).")
    score: float
    url: str | None = Field(None, description="The concept's page in its source vocabulary, if public.")


class LinkResult(BaseModel):
    text: str
    linked_as: str = Field(description="What was linked: the text, or the long form of an abbreviation.")
    type: str | None = None
    start: int | None = None
    end: int | None = None
    candidates: list[CandidateOut]


class LinkResponse(BaseModel):
    kb: str
    linker: str
    results: list[LinkResult]


class EntityOut(BaseModel):
    start: int
    end: int
    text: str
    type: str
    linked_as: str
    detector_score: float
    id: str | None = Field(None, description="Best concept id (null when the linker found none).")
    name: str | None = Field(None, description="The best concept's preferred name.")
    score: float | None = None
    url: str | None = None
    candidates: list[CandidateOut]


class AnnotateResponse(BaseModel):
    kb: str
    linker: str
    detector: str
    text_length: int
    entities: list[EntityOut]


class ParentOut(BaseModel):
    id: str = Field(description="The parent's main id.")
    name: str | None = Field(description="The parent's preferred name (None when the KB lacks the parent).")
    url: str | None


class ConceptOut(BaseModel):
    id: str
    name: str
    synonyms: list[str]
    alt_ids: list[str]
    semantic_types: list[str]
    semantic_groups: list[str]
    definitions: list[str]
    parents: list[ParentOut] = Field(description="Direct parents in the KB's hierarchy (empty without one).")
    tree_numbers: list[str] = Field(description="Tree numbers (MeSH/CTD) where the KB has them.")
    url: str | None
    alt_urls: dict[str, str]


class SearchHit(BaseModel):
    id: str
    name: str
    matched: str = Field(description="The name that matched the query.")
    semantic_groups: list[str]
    url: str | None


class SearchResponse(BaseModel):
    query: str
    results: list[SearchHit]


class HealthOut(BaseModel):
    status: str
    version: str
    kb: dict
    linker: str
    annotate: bool
    detector: str | None
    limits: dict


#: the fields a request body may have, per place in the body (for E542's "known fields")
KNOWN_FIELDS: dict[str, list[str]] = {
    "/link:": sorted(LinkRequest.model_fields),
    "/link:mentions[]": sorted(MentionIn.model_fields),
    "/annotate:": sorted(AnnotateRequest.model_fields),
}
