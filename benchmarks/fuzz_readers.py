"""Seeded mutation fuzzing of genbel's readers (issue 14): crashes per 10,000 malformed inputs.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/fuzz_readers.py [--n 10000] [--seed 0] [--jobs 2]
        [--readers pubtator,bigbio-json,...] [--save-crashes DIR] [--json OUT]

Every reader starts from small real seed files (the first ~30 lines of the staged NCBI-disease,
MEDIC and CTD files in ../shared/data, else the repository's test fixtures) and is fed mutated
copies: bit flips, byte insertions and deletions, truncation, splicing of two seeds, invalid
UTF-8, lone surrogate escapes, deep JSON nesting, integers of 5,000 digits, a UTF-8 BOM, changed
JSON value types, swapped/duplicated lines and (for ``.gz`` inputs) corrupt or truncated gzip
data; 1-3 mutations are stacked per input. Each outcome is one of:

* ``clean``  - the reader returned a result (which was then also written back / fingerprinted);
* ``coded``  - a :class:`genbel.errors.GenbelError` whose message starts with ``[E``;
* ``crash``  - anything else (another exception, an uncoded GenbelError, a 20 s hang).

The report gives per reader the inputs tried, each outcome count, crashes per 10,000 inputs and the
tracebacks of the first crashing inputs (``--save-crashes`` keeps those inputs for reproduction).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FIXTURES = REPO / "tests" / "kb" / "fixtures"
SEED_LINES = 30
TIMEOUT_S = 20


# ------------------------------------------------------------------ seeds
def _head(path: Path, n: int = SEED_LINES) -> bytes:
    with open(path, "rb") as fh:
        return b"".join(fh.readline() for _ in range(n))


def _first_existing(*paths: Path) -> Path:
    for p in paths:
        if p.exists():
            return p
    raise FileNotFoundError(paths[0])


def pubtator_seeds() -> list[bytes]:
    out = []
    for name in ("NCBItestset_corpus.txt", "NCBIdevelopset_corpus.txt"):
        p = DATA / "ncbi-disease" / name
        if p.exists():
            out.append(_head(p))
    cdr = DATA / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt"
    if cdr.exists():
        out.append(_head(cdr))
    if not out:
        ex = REPO / "src" / "genbel" / "resources" / "examples" / "ncbi_examples.pubtator"
        out.append(ex.read_bytes())
    return out


def _docs_of(seed: bytes):
    from genbel.data import parse_pubtator
    from genbel.errors import GenbelError

    text = seed.decode("utf-8")
    # keep whole documents only (the head may cut the last one)
    blocks = [b for b in text.split("\n\n") if b.strip()]
    docs = []
    for b in blocks[:-1] or blocks:
        with contextlib.suppress(GenbelError):  # a seed block that does not parse alone is left out
            docs += parse_pubtator(b + "\n", offsets="fix", on_duplicate="skip-identical")
    return docs


def bigbio_json_seeds() -> list[bytes]:
    out = []
    for s in pubtator_seeds():
        docs = _docs_of(s)
        out.append(("[\n" + ",\n".join(json.dumps(d.to_dict()) for d in docs) + "\n]\n").encode())
    return out


def bigbio_jsonl_seeds() -> list[bytes]:
    out = []
    for s in pubtator_seeds():
        out.append("".join(json.dumps(d.to_dict()) + "\n" for d in _docs_of(s)).encode())
    return out


def markup_seeds() -> list[bytes]:
    out = []
    for s in pubtator_seeds():
        lines = ["# markup lines made from the seed's mentions"]
        for d in _docs_of(s):
            text = d.text
            for e in d.entities[:6]:
                if len(e.offsets) != 1:
                    continue
                lo, hi = max(0, e.start - 60), min(len(text), e.end + 60)
                snippet = text[lo:e.start] + f"[{e.text[0]}]{{{e.type}}}" + text[e.end:hi]
                lines.append(snippet.replace("\n", " "))
        out.append(("\n".join(lines) + "\n").encode())
    return out


def medic_seeds() -> list[bytes]:
    return [_head(_first_existing(DATA / "medic" / "medic_06Jul2012.txt", FIXTURES / "mini_medic.txt")),
            (FIXTURES / "mini_medic.txt").read_bytes()]


def ctd_seeds() -> list[bytes]:
    p = DATA / "ctd-diseases" / "CTD_diseases_2017.tsv"
    if p.exists():
        return [_head(p, 40)]
    return [(b"# The Comparative Toxicogenomics Database\nDiseaseName\tDiseaseID\tAltDiseaseIDs\tDefinition\t"
             b"ParentIDs\tTreeNumbers\tParentTreeNumbers\tSynonyms\tSlimMappings\n"
             b"Breast Neoplasms\tMESH:D001943\tOMIM:114480\tTumors of the breast\t\t\t\tBreast Cancer|Tumor\t\n")]


def biosyn_seeds() -> list[bytes]:
    out = []
    for s in medic_seeds():
        lines = []
        for line in s.decode("utf-8").splitlines():
            if "||" in line:
                ids, names = line.split("||", 1)
                lines += [f"{ids}||{n}" for n in names.split("|")[:4]]
        out.append(("\n".join(lines) + "\n").encode())
    return out


def kb_jsonl_seeds() -> list[bytes]:
    from genbel.kb.loaders import load_medic

    out = []
    for s in medic_seeds():
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "m.txt"
            p.write_bytes(s)
            kb = load_medic(p)
        out.append("".join(json.dumps(c.to_dict()) + "\n" for c in kb).encode())
    return out


def tsv_seeds() -> list[bytes]:
    out = []
    for s in medic_seeds():
        lines = ["id\tname\tsynonyms"]
        for line in s.decode("utf-8").splitlines():
            if "||" in line:
                ids, names = line.split("||", 1)
                ns = names.split("|")
                lines.append(f"{ids}\t{ns[0]}\t{'|'.join(ns[1:])}")
        out.append(("\n".join(lines) + "\n").encode())
    return out


def obo_seeds() -> list[bytes]:
    return [(FIXTURES / "mini.obo").read_bytes()]


def umls_seeds() -> dict[str, bytes]:
    meta = FIXTURES / "umls" / "META"
    return {f"META/{p.name}": p.read_bytes() for p in sorted(meta.iterdir()) if p.is_file()}


# ------------------------------------------------------------------ mutations
_INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"]
_INTERESTING = [b"\t", b"|", b"||", b"\n", b"\r", b"\r\n", b"-1", b"0", b"999999999999", b"-5", b"\x00",
                b"[", b"]", b"{", b"}", b'"', b",", b":", b"null", b"true", b"1.5e308", b"NaN", b"[]", b"{}",
                b"|t|", b"|a|", b"\\u", b"\\ud800", b'"\\udc00"', b"\xef\xbb\xbf", b"#", b"[Term]\n", b"id: ",
                b"name: ", b"\\", "\u2028".encode(), "é".encode(), "\U0001f600".encode()]
_JSON_VALUES = [b"null", b"1", b"-1", b"1.5", b"true", b'"x"', b"[]", b"{}", b"[[1]]", b'{"a": 1}', b'[""]',
                b"9" * 5000, b'"\\ud800"', b"[0, 1e400]"]


def _pos(rng: random.Random, data: bytes) -> int:
    return rng.randint(0, len(data))


def m_bitflip(rng, data, seeds):
    if not data:
        return data, "bitflip(empty)"
    b = bytearray(data)
    n = rng.choice([1, 1, 2, 4, 8])
    for _ in range(n):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), f"bitflip x{n}"


def m_insert(rng, data, seeds):
    i = _pos(rng, data)
    if rng.random() < 0.5:
        ins = rng.choice(_INTERESTING) * rng.choice([1, 1, 2, 10])
    else:
        ins = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return data[:i] + ins + data[i:], f"insert {ins[:12]!r} at {i}"


def m_delete(rng, data, seeds):
    if not data:
        return data, "delete(empty)"
    i = rng.randrange(len(data))
    n = rng.choice([1, 1, 2, 5, 50, 500])
    return data[:i] + data[i + n:], f"delete {n} at {i}"


def m_truncate(rng, data, seeds):
    i = _pos(rng, data)
    return data[:i], f"truncate at {i}"


def m_splice(rng, data, seeds):
    other = rng.choice(seeds)
    i, j = _pos(rng, data), _pos(rng, other)
    return data[:i] + other[j:], f"splice at {i} with other[{j}:]"


def m_duplicate(rng, data, seeds):
    if not data:
        return data, "duplicate(empty)"
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 400))
    return data[:j] + data[i:j] + data[j:], f"duplicate [{i}:{j}]"


def m_invalid_utf8(rng, data, seeds):
    i = _pos(rng, data)
    bad = rng.choice(_INVALID_UTF8)
    return data[:i] + bad + data[i:], f"invalid utf-8 {bad!r} at {i}"


def m_surrogate(rng, data, seeds):
    i = data.find(b'"', rng.randint(0, max(0, len(data) - 1)))
    if i < 0:
        i = _pos(rng, data)
    esc = rng.choice([b"\\ud800", b"\\udfff", b"\\udbff", b"\\ud83d"])
    return data[:i + 1] + esc + data[i + 1:], f"surrogate {esc!r} at {i + 1}"


def m_deep(rng, data, seeds):
    n = rng.choice([200, 1000, 5000, 100000])
    i = _pos(rng, data)
    if rng.random() < 0.5:
        ins = b"[" * n + b"]" * n
    else:
        ins = b'{"a":' * n + b"1" + b"}" * n
    if rng.random() < 0.3:  # a whole line / document
        return ins + b"\n" + data, f"deep x{n} first line"
    return data[:i] + ins + data[i:], f"deep x{n} at {i}"


def m_huge_int(rng, data, seeds):
    digits = [k for k in range(len(data)) if 48 <= data[k] <= 57]
    big = b"9" * rng.choice([4301, 5000, 20000])
    if not digits:
        i = _pos(rng, data)
        return data[:i] + big + data[i:], f"huge int at {i}"
    i = rng.choice(digits)
    return data[:i] + big + data[i + 1:], f"huge int at {i}"


def m_bom(rng, data, seeds):
    return b"\xef\xbb\xbf" + data, "BOM"


def m_json_type(rng, data, seeds):
    """Replace the JSON value after a random ``":`` by another type."""
    starts = [k for k in range(len(data) - 2) if data[k:k + 2] == b'":']
    if not starts:
        return m_insert(rng, data, seeds)
    k = rng.choice(starts) + 2
    while k < len(data) and data[k:k + 1] == b" ":
        k += 1
    # end of the value: matching bracket or next , } ]
    depth, e = 0, k
    while e < len(data):
        c = data[e:e + 1]
        if c in (b"[", b"{"):
            depth += 1
        elif c in (b"]", b"}"):
            if depth == 0:
                break
            depth -= 1
        elif c == b"," and depth == 0:
            break
        elif c == b'"':
            e = data.find(b'"', e + 1)
            if e < 0:
                e = len(data)
                break
        e += 1
    new = rng.choice(_JSON_VALUES)
    return data[:k] + new + data[e:], f"json value [{k}:{e}] -> {new[:12]!r}"


