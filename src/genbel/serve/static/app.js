// genbel's page: annotate or link pasted text through the server's API, highlight mentions by type,
// show a mention's concept, search the KB, download the result. No framework, no CDN; every text from
// the user or the server is inserted as text (textContent), never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { health: null, text: "", entities: [], unplaced: [], types: [], selected: null };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new Error("the server cannot be reached (" + e.message + ")");
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    const msg = data && data.error ? data.error.message : resp.status + " " + resp.statusText;
    throw new Error(msg);
  }
  return data;
}

function showError(msg) {
  const box = $("#error");
  box.textContent = msg || "";
  box.hidden = !msg;
}

function busy(on) {
  for (const id of ["#annotate", "#link"]) { const b = $(id); if (b) b.disabled = on; }
  document.body.setAttribute("aria-busy", on ? "true" : "false");
}

// ------------------------------------------------------------------------------------------ start-up
async function init() {
  try {
    const h = await api("/health");
    state.health = h;
    $("#status").textContent = `KB ${h.kb.name} (${h.kb.concepts.toLocaleString()} concepts) · linker ${h.linker}` +
      (h.annotate ? ` · detector ${h.detector}` : " · no mention detector: link a list of mentions");
    if (!h.annotate) {
      $("#annotate-row").hidden = true;
      $("#mentions-box").open = true;
      $("#mentions-box summary").textContent = "Link a list of mentions";
    }
  } catch (e) {
    $("#status").textContent = "server not reachable";
    showError(e.message);
  }
  $("#text-form").addEventListener("submit", (ev) => { ev.preventDefault(); run(state.health && state.health.annotate ? "annotate" : "link"); });
  $("#link").addEventListener("click", () => run("link"));
  $("#text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("#text-form").requestSubmit(); }
  });
  $("#file").addEventListener("change", readFile);
  $("#search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
  for (const b of document.querySelectorAll(".downloads button")) b.addEventListener("click", () => download(b.dataset.format));
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") select(null); });
}

function readFile() {
  const f = $("#file").files[0];
  if (!f) return;
  if (state.health && f.size > state.health.limits.max_text_chars * 4) {
    showError(`${f.name}: ${f.size.toLocaleString()} bytes is more than this server accepts`);
    return;
  }
  const r = new FileReader();
  r.onload = () => { $("#text").value = r.result; showError(""); };
  r.onerror = () => showError(`${f.name}: cannot be read`);
  r.readAsText(f);
}

// ------------------------------------------------------------------------------------------ linking
async function run(mode) {
  const text = $("#text").value;
  showError("");
  if (!text.trim() && mode === "annotate") { showError("Paste a text first."); return; }
  busy(true);
  const t0 = performance.now();
  try {
    if (mode === "annotate") {
      const k = 5;
      const res = await api("/annotate", { text, k });
      render(text, res.entities, []);
    } else {
      await linkList(text);
    }
    const secs = ((performance.now() - t0) / 1000).toFixed(2);
    $("#summary").textContent = `${state.entities.length} mention${state.entities.length === 1 ? "" : "s"}` +
      (state.unplaced.length ? ` in the text, ${state.unplaced.length} not found in it` : "") + ` · ${secs} s`;
    $("#result").focus();
  } catch (e) {
    showError(e.message);
  } finally {
    busy(false);
  }
}

function occurrences(text, mention) {
  const out = [];
  let from = 0;
  for (;;) {
    const i = text.indexOf(mention, from);
    if (i < 0) break;
    out.push([i, i + mention.length]);
    from = i + mention.length;
  }
  if (!out.length) {  // case-insensitive, same length
    const lt = text.toLowerCase(), lm = mention.toLowerCase();
    if (lt.length === text.length) {
      let j = 0;
      for (;;) {
        const i = lt.indexOf(lm, j);
        if (i < 0) break;
        out.push([i, i + lm.length]);
        j = i + lm.length;
      }
    }
  }
  return out;
}

