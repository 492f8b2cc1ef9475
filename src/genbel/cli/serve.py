"""``genbel serve``: the REST API and web page (FastAPI on uvicorn) over a KB, a linker and a detector."""

from __future__ import annotations

import logging
import os

import typer
from rich.console import Console

err_console = Console(stderr=True)
logger = logging.getLogger(__name__)


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    kb: str = typer.Option("default", "--kb", help="KB file, built KB directory, or default (bundled MEDIC)."),
    kb_format: str | None = typer.Option(None, "--kb-format", help="medic|ctd|biosyn|umls|obo|jsonl|tsv|genbel"),
    linker: str = typer.Option(
        "dense:default", "--linker",
        help="Linker spec: dense:default (shipped retriever; first use embeds the KB, then cached), tfidf, "
        "exact, generative:PATH, auto …"),
    detector: str = typer.Option(
        "default", "--detector", help="Mention detector for POST /annotate (a genbel.ner spec), or none."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes (each loads the models)."),
    max_body: int = typer.Option(1_000_000, "--max-body", min=1, help="Largest request body, bytes."),
    max_text: int = typer.Option(50_000, "--max-text", min=1, help="Longest text or context, characters."),
    max_mention: int = typer.Option(300, "--max-mention", min=1, help="Longest mention, characters."),
    max_token: int = typer.Option(500, "--max-token", min=1, help="Longest run without a space, characters."),
    max_mentions: int = typer.Option(256, "--max-mentions", min=1, help="Mentions per request (and per text)."),
    max_k: int = typer.Option(20, "--max-k", min=1, help="Largest k a request may ask for."),
    rate_limit: float = typer.Option(20.0, "--rate-limit", min=0, help="Requests/s per client address (0: off)."),
    rate_burst: int = typer.Option(40, "--rate-burst", min=1, help="Requests a client may send at once."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.001, help="Seconds to answer a request (else 408)."),
    batch_wait_ms: float = typer.Option(
        10.0, "--batch-wait-ms", min=0, max=1000, help="How long a mention waits for others to join its batch."),
    max_batch: int = typer.Option(512, "--max-batch", min=1, help="Mentions per linker batch."),
    max_queue: int = typer.Option(8192, "--max-queue", min=1, help="Waiting mentions before 429."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level (info, warning, …)."),
) -> None:
    """Serve POST /link, POST /annotate, GET /concepts/{id}, /search, /health, /metrics, the API docs
    (/docs) and a web page (/) that annotates pasted text. Models load once, at start-up."""
    from genbel.deps import require

    require("fastapi", "uvicorn", "httpx", extra="serve", feature="genbel serve")
    import uvicorn

    from genbel.serve.app import create_app
    from genbel.serve.config import CONFIG_ENV, ServeConfig
    from genbel.serve.service import load_service

    config = ServeConfig(
        kb=kb, kb_format=kb_format, linker=linker,
        detector=None if detector.strip().lower() in ("", "none") else detector,
        host=host, port=port, max_body_bytes=max_body, max_text_chars=max_text, max_mention_chars=max_mention,
        max_token_chars=max_token, max_mentions=max_mentions, max_k=max_k, rate_limit=rate_limit,
        rate_burst=rate_burst, timeout_s=timeout, batch_wait_ms=batch_wait_ms, max_batch=max_batch,
        max_queue=max_queue,
    )
    common = {"host": host, "port": port, "log_level": log_level, "access_log": False,
              "limit_concurrency": 4096, "timeout_keep_alive": 5, "server_header": False}
    if workers > 1:
        # each worker process builds the app from the settings (and loads the models itself)
        os.environ[CONFIG_ENV] = config.to_json()
        err_console.print(f"genbel serve: {workers} workers on http://{host}:{port}", highlight=False)
        uvicorn.run("genbel.serve.app:app_from_environment", factory=True, workers=workers, **common)
        return
    service = load_service(config)
    err_console.print(
        f"genbel serve: KB {service.kb.name} ({len(service.kb):,} concepts), linker {service.linker_spec}, "
        f"detector {service.detector_name or 'none (no /annotate)'} → http://{host}:{port}/ (API: /docs)",
        highlight=False, soft_wrap=True,
    )
    uvicorn.run(create_app(service), **common)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
