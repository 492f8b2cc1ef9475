"""The base install works without torch; model features name the extra to install (E450)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from genbel.deps import MissingDependencyError, extra_of, require
from genbel.errors import GenbelError
from tests.helpers import raises_code

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "kb" / "fixtures"
BLOCKED = ("torch", "transformers", "faiss", "peft", "gguf", "tokenizers", "safetensors", "psutil")

# Runs the genbel CLI with an import hook that makes the model packages unimportable, as in an
# environment where only `pip install genbel` (no extras) was run.
BOOTSTRAP = textwrap.dedent(
    f"""
    import sys

    BLOCKED = {BLOCKED!r}

    class NoExtras:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, NoExtras())
    from genbel.cli.main import main

    sys.argv = ["genbel", *sys.argv[1:]]
    try:
        main()
    finally:
        leaked = [m for m in BLOCKED if m in sys.modules]
        if leaked:
            print("LEAKED", leaked, file=sys.stderr)
    """
)

CORPUS = (
    "1|t|Familial progressive hyperpigmentation in a family.\n"
    "1|a|Pancreatic cancer was also seen.\n"
    "1\t0\t38\tFamilial progressive hyperpigmentation\tDisease\t145250\n"
    "1\t52\t69\tPancreatic cancer\tDisease\t260350\n"
)


def _genbel(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )


def test_require_names_the_extra() -> None:
    require("json")  # importable: nothing happens
    with raises_code("E450", MissingDependencyError) as e:
        require("json", "genbel_no_such_module", extra="models", feature="the dense linker")
    msg = str(e.value)
    assert msg.startswith("[E450] the dense linker needs the optional package(s) genbel_no_such_module")
    assert "pip install 'genbel[models]'" in msg
    assert isinstance(e.value, GenbelError)
    assert extra_of("torch.nn") == "models" and extra_of("psutil") == "bench" and extra_of("numpy") is None


def test_base_install_works_without_torch(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.pubtator"
    corpus.write_text(CORPUS, encoding="utf-8")
    # the blocker works: importing torch fails in the subprocess
    r = subprocess.run([sys.executable, "-c", BOOTSTRAP.replace("from genbel.cli.main import main", "import torch")],
                       capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "src")})
    assert r.returncode != 0 and "blocked by the test" in r.stderr

    r = _genbel("kb", "build", str(FIXTURES / "mini_medic.txt"), "--out", "kb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "LEAKED" not in r.stderr and (tmp_path / "kb" / "kb.sqlite").is_file()

    r = _genbel("kb", "lookup", "kb", "pancreatic acinar carcinoma", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "260350" in r.stdout and "LEAKED" not in r.stderr

    r = _genbel("evaluate", str(corpus), "--kb", "kb", "--linker", "tfidf", "--bootstrap", "10",
                "--json-out", "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "LEAKED" not in r.stderr and (tmp_path / "r.json").is_file()

    for linker in ("dense", "generative:x"):
        r = _genbel("evaluate", str(corpus), "--kb", "kb", "--linker", linker, cwd=tmp_path)
        assert r.returncode == 2, (linker, r.stderr)
        assert "[E450]" in r.stderr and "genbel[models]" in r.stderr, r.stderr

    # no linker named: the default needs the models extra, so TF-IDF is used and a warning says why
    r = _genbel("evaluate", str(corpus), "--kb", "kb", "--bootstrap", "10", "--json-out", "d.json",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "LEAKED" not in r.stderr and "[E450]" in r.stderr and "genbel[models]" in r.stderr
    assert json.loads((tmp_path / "d.json").read_text())["linker"] == "tfidf"

    # synthetic sentences from templates need no model either
    r = _genbel("synth", "--kb", "kb", "--generator", "template", "--n", "2", "--out", "s.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "LEAKED" not in r.stderr and len((tmp_path / "s.jsonl").read_text().splitlines()) == 2