def m_lines(rng, data, seeds):
    lines = data.split(b"\n")
    if len(lines) < 2:
        return m_insert(rng, data, seeds)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.choice(["swap", "dup", "drop", "field"])
    if op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "dup":
        lines.insert(j, lines[i])
    elif op == "drop":
        del lines[i]
    else:  # drop or double one separator of the line
        sep = rng.choice([b"\t", b"|", b"||", b","])
        parts = lines[i].split(sep)
        if len(parts) > 1:
            k = rng.randrange(len(parts) - 1)
            parts[k] = parts[k] + (sep if rng.random() < 0.5 else b"") + parts.pop(k + 1)
            lines[i] = sep.join(parts)
    return b"\n".join(lines), f"lines {op} {i},{j}"


MUTATORS: list[Callable] = [
    m_bitflip, m_insert, m_delete, m_truncate, m_splice, m_duplicate, m_invalid_utf8, m_surrogate,
    m_deep, m_huge_int, m_bom, m_json_type, m_lines,
]
WEIGHTS = [3, 3, 2, 1, 1, 1, 2, 1, 1, 1, 1, 2, 2]


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> tuple[bytes, list[str]]:
    ops = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        f = rng.choices(MUTATORS, WEIGHTS)[0]
        data, what = f(rng, data, seeds)
        ops.append(what)
    return data, ops


