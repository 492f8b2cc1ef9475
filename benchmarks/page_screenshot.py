"""Screenshot of the page (docs/serve_page.png) and the time it takes to annotate a pasted abstract in a
real headless Chromium, against a live ``genbel serve`` on 127.0.0.1.

The abstract is the first bundled example (PMID 9427148, title + newline + abstract); the time is from
the click on Annotate until the highlighted mentions are shown (the page's own figure, ``#summary``),
measured ``--repeat`` times after one warm-up.

    .venv/bin/python benchmarks/page_screenshot.py --linker dense:default --detector default
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", default="default")
    ap.add_argument("--linker", default="dense:default")
    ap.add_argument("--detector", default="default")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "serve_page.png")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()

    import httpx
    from playwright.sync_api import expect, sync_playwright

    from genbel.data import example_documents

    doc = example_documents()[0]
    title, abstract = doc.passages[0].text[0], doc.passages[1].text[0]
    text = f"{title}\n{abstract}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "genbel.cli.main", "serve", "--kb", args.kb, "--linker", args.linker,
             "--detector", args.detector, "--port", str(port), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise SystemExit(log.read().decode()[-3000:])
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1200, "height": 760}, device_scale_factor=1)
                page.goto(url)
                expect(page.locator("#status")).to_contain_text("linker")
                times = []
                for i in range(args.repeat + 1):
                    page.fill("#text", text)
                    t0 = time.perf_counter()
                    page.click("#annotate")
                    expect(page.locator("#summary")).to_contain_text(" s", timeout=60_000)
                    expect(page.locator("#annotate")).to_be_enabled()
                    if i:
                        times.append(time.perf_counter() - t0)
                n = page.locator("#doc button.ent").count()
                ents = page.locator("#doc button.ent")
                target = next((j for j in range(n) if ents.nth(j).inner_text() == "AGU"), 0)
                ents.nth(target).click()
                page.locator("#q").fill("aspartylglucosaminuria")
                page.locator("#q").press("Enter")
                expect(page.locator("#search-results li").first).to_be_visible()
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(args.out), full_page=False)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    times.sort()
    print(json.dumps({"linker": args.linker, "detector": args.detector, "mentions_shown": n,
                      "annotate_s_median": round(times[len(times) // 2], 2), "annotate_s_max": round(times[-1], 2),
                      "repeat": args.repeat, "load": os.getloadavg(), "screenshot": str(args.out),
                      "png_bytes": args.out.stat().st_size}))


if __name__ == "__main__":
    main()
