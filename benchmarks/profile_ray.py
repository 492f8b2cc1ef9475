"""Where the time of ``genbel annotate --engine ray`` goes, and what 2 cores can give at best.

``run``: one distributed run (the API, in this process) on the corpus of ``bench_ray.py``, with

* the CPU seconds of every process of the run (the driver and every process Ray starts under it: GCS,
  raylet, agents, Ray Data's own actors, idle workers, the genbel actors), sampled every 0.25 s, over
  the whole run and over the steady window (after the first output shard);
* each actor's timeline: when its process appeared, its model loading (``ShardWorker.__init__``), each
  call (shard) with its documents and busy time, the gaps between calls;
* Ray's start (``ray.init``) apart from the rest, so the fixed cost splits into Ray start, actor start,
  model loading and the first shard.

``ceiling``: the same pipeline as the actor (``ShardWorker``, 1 torch thread) in N plain processes without
Ray, each on 1/N of the documents, started together after loading: the speed-up 2 processes get on
this machine's 2 cores is the most the Ray engine can get.

    .venv/bin/python benchmarks/profile_ray.py run --workers 2 --corpus train --n-docs 593 --shards 20
    .venv/bin/python benchmarks/profile_ray.py ceiling --processes 2 --corpus train --n-docs 593
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ray import VARIANTS, make_corpus  # noqa: E402


def _spec(variant: str) -> tuple[str, str]:
    opts = VARIANTS[variant]
    return opts[opts.index("--detector") + 1], opts[opts.index("--linker") + 1]


class _Sampler:
    """CPU seconds (user + system) of this process and all its descendants, every ``every`` seconds."""

    def __init__(self, every: float = 0.25) -> None:
        import psutil

        self.psutil, self.every, self.t0 = psutil, every, time.perf_counter()
        self.series: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
        self.names: dict[int, str] = {}
        self.rss: dict[int, int] = collections.defaultdict(int)  # the largest resident set seen, bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = self.psutil.Process()
        while not self._stop.is_set():
            t = time.perf_counter() - self.t0
            for p in [me, *me.children(recursive=True)]:
                try:
                    with p.oneshot():
                        ct = p.cpu_times()
                        self.rss[p.pid] = max(self.rss[p.pid], p.memory_info().rss)
                        self.names[p.pid] = " ".join(p.cmdline())[:120] or p.name()
                    self.series[p.pid].append((t, ct.user + ct.system))
                except self.psutil.Error:
                    pass
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def category(self, pid: int) -> str:
        name = self.names[pid]
        if pid == os.getpid():
            return "driver (genbel + Ray Data's executor)"
        for daemon in ("gcs_server", "raylet"):
            if name.split(" ")[0].endswith(daemon):
                return daemon
        if name.startswith("ray::MapWorker"):
            return "genbel actors"
        if name.startswith("ray::"):
            return name[5:].split(" ")[0].split("(")[0].split(".")[0]
        return "other Ray processes (dashboard head, log monitor, autoscaler monitor)"

    def cpu(self, pid: int, start: float = 0.0, end: float = float("inf")) -> float:
        def at(x: float) -> float:
            v = 0.0
            for t, c in self.series[pid]:
                if t <= x:
                    v = c
            return v

        return at(end) - at(start)


def run(args: argparse.Namespace) -> None:
    import ray

    from genbel.distributed import annotate_dataset, runner
    from genbel.distributed.workers import ShardWorker

    work = args.work or Path(tempfile.mkdtemp(prefix="profile-ray-"))
    _, names = make_corpus(args.corpus, args.n_docs, args.shards, work)
    events = work / f"events-x{args.workers}.jsonl"
    events.unlink(missing_ok=True)
    out = work / f"out-x{args.workers}"
    detector, linker = _spec(args.variant)

    class TimedWorker(ShardWorker):  # the genbel actor, timing its loading and its calls into a file
        def __init__(self, *a, **k) -> None:
            t = time.time()
            super().__init__(*a, **k)
            with open(events, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "ev": "init", "t0": t, "t1": time.time()}) + "\n")

        def __call__(self, batch):
            t = time.time()
            r = super().__call__(batch)
            with open(events, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "ev": "call", "n": len(r["doc"]), "t0": t,
                                    "t1": time.time()}) + "\n")
            return r

    runner.ShardWorker = TimedWorker
    if args.tasks_in_flight:
        runner.TASKS_IN_FLIGHT = args.tasks_in_flight
    sampler = _Sampler()
    wall0 = time.time() - (time.perf_counter() - sampler.t0)
    t = time.perf_counter()
    # the runner's own settings (runner._ray), started here so that Ray stays up until the CPU is read
    ray.init(num_cpus=max(os.cpu_count() or 1, args.workers), include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=True)
    ray_init = time.perf_counter() - t
    t_run = time.perf_counter() - sampler.t0
    result = annotate_dataset(work / "shards", out, detector=detector, linker=linker, workers=args.workers,
                              batch_docs=args.batch_docs, progress=False)
    t_end = time.perf_counter() - sampler.t0
    first = t_run + result.first_shard_seconds
    sampler.stop()
    ray.shutdown()

    whole: dict[str, float] = collections.defaultdict(float)
    steady: dict[str, float] = collections.defaultdict(float)
    count: collections.Counter = collections.Counter()
    for pid in sampler.series:
        c = sampler.category(pid)
        whole[c] += sampler.cpu(pid)
        steady[c] += sampler.cpu(pid, first, t_end)
        count[c] += 1
    actors = []
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    for pid in sorted({e["pid"] for e in evs}):
        init = next(e for e in evs if e["pid"] == pid and e["ev"] == "init")
        calls = [e for e in evs if e["pid"] == pid and e["ev"] == "call"]
        seen = sampler.series[pid][0][0] if pid in sampler.series else None
        actors.append({
            "pid": pid, "process_seen_s": None if seen is None else round(seen, 1),
            "max_rss_mb": round(sampler.rss.get(pid, 0) / 2**20),
            "load_s": [round(init["t0"] - wall0, 1), round(init["t1"] - wall0, 1)],
            "calls": len(calls), "documents": sum(e["n"] for e in calls),
            "busy_s": round(sum(e["t1"] - e["t0"] for e in calls), 1),
            "first_call_s": round(calls[0]["t0"] - wall0, 1) if calls else None,
            "last_end_s": round(calls[-1]["t1"] - wall0, 1) if calls else None,
            "gaps_s": [round(b["t0"] - a["t1"], 2) for a, b in zip(calls, calls[1:])],
        })
    summary = {
        "variant": args.variant, "workers": args.workers, "tasks_in_flight": getattr(runner, "TASKS_IN_FLIGHT", None), "documents": result.n_documents, "shards": len(names),
        "ray_init_s": round(ray_init, 1), "run_starts_s": round(t_run, 1), "first_shard_s": round(first, 1),
        "end_s": round(t_end, 1), "steady_documents_per_s": round(result.steady_documents_per_second, 2),
        "actors": actors,
        "cpu_s": {c: {"processes": count[c], "whole": round(whole[c], 1), "steady": round(steady[c], 1)}
                  for c in sorted(whole, key=lambda c: -whole[c])},
        "steady_window_s": round(t_end - first, 1), "load": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(summary, indent=1))


def _child(path: str, i: int, n: int, go: str, variant: str) -> None:
    import torch

    torch.set_num_threads(1)
    from genbel.distributed.workers import Job, ShardWorker

    detector, linker = _spec(variant)
    worker = ShardWorker(Job("annotate", detector=detector, linker=linker), threads=1)
    shard = Path(path)
    lines = shard.read_text(encoding="utf-8").splitlines(keepends=True)
    mine = shard.with_name(f"{shard.stem}-{i}-of-{n}.jsonl")
    mine.write_text("".join(line for k, line in enumerate(lines) if k % n == i), encoding="utf-8")
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)
    t0 = time.time()
    rows = worker({"index": [0], "path": [str(mine)], "rel": [mine.name], "out": [mine.name]})
    t1 = time.time()
    assert not any(rows["error"]), rows["error"][:1]
    print(json.dumps({"docs": len(rows["doc"]), "t0": t0, "t1": t1}), flush=True)


def ceiling(args: argparse.Namespace) -> None:
    work = args.work or Path(tempfile.mkdtemp(prefix="profile-ray-"))
    make_corpus(args.corpus, args.n_docs, 1, work)
    path = work / "shards" / "part-000.jsonl"
    go = work / f"go-{os.getpid()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, "_child", str(path), str(i), str(args.processes), str(go),
                               args.variant], stdout=subprocess.PIPE, text=True, env=env, stderr=subprocess.DEVNULL)
             for i in range(args.processes)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            sys.exit("a process failed to load the pipeline")
    load = os.getloadavg()[0]
    go.touch()
    res = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait()
    go.unlink()
    t0, t1 = min(r["t0"] for r in res), max(r["t1"] for r in res)
    docs = sum(r["docs"] for r in res)
    print(json.dumps({"variant": args.variant, "processes": args.processes, "documents": docs,
                      "seconds": round(t1 - t0, 1), "documents_per_s": round(docs / (t1 - t0), 2),
                      "each": [[r["docs"], round(r["t1"] - r["t0"], 1)] for r in res], "load": round(load, 1)}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        a = sys.argv[2:]
        _child(a[0], int(a[1]), int(a[2]), a[3], a[4])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["run", "ceiling"])
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="default")
    ap.add_argument("--corpus", choices=["test", "train"], default="train")
    ap.add_argument("--n-docs", type=int, default=593)
    ap.add_argument("--shards", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2, help="run: actors")
    ap.add_argument("--batch-docs", type=int, default=32, help="run: documents per linker call")
    ap.add_argument("--tasks-in-flight", type=int, default=None,
                    help="run: shards queued per actor (default: genbel.distributed.runner.TASKS_IN_FLIGHT)")
    ap.add_argument("--processes", type=int, default=2, help="ceiling: plain processes")
    ap.add_argument("--work", type=Path, default=None, help="folder for the corpus and outputs (default: a temp dir)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    (run if args.mode == "run" else ceiling)(args)


if __name__ == "__main__":
    main()