def gzip_mutate(rng: random.Random, raw: bytes) -> tuple[bytes, list[str]]:
    """Compress, then sometimes corrupt the compressed stream."""
    gz = gzip.compress(raw, mtime=0)
    r = rng.random()
    if r < 0.4:
        return gz, []
    b = bytearray(gz)
    if r < 0.6:
        cut = rng.randint(0, len(b) - 1)
        return bytes(b[:cut]), [f"gz truncated at {cut}/{len(b)}"]
    if r < 0.8:
        for _ in range(rng.choice([1, 2, 8])):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), ["gz bitflips"]
    if r < 0.9:
        return bytes(b) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 30))), ["gz trailing garbage"]
    return raw, ["not gzip at all"]


# ------------------------------------------------------------------ readers
@dataclass
class Reader:
    name: str
    files: Callable[[], list[dict[str, bytes]]]  # seed inputs: relative path -> bytes
    run: Callable[[Path], object]  # called with the folder holding the files
    gz: tuple[str, ...] = ()  # relative paths written gzip-compressed
    post: Callable[[object, Path], None] | None = None
    seeds: list[dict[str, bytes]] = field(default_factory=list)


def _single(name: str, seeds: Callable[[], list[bytes]]) -> Callable[[], list[dict[str, bytes]]]:
    return lambda: [{name: s} for s in seeds()]


