"""The HTTP endpoints: ``POST /link``, ``POST /annotate``, ``GET /concepts/{id}``, ``GET /search``,
``GET /health``, ``GET /metrics``.

Request values are checked here against the server's limits (:mod:`genbel.serve.limits`) before any
work; linking goes through the micro-batcher (:mod:`genbel.serve.batching`). No request value is ever
used as a path: ids are looked up in the in-memory KB, texts are only linked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from genbel._version import __version__
from genbel.data.abbreviations import expand_abbreviations, find_abbreviations
from genbel.data.queries import Candidate, MentionQuery
from genbel.errors import Errors, InputError
from genbel.kb.semantic_groups import resolve_group
from genbel.serve.concepts import concept_record, vocabulary_url
from genbel.serve.errors import RequestError
from genbel.serve.limits import check_mention_text, check_text
from genbel.serve.metrics import CONTENT_TYPE
from genbel.serve.schemas import (
    AnnotateRequest,
    AnnotateResponse,
    ConceptOut,
    HealthOut,
    LinkRequest,
    LinkResponse,
    MentionIn,
    SearchResponse,
)
from genbel.serve.service import Service

router = APIRouter()
#: ``POST /annotate``, included only when the server has a mention detector
annotate_router = APIRouter()

_ERRORS = {
    400: {"description": "Malformed JSON (E540)."},
    408: {"description": "Not answered within --timeout (E547)."},
    413: {"description": "Body, text or mention list over a limit (E543, E544, E545)."},
    415: {"description": "Body not sent as application/json (E552)."},
    422: {"description": "A field with a wrong type or value, or unknown (E541, E542, E551, E553)."},
    429: {"description": "Per-client rate limit (E546) or a full linker queue (E548)."},
}


def _service(request: Request) -> Service:
    return request.app.state.service


@router.post("/link", response_model=LinkResponse, responses=_ERRORS, tags=["linking"])
async def link(body: LinkRequest, request: Request) -> dict[str, Any]:
    """Rank KB concepts for each mention (best first, at most ``k``)."""
    svc = _service(request)
    cfg = svc.config
    _check_k(body.k, cfg.max_k)
    if not body.mentions:
        raise RequestError(Errors.E541.format(field="mentions", reason="empty list: give at least one mention"))
    if len(body.mentions) > cfg.max_mentions:
        raise RequestError(Errors.E545.format(field="mentions", size=len(body.mentions), limit=cfg.max_mentions), 413)
    queries = []
    # per distinct context (mentions of one abstract share it): its abbreviations, checked once
    abbrevs_of: dict[str, dict[str, str]] = {}
    total = 0
    for i, m in enumerate(body.mentions):
        field = f"mentions[{i}]"
        m = MentionIn(text=m) if isinstance(m, str) else m
        check_mention_text(m.text, f"{field}.text" if m.context is not None else field, cfg)
        if m.context is not None and m.context not in abbrevs_of:
            total += len(m.context)
            if total > cfg.max_text_chars * 4:
                raise RequestError(Errors.E544.format(field="mentions[*].context (distinct contexts together)",
                                                      size=total, limit=cfg.max_text_chars * 4), 413)
            check_text(m.context, f"{field}.context", cfg)
            abbrevs_of[m.context] = find_abbreviations(m.context) if body.abbreviations else {}
        queries.append(_query(m, field, svc, abbrevs_of))
    results = await svc.batcher.link(queries, body.k)
    return {
        "kb": svc.kb.name, "linker": svc.linker_spec,
        "results": [
            {"text": q.surface, "linked_as": q.text, "type": q.type, "start": q.start, "end": q.end,
             "candidates": [_candidate(c, svc) for c in cands]}
            for q, cands in zip(queries, results)
        ],
    }


@annotate_router.post("/annotate", response_model=AnnotateResponse, responses=_ERRORS, tags=["linking"])
async def annotate(body: AnnotateRequest, request: Request) -> dict[str, Any]:
    """Find the mentions in a raw text and link each one (offsets are into ``text``)."""
    svc = _service(request)
    cfg = svc.config
    assert svc.detector is not None  # the route exists only with a detector
    _check_k(body.k, cfg.max_k)
    check_text(body.text, "text", cfg)
    spans = await svc.batcher.run_in_thread(svc.detector.detect, body.text)
    if len(spans) > cfg.max_mentions:
        raise RequestError(Errors.E545.format(field="text (mentions found)", size=len(spans),
                                              limit=cfg.max_mentions), 413)
    abbrevs = find_abbreviations(body.text) if body.abbreviations else {}
    queries = []
    for s in spans:
        linked = expand_abbreviations(s.text, abbrevs) if abbrevs else s.text
        queries.append(MentionQuery(text=linked, surface=s.text, type=s.type, context=body.text,
                                    start=s.start, end=s.end))
    results = await svc.batcher.link(queries, body.k) if queries else []
    svc.metrics.annotated()
    entities = []
    for s, q, cands in zip(spans, queries, results):
        best = cands[0] if cands else None
        entity_cands = [_candidate(c, svc) for c in cands]
        entities.append({
            "start": s.start, "end": s.end, "text": s.text, "type": s.type, "linked_as": q.text,
            "detector_score": round(float(s.score), 4),
            "id": best.concept_id if best else None, "name": entity_cands[0]["name"] if best else None,
            "score": float(best.score) if best else None,
            "url": vocabulary_url(best.concept_id) if best else None,
            "candidates": entity_cands,
        })
    return {"kb": svc.kb.name, "linker": svc.linker_spec, "detector": svc.detector_name,
            "text_length": len(body.text), "entities": entities}


@router.get("/concepts/{concept_id:path}", response_model=ConceptOut, responses={404: {"description": "E549"}},
            tags=["kb"])
async def concept(concept_id: str, request: Request) -> dict[str, Any]:
    """A concept by its main or alternate id (``D003924``, ``MESH:D003924``, ``OMIM:114500``)."""
    svc = _service(request)
    c = svc.kb.get(concept_id) if len(concept_id) <= 200 else None
    if c is None:
        raise RequestError(Errors.E549.format(concept_id=concept_id[:200], kb=svc.kb.name), 404)
    return concept_record(c, svc.kb)


@router.get("/search", response_model=SearchResponse, responses=_ERRORS, tags=["kb"])
async def search(request: Request, q: str = Query(..., description="Words of a concept name."),
                 limit: int = Query(10, description="Results (1..50).")) -> dict[str, Any]:
    """Concepts whose names match ``q``: exact names, then names starting with it, then containing it."""
    svc = _service(request)
    if not 1 <= limit <= 50:
        raise RequestError(Errors.E541.format(field="limit", reason=f"{limit} is not in 1..50"))
    if len(q) > svc.config.max_mention_chars:
        raise RequestError(Errors.E541.format(field="q", reason=f"{len(q)} characters; at most "
                                              f"{svc.config.max_mention_chars}"))
    check_text(q, "q", svc.config)
    # in the thread pool, not behind a linker batch: a search is a few ms
    results = await run_in_threadpool(svc.search.search, q, limit)
    return {"query": q, "results": results}


@router.get("/health", response_model=HealthOut, tags=["service"])
async def health(request: Request) -> dict[str, Any]:
    """Liveness and what this server serves."""
    svc = _service(request)
    cfg = svc.config
    return {
        "status": "ok", "version": __version__,
        "kb": {"name": svc.kb.name, "concepts": len(svc.kb), "names": svc.n_names},
        "linker": svc.linker_spec, "annotate": svc.detector is not None, "detector": svc.detector_name,
        "limits": {
            "max_body_bytes": cfg.max_body_bytes, "max_text_chars": cfg.max_text_chars,
            "max_mention_chars": cfg.max_mention_chars, "max_mentions": cfg.max_mentions, "max_k": cfg.max_k,
            "rate_limit": cfg.rate_limit, "rate_burst": cfg.rate_burst, "timeout_s": cfg.timeout_s,
            "batch_wait_ms": cfg.batch_wait_ms, "max_batch": cfg.max_batch,
        },
    }


@router.get("/metrics", response_class=PlainTextResponse, tags=["service"])
async def metrics(request: Request) -> PlainTextResponse:
    """Request counts, latency and batch histograms (Prometheus text format)."""
    return PlainTextResponse(_service(request).metrics.render(), media_type=CONTENT_TYPE)


# ------------------------------------------------------------------------------------------ helpers
def _check_k(k: int, max_k: int) -> None:
    if not 1 <= k <= max_k:
        raise RequestError(Errors.E541.format(field="k", reason=f"{k} is not in 1..{max_k} (genbel serve --max-k)"))


def _candidate(c: Candidate, svc: Service) -> dict[str, Any]:
    concept = svc.kb.get(c.concept_id)
    return {"id": c.concept_id, "name": concept.name if concept is not None else c.name, "matched": c.matched,
            "score": float(c.score), "url": vocabulary_url(c.concept_id)}


def _query(m: MentionIn, field: str, svc: Service, abbrevs_of: dict[str, dict[str, str]]) -> MentionQuery:
    """The query of one mention; its context (if any) is checked and in ``abbrevs_of`` already."""
    group = None
    if m.type is not None:
        if len(m.type) > 100:
            raise RequestError(Errors.E541.format(field=f"{field}.type", reason="over 100 characters"))
        try:
            group = resolve_group(m.type, svc.kb_groups, where=f"{field}.type")
        except InputError as e:
            raise RequestError(str(e), 422) from None
    if m.context is None:
        if m.start is not None or m.end is not None:
            raise RequestError(Errors.E551.format(field=field, reason="start/end given without a context"))
        return MentionQuery(text=m.text, type=group)
    if m.start is None and m.end is None:
        start = m.context.find(m.text)
        if start < 0:
            raise RequestError(Errors.E551.format(field=field, reason=f"{m.text[:80]!r} does not occur in the context"))
        end = start + len(m.text)
    else:
        start, end = m.start, m.end
        if start is None or end is None:
            raise RequestError(Errors.E551.format(field=field, reason="give both start and end, or neither"))
        if not 0 <= start < end <= len(m.context):
            raise RequestError(Errors.E551.format(
                field=field, reason=f"offsets {start}-{end} are not inside the context (0-{len(m.context)})"))
        if m.context[start:end] != m.text:
            raise RequestError(Errors.E551.format(
                field=field, reason=f"context[{start}:{end}] is {m.context[start:end][:80]!r}, not {m.text[:80]!r}"))
    abbrevs = abbrevs_of[m.context]
    linked = expand_abbreviations(m.text, abbrevs) if abbrevs else m.text
    return MentionQuery(text=linked, surface=m.text, type=group, context=m.context, start=start, end=end)
