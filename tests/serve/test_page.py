"""The page in a real headless Chromium (Debian's ``chromium``, driven by playwright), loaded from a live
``genbel serve``: annotate pasted text, check the highlights and the concept panel, link a mention list,
search the KB, download the result; with the keyboard as well as the mouse. Every request the page makes
must go to the server itself (no CDN).

``make test`` installs ``chromium`` with apt-get when it is missing; the tests skip (saying why) only when
no Chromium executable exists."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.conftest import ABSTRACT

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install 'genbel[test]')")


def chromium_path() -> str | None:
    for candidate in (os.environ.get("GENBEL_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium executable (/usr/bin/chromium); `make test` installs it with apt-get")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server: str):
    context = browser.new_context(base_url=live_server, accept_downloads=True, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    foreign: list[str] = []
    pg.on("request", lambda req: None if req.url.startswith(live_server) or req.url.startswith(("blob:", "data:"))
          else foreign.append(req.url))
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto("/")
    sync_api.expect(pg.locator("#status")).to_contain_text("serve-tiny")
    yield pg
    assert foreign == [], f"the page fetched from other origins: {foreign}"
    assert errors == [], f"script errors: {errors}"
    context.close()


def test_annotate_highlights_by_type_and_shows_the_concept(page) -> None:
    expect = sync_api.expect
    page.fill("#text", ABSTRACT)
    page.click("#annotate")
    marks = page.locator("#doc button.ent")
    expect(page.locator("#summary")).to_contain_text("mentions")
    texts = marks.all_inner_texts()
    assert {"breast cancer", "colorectal cancer", "ibuprofen", "colon cancer"} <= set(texts)
    # the document reads as the text, with the mentions in place
    assert page.locator("#doc").inner_text() == ABSTRACT
    # by type: the two groups get different colours, shown in the legend
    disorder = page.locator("#doc button.ent", has_text="breast cancer")
    drug = page.locator("#doc button.ent", has_text="ibuprofen")
    assert disorder.get_attribute("data-type") == "Disorders" and drug.get_attribute("data-type") == "Chemicals & Drugs"
    assert disorder.evaluate("e => getComputedStyle(e).backgroundColor") != drug.evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert set(page.locator("#legend li").all_inner_texts()) == {"Disorders", "Chemicals & Drugs"}
    # hover previews, click pins: id (linked to MeSH), preferred name, score, candidates
    drug.hover()
    expect(page.locator("#concept")).to_contain_text("Ibuprofen")
    disorder.click()
    panel = page.locator("#concept")
    expect(panel).to_contain_text("Breast Neoplasms")
    expect(panel).to_contain_text("D001943")
    assert panel.locator("#entity-facts a", has_text="D001943").get_attribute("href") == "https://meshb.nlm.nih.gov/record/ui?ui=D001943"
    assert float(panel.locator("#entity-facts dt:text-is('score') + dd").inner_text()) > 0.5
    assert panel.locator("#entity-facts dt:text-is('type') + dd").inner_text() == "Disorders"
    assert panel.locator("#candidates li").count() >= 1
    # a candidate opens the concept's record (synonyms, definition)
    panel.locator("#candidates li button").first.click()
    expect(page.locator("#concept-details")).to_contain_text("Tumors or cancer of the human breast.")


def test_keyboard_only(page) -> None:
    expect = sync_api.expect
    page.fill("#text", ABSTRACT)
    page.focus("#text")
    page.keyboard.press("Control+Enter")                         # submits the form
    expect(page.locator("#doc button.ent").first).to_be_visible()
    page.locator("#doc button.ent").first.focus()
    for _ in range(2):
        page.keyboard.press("Tab")                               # the mentions are in the tab order
    focused = page.evaluate("document.activeElement.textContent")
    assert focused in page.locator("#doc button.ent").all_inner_texts()
    page.keyboard.press("Enter")
    expect(page.locator("#concept")).to_contain_text(focused)
    assert page.evaluate("document.activeElement.getAttribute('aria-pressed')") == "true"
    page.keyboard.press("Escape")
    assert page.locator("#doc button.ent[aria-pressed=true]").count() == 0


def test_link_a_mention_list_search_and_download(page, tmp_path) -> None:
    expect = sync_api.expect
    page.fill("#text", ABSTRACT)
    page.click("#mentions-box summary")
    page.fill("#mentions", "FAP\ncolon cancer\ngout")
    page.click("#link")
    expect(page.locator("#summary")).to_contain_text("1 not found")
    fap = page.locator("#doc button.ent", has_text="FAP")
    assert fap.count() == 2                                      # every occurrence is linked in its context
    fap.first.click()
    expect(page.locator("#concept")).to_contain_text("Adenomatous Polyposis Coli")
    expect(page.locator("#concept")).to_contain_text("Familial adenomatous polyposis")   # linked as the long form
    expect(page.locator("#unplaced")).to_contain_text("gout")
    # KB search
    page.fill("#q", "colon")
    page.press("#q", "Enter")
    expect(page.locator("#search-results li").first).to_contain_text("Colorectal Neoplasms")
    page.locator("#search-results li button").first.click()
    expect(page.locator("#concept-details")).to_contain_text("OMIM:114500")
    # downloads
    with page.expect_download() as info:
        page.click("button[data-format=json]")
    data = json.loads(Path(info.value.path()).read_text())
    assert data["text"] == ABSTRACT and any(e["id"] == "D011125" for e in data["entities"])
    with page.expect_download() as info:
        page.click("button[data-format=csv]")
    csv_lines = Path(info.value.path()).read_text().splitlines()
    assert csv_lines[0] == "start,end,text,type,id,name,score,linked_as" and len(csv_lines) == 1 + 4  # FAP twice, colon cancer, gout
    with page.expect_download() as info:
        page.click("button[data-format=pubtator]")
    pubtator = Path(info.value.path()).read_text().splitlines()
    assert pubtator[0] == f"doc|t|{ABSTRACT}" and pubtator[2].split("\t")[1:4] == ["32", "35", "FAP"]


def test_server_errors_are_shown(page) -> None:
    page.fill("#text", "   ")
    page.click("#annotate")
    sync_api.expect(page.locator("#error")).to_contain_text("Paste a text first")
    page.fill("#text", "a " + "x" * 600)
    page.click("#annotate")
    sync_api.expect(page.locator("#error")).to_contain_text("[E553]")