def _write_docs(docs, d: Path) -> None:
    """The writers: every document read must be writable again (PubTator text may refuse with E152)."""
    from genbel.data import write_bigbio_jsonl
    from genbel.data.pubtator import format_pubtator
    from genbel.errors import GenbelError

    write_bigbio_jsonl(docs, d / "out.jsonl")
    try:
        format_pubtator(docs).encode("utf-8")
    except GenbelError:
        pass


def _use_kb(kb, d: Path) -> None:
    kb.fingerprint()
    kb.summary()
    if _use_kb.count % 10 == 0:  # saving costs a few ms: every 10th KB read is also saved and reloaded
        from genbel.kb import KnowledgeBase

        kb.save(d / "out-kb")
        KnowledgeBase.load(d / "out-kb")
    _use_kb.count += 1


_use_kb.count = 0  # type: ignore[attr-defined]


def _kb(fmt: str | None, rel: str):
    def run(d: Path):
        from genbel.kb.loaders import load_kb

        return load_kb(d / rel, fmt)

    return run


def _store_files() -> list[dict[str, bytes]]:
    """A genbel KB directory from the MEDIC seed, with a relaxed schema so the fuzzer can put NULLs in."""
    from genbel.kb.loaders import load_medic

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.txt"
        p.write_bytes(medic_seeds()[0])
        load_medic(p).save(Path(d) / "kb")
        out = {f"kb/{n}": (Path(d) / "kb" / n).read_bytes() for n in ("meta.json", "kb.sqlite")}
    return [out]


_STORE_VALUES = [None, 0, -1, 1.5, b"\xff\x00", "", "x", "D000001", 2**62]


