"""The README runs as written: every ``python`` block and every command of every ``bash`` block.

The commands work on the files a user downloads (the README names them: BioSyn's MEDIC file and the
NCBI-disease corpus); the test copies those files from ``../shared/data`` into an empty working
folder, then runs each block there in order, in a fresh process, so state never leaks from the test
process. ``make demo`` is run as the command it wraps (``genbel demo``); ``make test`` is this suite.
``pip install`` lines are resolved against this clone with ``--dry-run`` (they must name real extras
that the installed environment satisfies) instead of re-installing the package under test.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DATA = ROOT.parent / "shared" / "data"
#: files the README's commands read, as a user has them after downloading (name → source in ../shared)
USER_FILES = {
    "medic_06Jul2012.txt": DATA / "medic" / "medic_06Jul2012.txt",
    "NCBItrainset_corpus.txt": DATA / "ncbi-disease" / "NCBItrainset_corpus.txt",
    "NCBIdevelopset_corpus.txt": DATA / "ncbi-disease" / "NCBIdevelopset_corpus.txt",
    "NCBItestset_corpus.txt": DATA / "ncbi-disease" / "NCBItestset_corpus.txt",
}
#: ``make`` targets and what they run once installed (``make test`` is the suite running this file)
MAKE_TARGETS = {"make demo": "genbel demo", "make test": None}

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of the README, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def shell_commands(code: str) -> list[str]:
    """The commands of a ``bash`` block (one per line; ``#`` comments and blank lines dropped;
    ``make`` targets replaced by the command they run)."""
    out = []
    for line in code.splitlines():
        cmd = line.split(" #", 1)[0].strip()
        if not cmd or cmd.startswith("#"):
            continue
        for target, real in MAKE_TARGETS.items():
            if cmd.startswith(target):
                cmd = real
        if cmd:
            out.append(cmd)
    return out


def test_readme_blocks_are_found() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    langs = [lang for lang, _ in blocks]
    assert "python" in langs and "bash" in langs
    assert shell_commands("make demo  # x\n# comment\n\ngenbel kb info kb/medic\nmake test\n") == [
        "genbel demo", "genbel kb info kb/medic"
    ]


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path: Path) -> None:
    missing = [str(src) for src in USER_FILES.values() if not src.exists()]
    if missing:
        pytest.skip(f"shared data not found: {missing}")
    for name, src in USER_FILES.items():
        shutil.copy(src, tmp_path / name)
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "NO_COLOR": "1"}
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    ran = 0
    for i, (lang, code) in enumerate(blocks):
        if lang == "python":
            runs = [[sys.executable, "-c", code]]
        elif lang == "bash":
            runs = [["bash", "-c", f"set -euo pipefail; {cmd}"] for cmd in shell_commands(code)]
        else:
            continue
        for argv in runs:
            cwd = tmp_path
            if argv[0] == "bash" and " pip install " in f" {argv[-1].split('; ', 1)[-1]}":
                argv = [sys.executable, "-m", "pip", "install", "--dry-run", "-q",
                        *shlex.split(argv[-1].split("pip install", 1)[1])]
                cwd = ROOT
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, (
                f"README block {i} ({lang}) failed: {argv[-1]!r}\nstdout:\n{proc.stdout[-3000:]}\n"
                f"stderr:\n{proc.stderr[-3000:]}"
            )
            ran += 1
    assert ran >= 5
