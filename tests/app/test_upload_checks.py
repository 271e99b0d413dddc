"""Uploads are checked before they are added: the content must match the type, CSV quoting and row shape."""

from __future__ import annotations

import pytest

from datatune_core.errors import UserError
from datatune_ui.uploads import sniff_content

CASES = {
    ("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00"): "photo.csv is a PNG image, not a CSV text file",
    ("q.csv", b'input,output\n"great phone,positive\nbad,negative\n'): "q.csv, line 3: unexpected end of data "
                                                                      "(often an unclosed quote)",
    ("r.csv", b"input,output\ngreat,positive,extra\n"): "r.csv, line 2: 3 fields, but the header has 2",
    ("one.csv", b"justonecolumn\nx\n"): "the first line has a single column",
    ("t.jsonl", b'{"input": "a", "output": "b"}\n{oops\n'): "t.jsonl, line 2: not valid JSON",
    ("x.parquet", b"hello"): "x.parquet is not a Parquet file",
    ("w.xlsx", b"%PDF-1.4"): "w.xlsx is not an Excel workbook (it is a PDF document)",
    ("l.csv", "input,output\ncafé,ok\n".encode("latin-1")): "l.csv is not UTF-8 text (line 2)",
}


@pytest.mark.parametrize("name,data", list(CASES))
def test_bad_uploads_are_refused_with_the_line_and_the_fix(name, data):
    with pytest.raises(UserError) as e:
        sniff_content(name, data)
    assert CASES[(name, data)] in str(e.value)


def test_good_uploads_pass():
    sniff_content("ok.csv", b'input,output\n"great, really",positive\nbad,negative\n')
    sniff_content("ok.tsv", b"input\toutput\ngreat\tpositive\n")
    sniff_content("ok.jsonl", b'{"input": "a", "output": "b"}\n\n')
    sniff_content("ok.json", b'[{"input": "a", "output": "b"}]')
    sniff_content("ok.parquet", b"PAR1....PAR1")