async function linkList(text) {
  const lines = [...new Set($("#mentions").value.split("\n").map((s) => s.trim()).filter(Boolean))];
  if (!lines.length) throw new Error("Write the mentions to link, one per line.");
  // every occurrence in the text, longest mentions first, without overlaps
  const spans = [];
  const taken = [];
  const unplaced = [];
  for (const m of [...lines].sort((a, b) => b.length - a.length)) {
    const occ = text ? occurrences(text, m).filter(([s, e]) => !taken.some(([ts, te]) => s < te && ts < e)) : [];
    if (!occ.length) { unplaced.push(m); continue; }
    for (const [s, e] of occ) { taken.push([s, e]); spans.push({ start: s, end: e, text: text.slice(s, e) }); }
  }
  spans.sort((a, b) => a.start - b.start);
  const per = state.health ? state.health.limits.max_mentions : 256;
  const items = [
    ...spans.map((s) => ({ text: s.text, context: text, start: s.start, end: s.end })),
    ...unplaced.map((m) => m),
  ];
  const results = [];
  for (let i = 0; i < items.length; i += per) {
    const res = await api("/link", { mentions: items.slice(i, i + per), k: 5 });
    results.push(...res.results);
  }
  const toEntity = (r, s) => {
    const best = r.candidates[0];
    return {
      start: s ? s.start : null, end: s ? s.end : null, text: r.text, type: r.type || "Mention",
      linked_as: r.linked_as, id: best ? best.id : null, name: best ? best.name : null,
      score: best ? best.score : null, url: best ? best.url : null, candidates: r.candidates,
    };
  };
  render(text, spans.map((s, i) => toEntity(results[i], s)), unplaced.map((m, i) => toEntity(results[spans.length + i], null)));
}

// ------------------------------------------------------------------------------------------ display
function typeClass(type) {
  let i = state.types.indexOf(type);
  if (i < 0) { state.types.push(type); i = state.types.length - 1; }
  return "t" + (i % 8);
}

function mentionButton(ent, idx) {
  const label = `${ent.text}: ${ent.type}` + (ent.id ? `, ${ent.name} (${ent.id})` : ", no concept");
  const b = el("button", {
    type: "button", class: `ent ${typeClass(ent.type)}${ent.id ? "" : " nil"}`, "data-index": idx,
    "data-type": ent.type, "data-id": ent.id || "", "aria-pressed": "false", "aria-label": label, title: label,
  }, ent.text);
  b.addEventListener("click", () => select(idx));
  b.addEventListener("mouseenter", () => { if (state.selected === null) showEntity(ent); });
  b.addEventListener("focus", () => { if (state.selected === null) showEntity(ent); });
  return b;
}

function render(text, entities, unplaced) {
  state.text = text;
  state.entities = entities;
  state.unplaced = unplaced;
  state.selected = null;
  const doc = $("#doc");
  doc.replaceChildren();
  let pos = 0;
  entities.forEach((ent, i) => {
    if (ent.start < pos) return;  // overlapping spans are not expected; keep the first
    doc.append(text.slice(pos, ent.start), mentionButton(ent, i));
    pos = ent.end;
  });
  doc.append(text.slice(pos));
  const un = $("#unplaced");
  un.replaceChildren();
  unplaced.forEach((ent, j) => un.append(el("li", {}, "not in the text: ", mentionButton(ent, entities.length + j))));
  const legend = $("#legend");
  legend.replaceChildren();
  for (const t of [...new Set([...entities, ...unplaced].map((e) => e.type))]) legend.append(el("li", { class: typeClass(t) }, t));
  for (const b of document.querySelectorAll(".downloads button")) b.disabled = !(entities.length + unplaced.length);
  $("#concept").replaceChildren(el("p", { class: "muted" }, entities.length + unplaced.length
    ? "Hover over or select a highlighted mention (Tab, then Enter) to see its concept."
    : "No mention found."));
}

function allEntities() { return [...state.entities, ...state.unplaced]; }

function select(idx) {
  for (const b of document.querySelectorAll("button.ent")) b.setAttribute("aria-pressed", String(Number(b.dataset.index) === idx));
  state.selected = idx;
  if (idx === null) return;
  const ent = allEntities()[idx];
  showEntity(ent);
}

function vocabLink(id, url) {
  return url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, id) : id;
}