def store_sql_mutate(rng: random.Random, db: bytes) -> tuple[bytes, list[str]]:
    """Rewrite one cell of ``kb.sqlite`` (NULL, a number, a blob, ...) in a copy without constraints."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "kb.sqlite"
        p.write_bytes(db)
        con = sqlite3.connect(p)
        try:
            tables = ["concepts", "names", "alt_ids", "semantic_types", "semantic_groups", "definitions"]
            t = rng.choice(tables)
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({t})")]
            sql = con.execute("SELECT sql FROM sqlite_master WHERE name=?", (t,)).fetchone()[0]
            relaxed = sql.replace("NOT NULL", "").replace("UNIQUE", "").replace("PRIMARY KEY", "")
            relaxed = relaxed.replace("REFERENCES concepts(idx)", "")
            con.executescript(f"ALTER TABLE {t} RENAME TO old_{t}; {relaxed}; "
                              f"INSERT INTO {t} SELECT * FROM old_{t}; DROP TABLE old_{t};")
            col = rng.choice(cols)
            val = rng.choice(_STORE_VALUES)
            n_rows = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            offset = rng.randrange(max(1, n_rows))  # the seeded rng, not SQLite's random(): reproducible
            con.execute(f"UPDATE {t} SET {col}=? WHERE rowid=(SELECT rowid FROM {t} ORDER BY rowid LIMIT 1 OFFSET ?)",
                        (val, offset))
            con.commit()
        finally:
            con.close()
        return p.read_bytes(), [f"sql {t}.{col} := {val!r}"]


def _read_markup(d: Path):
    from genbel.pipeline import read_markup

    return read_markup(d / "in.txt")


def _read_corpus(rel: str, **opts):
    def run(d: Path):
        from genbel.data import load_corpus

        return load_corpus(d / rel, **opts)

    return run


def _read(fn_name: str, rel: str, **opts):
    def run(d: Path):
        from genbel import data

        return getattr(data, fn_name)(d / rel, **opts)

    return run


def _post_docs(res, d: Path) -> None:
    _write_docs(res, d)


def _post_kb(res, d: Path) -> None:
    _use_kb(res, d)


def readers() -> list[Reader]:
    corpus_seeds = lambda: (
        [{"in.txt": s} for s in pubtator_seeds()] + [{"in.txt": s} for s in bigbio_json_seeds()]
        + [{"in.txt": s} for s in bigbio_jsonl_seeds()])
    return [
        Reader("pubtator", _single("in.txt", pubtator_seeds), _read("read_pubtator", "in.txt"), post=_post_docs),
        Reader("pubtator.gz", _single("in.txt.gz", pubtator_seeds),
               _read("read_pubtator", "in.txt.gz", offsets="warn"), gz=("in.txt.gz",), post=_post_docs),
        Reader("bigbio-json", _single("in.json", bigbio_json_seeds), _read("read_bigbio_json", "in.json"),
               post=_post_docs),
        Reader("bigbio-jsonl", _single("in.jsonl", bigbio_jsonl_seeds), _read("read_bigbio_jsonl", "in.jsonl"),
               post=_post_docs),
        Reader("corpus-auto", corpus_seeds, _read_corpus("in.txt", offsets="fix"), post=_post_docs),
        Reader("markup", _single("in.txt", markup_seeds), _read_markup, post=_post_docs),
        Reader("kb-medic", _single("medic.txt", medic_seeds), _kb("medic", "medic.txt"), post=_post_kb),
        Reader("kb-medic.gz", _single("medic.txt.gz", medic_seeds), _kb("medic", "medic.txt.gz"),
               gz=("medic.txt.gz",), post=_post_kb),
        Reader("kb-ctd", _single("ctd.tsv", ctd_seeds), _kb("ctd", "ctd.tsv"), post=_post_kb),
        Reader("kb-biosyn", _single("dict.txt", biosyn_seeds), _kb("biosyn", "dict.txt"), post=_post_kb),
        Reader("kb-umls", umls_seeds_list, _kb("umls", "META"), post=_post_kb),
        Reader("kb-obo", _single("onto.obo", obo_seeds), _kb("obo", "onto.obo"), post=_post_kb),
        Reader("kb-jsonl", _single("kb.jsonl", kb_jsonl_seeds), _kb("jsonl", "kb.jsonl"), post=_post_kb),
        Reader("kb-tsv", _single("kb.tsv", tsv_seeds), _kb("tsv", "kb.tsv"), post=_post_kb),
        Reader("kb-auto", lambda: ([{"kb.txt": s} for s in medic_seeds() + ctd_seeds() + kb_jsonl_seeds()
                                    + tsv_seeds() + obo_seeds()]), _kb(None, "kb.txt"), post=_post_kb),
        Reader("kb-store", _store_files, _kb("genbel", "kb"), post=_post_kb),
    ]


def umls_seeds_list() -> list[dict[str, bytes]]:
    return [umls_seeds()]


# ------------------------------------------------------------------ running
class _Timeout(BaseException):  # not an Exception: no reader may turn it into a coded error
    pass


def _alarm(signum, frame):
    raise _Timeout(f"no result after {TIMEOUT_S} s")


@dataclass
class Result:
    name: str
    tried: int = 0
    clean: int = 0
    coded: int = 0
    crashes: int = 0
    seconds: float = 0.0
    codes: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)


def make_input(rng: random.Random, reader: Reader) -> tuple[dict[str, bytes], list[str]]:
    base = dict(rng.choice(reader.seeds))
    target = rng.choice(sorted(base))
    all_of_target = [s[target] for s in reader.seeds if target in s] + [
        v for s in reader.seeds for v in s.values()]
    if target.endswith("kb.sqlite"):
        if rng.random() < 0.6:
            data, ops = store_sql_mutate(rng, base[target])
        else:
            data, ops = m_bitflip(rng, base[target], all_of_target)
            ops = [ops]
    else:
        data, ops = mutate(rng, base[target], all_of_target)
    base[target] = data
    return base, [f"{target}: {o}" for o in ops]


def run_reader(reader: Reader, n: int, seed: int, keep: int, save_dir: Path | None) -> Result:
    from genbel.errors import GenbelError

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")  # pronto warns about odd OBO input: not an outcome
    rng = random.Random(f"{seed}-{reader.name}")
    reader.seeds = reader.files()
    res = Result(reader.name)
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{reader.name}-"))
    signal.signal(signal.SIGALRM, _alarm)
    t0 = time.perf_counter()
    try:
        for i in range(n):
            files, ops = make_input(rng, reader)
            d = work / "in"
            if d.exists():
                shutil.rmtree(d)
            for rel, data in files.items():
                p = d / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                if rel in reader.gz:
                    data, gops = gzip_mutate(rng, data)
                    ops = ops + gops
                    files[rel] = data
                p.write_bytes(data)
            res.tried += 1
            signal.alarm(TIMEOUT_S)
            try:
                out = reader.run(d)
                if reader.post is not None:
                    reader.post(out, d)
                res.clean += 1
            except GenbelError as e:
                if str(e).startswith("[E"):
                    res.coded += 1
                    code = str(e)[1:5]
                    res.codes[code] = res.codes.get(code, 0) + 1
                else:
                    _crash(res, i, ops, files, keep, save_dir, reader)
            except BaseException as e:
                if isinstance(e, KeyboardInterrupt):
                    raise
                _crash(res, i, ops, files, keep, save_dir, reader)
            finally:
                signal.alarm(0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.seconds = time.perf_counter() - t0
    return res


def _crash(res: Result, i: int, ops: list[str], files: dict[str, bytes], keep: int, save_dir: Path | None,
           reader: Reader) -> None:
    res.crashes += 1
    if len(res.examples) < keep:
        tb = traceback.format_exc(limit=-6)
        ex = {"input": i, "mutations": ops, "traceback": tb}
        if save_dir is not None:
            dd = save_dir / reader.name / f"input-{i}"
            for rel, data in files.items():
                (dd / rel).parent.mkdir(parents=True, exist_ok=True)
                (dd / rel).write_bytes(data)
            ex["saved"] = str(dd)
        res.examples.append(ex)


def _worker(args: tuple[str, int, int, int, str | None]) -> Result:
    name, n, seed, keep, save = args
    reader = next(r for r in readers() if r.name == name)
    return run_reader(reader, n, seed, keep, Path(save) if save else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="inputs per reader (default 10,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--readers", default="", help="comma-separated reader names (default: all)")
    ap.add_argument("--keep", type=int, default=3, help="crashing inputs whose traceback is printed per reader")
    ap.add_argument("--save-crashes", default=None, help="folder to keep crashing inputs in")
    ap.add_argument("--json", default=None, help="write the figures as JSON here")
    a = ap.parse_args(argv)
    names = [r.name for r in readers()]
    chosen = [x for x in a.readers.split(",") if x] or names
    unknown = set(chosen) - set(names)
    if unknown:
        ap.error(f"unknown readers {sorted(unknown)}; known: {', '.join(names)}")
    jobs = [(name, a.n, a.seed, a.keep, a.save_crashes) for name in chosen]
    t0 = time.perf_counter()
    if a.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(a.jobs) as pool:
            results = pool.map(_worker, jobs, chunksize=1)
    else:
        results = [_worker(j) for j in jobs]
    wall = time.perf_counter() - t0

    print(f"genbel fuzz_readers: seed {a.seed}, {a.n} inputs per reader, {len(results)} readers, "
          f"{wall:.0f} s wall ({a.jobs} jobs)")
    print(f"{'reader':<14} {'tried':>7} {'clean':>7} {'coded':>7} {'crashes':>7} {'crash/10k':>9} {'s':>6}  codes")
    for r in results:
        per10k = 10_000 * r.crashes / max(1, r.tried)
        codes = " ".join(f"{k}:{v}" for k, v in sorted(r.codes.items(), key=lambda kv: -kv[1])[:6])
        print(f"{r.name:<14} {r.tried:>7} {r.clean:>7} {r.coded:>7} {r.crashes:>7} {per10k:>9.1f} "
              f"{r.seconds:>6.0f}  {codes}")
    total = sum(r.tried for r in results)
    crashes = sum(r.crashes for r in results)
    print(f"{'total':<14} {total:>7} {sum(r.clean for r in results):>7} {sum(r.coded for r in results):>7} "
          f"{crashes:>7} {10_000 * crashes / max(1, total):>9.1f}")
    for r in results:
        for ex in r.examples:
            print(f"\n--- crash: {r.name} input #{ex['input']}: {'; '.join(ex['mutations'])}"
                  + (f" (saved in {ex['saved']})" if "saved" in ex else ""))
            print(ex["traceback"].rstrip())
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({
            "seed": a.seed, "n": a.n, "wall_seconds": round(wall, 1),
            "readers": [{k: v for k, v in vars(r).items()} for r in results],
        }, indent=2, default=str) + "\n")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
