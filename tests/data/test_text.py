"""Plain text in (genbel.data.text): files, folders, stdin, paragraphs; bad input is a coded error."""

from __future__ import annotations

import io

import pytest

from genbel.data.text import read_text_documents, text_documents
from genbel.errors import InputError
from tests.helpers import raises_code

THREE = "First paragraph about breast cancer.\n\n  Second one,\nover two lines.  \n \n\nThird: Müller–Hillis.\n"


def test_paragraphs_are_documents_with_their_exact_text():
    docs = text_documents(THREE, "notes", "paragraph")
    assert [d.document_id for d in docs] == ["notes-p1", "notes-p2", "notes-p3"]
    assert [d.text for d in docs] == [
        "First paragraph about breast cancer.", "Second one,\nover two lines.", "Third: Müller–Hillis.",
    ]


def test_one_file_is_split_into_paragraphs_by_default_and_kept_whole_on_request(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text(THREE, encoding="utf-8")
    assert len(read_text_documents(f)) == 3
    [whole] = read_text_documents(f, split="file")
    assert whole.document_id == "notes" and whole.text == THREE


def test_a_folder_is_one_document_per_txt_file(tmp_path):
    (tmp_path / "b.txt").write_text("Beta text.", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("Alpha.\n\nStill alpha.", encoding="utf-8")
    (tmp_path / "skip.ann").write_text("T1\tX 0 1\tB", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("no", encoding="utf-8")
    docs = read_text_documents(tmp_path)
    assert [(d.document_id, d.text) for d in docs] == [("b", "Beta text."), ("sub/a", "Alpha.\n\nStill alpha.")]


def test_stdin_and_a_byte_order_mark():
    docs = read_text_documents("-", stdin=io.StringIO("\ufeffOne.\n\nTwo."))
    assert [(d.document_id, d.text) for d in docs] == [("stdin-p1", "One."), ("stdin-p2", "Two.")]


def test_other_encodings_with_encoding(tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("Sjögren syndrome".encode("latin-1"))
    with raises_code("E157", InputError, match="latin.txt:1"):
        read_text_documents(f)
    assert read_text_documents(f, encoding="latin-1")[0].text == "Sjögren syndrome"
    from genbel.data.formats import read_documents

    assert read_documents(f, encoding="latin-1")[0].text == "Sjögren syndrome"


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "E520"), (b" \n\n\t\n", "E520"), (b"GIF89a\x00\x01\x02", "E521")],
)
def test_empty_and_binary_files_are_clear_errors(tmp_path, content, code):
    f = tmp_path / "bad.txt"
    f.write_bytes(content)
    with raises_code(code, InputError, match="bad.txt"):
        read_text_documents(f)


def test_a_folder_without_text_and_a_missing_file(tmp_path):
    with raises_code("E522", InputError, match="no .txt file"):
        read_text_documents(tmp_path)
    with raises_code("E006", InputError):
        read_text_documents(tmp_path / "missing.txt")
    with raises_code("E154", InputError, match="split"):
        read_text_documents("-", split="sentence", stdin=io.StringIO("x"))
