"""brat standoff: DOC.txt + DOC.ann per document."""

from __future__ import annotations

import pytest

from genbel.data.brat import read_brat, write_brat
from genbel.data.linked import LinkedConcept, LinkedDocument
from genbel.errors import FormatError, InputError
from tests.conftest import make_doc
from tests.helpers import raises_code


def test_written_lines_and_read_back(tmp_path):
    doc = make_doc("a/b", "Colon cancer\nand APC.", [("Colon cancer", "Disease", "D002"), ("APC", "Disease", "D003")])
    linked = LinkedDocument(doc, [(LinkedConcept("D002", "Colorectal Neoplasms", 0.9),
                                   LinkedConcept("OMIM:114500", "CRC", 0.5)), ()])
    write_brat([linked], tmp_path / "out")
    assert (tmp_path / "out" / "a" / "b.txt").read_text(encoding="utf-8") == doc.text
    assert (tmp_path / "out" / "a" / "b.ann").read_text(encoding="utf-8").splitlines() == [
        "T1\tDisease 0 12\tColon cancer",
        "N1\tReference T1 MESH:D002\tColorectal Neoplasms",
        "#1\tAnnotatorNotes T1\tMESH:D002 0.9 | OMIM:114500 0.5",
        "T2\tDisease 17 20\tAPC",
        "N2\tReference T2 MESH:D003\t",
    ]
    [back] = read_brat(tmp_path / "out")
    assert back.document_id == "a/b" and back.text == doc.text
    assert [(e.offsets, e.gold_ids) for e in back.entities] == [([(0, 12)], ["D002"]), ([(17, 20)], ["D003"])]


def test_ids_that_would_leave_the_folder_and_a_file_in_the_way(tmp_path):
    doc = make_doc("../x", "text", [])
    with raises_code("E526", FormatError, match="not a relative file name"):
        write_brat([doc], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("x")
    with raises_code("E525", FormatError):
        write_brat([make_doc("d", "t", [])], tmp_path / "file")


@pytest.mark.parametrize(
    ("line", "code", "err"),
    [("T1\tDisease 0 x\tColon", "E524", FormatError), ("T1\tDisease 0 99\tColon", "E524", FormatError),
     ("T1\tDisease 1 6\tColon", "E005", InputError), ("N1\tReference T9 MESH:D1\tx", "E524", FormatError)],
)
def test_malformed_ann_lines_name_file_and_line(tmp_path, line, code, err):
    (tmp_path / "d.txt").write_text("Colon cancer", encoding="utf-8")
    (tmp_path / "d.ann").write_text("#1\tAnnotatorNotes T1\tok\n" + line + "\n", encoding="utf-8")
    with raises_code(code, err, match="d.ann:2"):
        read_brat(tmp_path)