function showEntity(ent) {
  const box = $("#concept");
  box.replaceChildren();
  const dl = el("dl", { id: "entity-facts" });
  const row = (k, v) => { dl.append(el("dt", {}, k), el("dd", {}, v)); };
  row("mention", ent.text);
  if (ent.linked_as && ent.linked_as !== ent.text) row("linked as", ent.linked_as);
  row("type", ent.type);
  if (ent.start !== null && ent.start !== undefined) row("offsets", `${ent.start}–${ent.end}`);
  if (ent.id) {
    row("concept", vocabLink(ent.id, ent.url));
    row("preferred name", ent.name);
    row("score", ent.score.toFixed(3));
  } else {
    row("concept", "none found");
  }
  box.append(dl);
  if (ent.candidates && ent.candidates.length) {
    box.append(el("h3", {}, "Top candidates"));
    const ol = el("ol", { id: "candidates" });
    for (const c of ent.candidates) {
      ol.append(el("li", {},
        el("button", { type: "button", onclick: () => showConcept(c.id) }, `${c.name}`), " ",
        vocabLink(c.id, c.url), " ", el("span", { class: "score" }, c.score.toFixed(3))));
    }
    box.append(ol);
  }
  box.append(el("div", { id: "concept-details" }));
}

async function showConcept(id, replace) {
  let c;
  try { c = await api("/concepts/" + encodeURIComponent(id)); } catch (e) { showError(e.message); return; }
  let box = $("#concept-details");
  if (replace || !box) { $("#concept").replaceChildren(); box = el("div", { id: "concept-details" }); $("#concept").append(box); }
  box.replaceChildren(el("h3", {}, c.name));
  const dl = el("dl");
  const row = (k, v) => { if (v !== "" && v !== null) dl.append(el("dt", {}, k), el("dd", {}, v)); };
  row("id", vocabLink(c.id, c.url));
  if (c.alt_ids.length) {
    const dd = el("span");
    c.alt_ids.forEach((a, i) => { if (i) dd.append(", "); dd.append(vocabLink(a, c.alt_urls[a])); });
    row("also", dd);
  }
  row("groups", c.semantic_groups.join(", "));
  row("types", c.semantic_types.join(", "));
  row("synonyms", c.synonyms.slice(0, 12).join("; ") + (c.synonyms.length > 12 ? ` … (${c.synonyms.length})` : ""));
  row("definition", c.definitions[0] || "");
  box.append(dl);
}

// ------------------------------------------------------------------------------------------ KB search
async function search() {
  const q = $("#q").value.trim();
  const ol = $("#search-results");
  if (!q) { ol.replaceChildren(); return; }
  try {
    const res = await api("/search?q=" + encodeURIComponent(q) + "&limit=10");
    ol.replaceChildren();
    if (!res.results.length) { ol.append(el("li", { class: "muted" }, "no concept has such a name")); return; }
    for (const r of res.results) {
      ol.append(el("li", {},
        el("button", { type: "button", onclick: () => { select(null); showConcept(r.id, true); } }, r.name), " ",
        vocabLink(r.id, r.url), r.matched !== r.name ? el("span", { class: "muted" }, ` (${r.matched})`) : null));
    }
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------------------------------ downloads
function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

function exportText(format) {
  const ents = allEntities();
  if (format === "json") {
    return [JSON.stringify({ text: state.text, kb: state.health && state.health.kb.name,
      linker: state.health && state.health.linker, entities: ents }, null, 2), "application/json"];
  }
  if (format === "csv") {
    const head = ["start", "end", "text", "type", "id", "name", "score", "linked_as"];
    const lines = [head.join(",")];
    for (const e of ents) lines.push(head.map((k) => csvCell(e[k])).join(","));
    return [lines.join("\r\n") + "\r\n", "text/csv"];
  }
  // PubTator: the first line is the title, the rest the abstract (newlines become spaces: offsets stay)
  const nl = state.text.indexOf("\n");
  const title = nl < 0 ? state.text : state.text.slice(0, nl);
  const abstract = nl < 0 ? "" : state.text.slice(nl + 1).replace(/[\r\n\t]/g, " ");
  const lines = [`doc|t|${title.replace(/[\r\t]/g, " ")}`, `doc|a|${abstract}`];
  for (const e of state.entities) lines.push(["doc", e.start, e.end, e.text, e.type, e.id || "-1"].join("\t"));
  return [lines.join("\n") + "\n\n", "text/plain"];
}

function download(format) {
  const [body, type] = exportText(format);
  const url = URL.createObjectURL(new Blob([body], { type }));
  const a = el("a", { href: url, download: `genbel.${format === "pubtator" ? "pubtator.txt" : format}` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

window.genbel = { state, exportText };
document.addEventListener("DOMContentLoaded", init);
