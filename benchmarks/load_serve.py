"""Load test of ``genbel serve``: N concurrent clients for T seconds, each sending one abstract's mentions
(with the abstract as context) per ``POST /link`` request, then the batch CLI (``genbel link``) on the
same abstracts for comparison.

Traffic goes only to 127.0.0.1 and is bounded in time (``--seconds``) and count (``--max-requests``).
Each client sends from its own loopback address (127.0.0.2, 127.0.0.3, …), so the server's per-client
rate limit applies to each client as it would to separate machines (``--server-rate-limit`` sets it;
the default keeps the server's). Clients are closed-loop: each sends its next request when the last is
answered.

Reports (one JSON object on stdout, and ``--json-out``), per round of T seconds (``--rounds``, 2 by
default, back to back): requests, mentions, throughput (requests/s and mentions/s), latency
p50/p95/p99/max, errors by status, the server's linker batches (from /metrics), the CPU seconds it used
(and mentions per CPU second) and its RSS after the round; RSS after start-up and after a warm-up (every abstract once); and the batch CLI's mentions/s on the
same documents (its own timing, model loading excluded), run once before and once after the server
(the machine's load drifts), with the ratio server / mean of the two CLI runs. Under a shared, loaded
machine wall-clock rates depend on the CPU share each process gets, so both sides are also given per
CPU second: the server's CPU during a round, the CLI's CPU for all documents minus a run on one document
(model loading cancels out).

    .venv/bin/python benchmarks/load_serve.py --clients 16 --seconds 60 --linker dense:default
    .venv/bin/python benchmarks/load_serve.py --clients 4 --seconds 10 --linker tfidf   # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEFAULT_CORPUS = DATA / "ncbi-disease" / "NCBIdevelopset_corpus.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def request_bodies(corpus: Path, limit_docs: int | None) -> tuple[list[dict], list]:
    """One /link body per document: its gold mention spans with the document as context."""
    from genbel.data import load_corpus

    docs = load_corpus(corpus)[:limit_docs] if limit_docs else load_corpus(corpus)
    bodies = []
    for d in docs:
        text = d.text
        mentions = [{"text": e.mention, "context": text, "start": e.start, "end": e.end}
                    for e in sorted(d.entities, key=lambda e: (e.start, e.end)) if text[e.start:e.end] == e.mention]
        if mentions:
            bodies.append({"mentions": mentions[:256], "k": 5})
    return bodies, docs


def rss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used: a figure less bent by other
    processes' load than wall-clock throughput."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


async def run_clients(url: str, bodies: list[dict], clients: int, seconds: float, max_requests: int,
                      own_addresses: bool) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    mentions = 0
    sent = 0
    deadline = time.monotonic() + seconds

    async def client(i: int) -> None:
        nonlocal mentions, sent
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + i}" if own_addresses else None)
        async with httpx.AsyncClient(base_url=url, transport=transport, timeout=60) as c:
            j = i * 7
            while time.monotonic() < deadline and sent < max_requests:
                body = bodies[j % len(bodies)]
                j += 1
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await c.post("/link", json=body)
                    key = str(r.status_code)
                    if r.status_code == 200:
                        mentions += len(body["mentions"])
                except httpx.HTTPError as e:
                    key = type(e).__name__
                latencies.append(time.perf_counter() - t0)
                statuses[key] = statuses.get(key, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*[client(i) for i in range(clients)])
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 1) if lat else float("nan")

    ok = statuses.get("200", 0)
    return {
        "requests": len(latencies), "ok": ok, "errors": len(latencies) - ok, "statuses": statuses,
        "wall_s": round(wall, 1), "requests_per_s": round(ok / wall, 2), "mentions_per_s": round(mentions / wall, 1),
        "mentions": mentions,
        "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": round(1000 * lat[-1], 1) if lat else None,
                       "mean": round(1000 * statistics.fmean(lat), 1) if lat else None},
    }


def server_batches(url: str) -> dict:
    import httpx

    text = httpx.get(url + "/metrics", timeout=30).text

    def value(name: str) -> float:
        m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(m.group(1)) if m else float("nan")

    n = value("genbel_batch_mentions_count")
    return {"batches": int(n), "mean_mentions_per_batch": round(value("genbel_batch_mentions_sum") / n, 1) if n else None,
            "mean_requests_per_batch": round(value("genbel_batch_requests_sum") / n, 2) if n else None}


def batch_cli(docs: list, kb: str, linker: str, workdir: Path) -> dict:
    """``genbel link`` on the same documents (PubTator), with abbreviations as the server's default."""
    from genbel.data import write_corpus

    src = workdir / "load_docs.pubtator"
    write_corpus(docs, src, format="pubtator")
    out = workdir / "linked.jsonl"
    t0 = time.perf_counter()
    cpu0 = _children_cpu()
    r = subprocess.run([sys.executable, "-m", "genbel.cli.main", "link", str(src), "--kb", kb, "--linker", linker,
                        "-o", str(out), "--abbreviations", "-q"], check=False, capture_output=True, text=True, env=_env())
    total = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    m = re.search(r"linked (\d+) mentions in (\d+) documents in ([0-9.]+) s \(([0-9,.]+) mentions/s\)", r.stderr)
    if r.returncode != 0 or m is None:
        raise SystemExit(f"genbel link failed ({r.returncode}): {r.stderr[-2000:]}")
    return {"mentions": int(m.group(1)), "documents": int(m.group(2)), "link_s": float(m.group(3)),
            "mentions_per_s": float(m.group(4).replace(",", "")), "wall_with_loading_s": round(total, 1),
            "cpu_with_loading_s": round(cpu, 1)}


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-requests", type=int, default=100_000, help="a bound on the requests sent per round")
    ap.add_argument("--rounds", type=int, default=2, help="load rounds of --seconds each (RSS after each)")
    ap.add_argument("--linker", default="dense:default")
    ap.add_argument("--kb", default="default")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="PubTator/BigBio abstracts to send")
    ap.add_argument("--docs", type=int, default=None, help="use the first N documents")
    ap.add_argument("--server-rate-limit", type=float, default=None, help="genbel serve --rate-limit")
    ap.add_argument("--batch-wait-ms", type=float, default=None, help="genbel serve --batch-wait-ms")
    ap.add_argument("--no-cli", action="store_true", help="skip the batch CLI comparison")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    if args.clients > 250:
        raise SystemExit("at most 250 clients (one loopback address each)")
    if not args.corpus.exists():
        raise SystemExit(f"{args.corpus}: not found (pass --corpus with PubTator/BigBio abstracts)")

    import httpx

    bodies, docs = request_bodies(args.corpus, args.docs)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "genbel.cli.main", "serve", "--kb", args.kb, "--linker", args.linker,
           "--detector", "none", "--port", str(port), "--log-level", "warning"]
    if args.server_rate_limit is not None:
        cmd += ["--rate-limit", str(args.server_rate_limit)]
    if args.batch_wait_ms is not None:
        cmd += ["--batch-wait-ms", str(args.batch_wait_ms)]
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "linker": args.linker, "kb": args.kb,
        "corpus": str(args.corpus), "documents": len(bodies),
        "mentions_per_request": round(statistics.fmean(len(b["mentions"]) for b in bodies), 1),
        "clients": args.clients, "seconds": args.seconds, "cpus": os.cpu_count(), "load_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        used = [d for d in docs if d.entities]
        if not args.no_cli:  # the CLI before and after the server run: the machine's load drifts
            result["batch_cli_before"] = batch_cli(used, args.kb, args.linker, Path(tmp))
        with open(Path(tmp) / "server.log", "wb") as log:
            server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env())
        t0 = time.perf_counter()
        try:
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"genbel serve exited: {(Path(tmp) / 'server.log').read_text()[-3000:]}")
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            result["server_ready_s"] = round(time.perf_counter() - t0, 1)
            result["rss_start_mb"] = round(rss(server.pid) / 2**20, 1)
            # warm-up: every document once, so that caches and allocator pools are filled before measuring
            with httpx.Client(base_url=url, timeout=120) as c:
                for b in bodies:
                    c.post("/link", json=b).raise_for_status()
            result["rss_warm_mb"] = round(rss(server.pid) / 2**20, 1)
            rounds = []
            for _ in range(args.rounds):
                before = server_batches(url)
                cpu0 = cpu_seconds(server.pid)
                r = asyncio.run(run_clients(url, bodies, args.clients, args.seconds, args.max_requests,
                                            own_addresses=True))
                after = server_batches(url)
                n = after["batches"] - before["batches"]
                r["server_cpu_s"] = round(cpu_seconds(server.pid) - cpu0, 1)
                r["mentions_per_server_cpu_s"] = round(r["mentions"] / r["server_cpu_s"], 1) if r["server_cpu_s"] else None
                r["batches"] = n
                r["mentions_per_batch"] = round(r["mentions"] / n, 1) if n else None
                r["requests_per_batch"] = round(r["ok"] / n, 2) if n else None
                r["rss_after_mb"] = round(rss(server.pid) / 2**20, 1)
                r["load_after"] = os.getloadavg()
                rounds.append(r)
            result["rounds"] = rounds
            result["load"] = rounds[0]
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.no_cli:
            result["batch_cli_after"] = batch_cli(used, args.kb, args.linker, Path(tmp))
            # CPU per mention of the CLI without its loading: (CPU of all documents - CPU of the first one)
            # / (mentions of all - mentions of the first), comparable with the server's mentions per CPU second
            one = batch_cli(used[:1], args.kb, args.linker, Path(tmp))
            full = statistics.fmean([result["batch_cli_before"]["cpu_with_loading_s"],
                                     result["batch_cli_after"]["cpu_with_loading_s"]])
            extra = full - one["cpu_with_loading_s"]
            result["batch_cli_one_document"] = one
            result["batch_cli_mentions_per_cpu_s"] = (
                round((result["batch_cli_after"]["mentions"] - one["mentions"]) / extra, 1) if extra > 0 else None)
            cli = statistics.fmean([result["batch_cli_before"]["mentions_per_s"],
                                    result["batch_cli_after"]["mentions_per_s"]])
            result["batch_cli_mentions_per_s_mean"] = round(cli, 1)
            result["server_vs_cli"] = [round(r["mentions_per_s"] / cli, 3) for r in result["rounds"]]
            result["load_after_cli"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")


if __name__ == "__main__":
    main()
