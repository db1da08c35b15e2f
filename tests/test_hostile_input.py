"""Hostile input to import and downloads (issue 14, "Import and downloads")."""

import csv
import io

import pandas as pd

from daam_store.views.compare import to_csv

FORMULAS = ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def read_back(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_csv_download_neutralises_formulas_and_keeps_numbers():
    frame = pd.DataFrame({"prompt": [*FORMULAS, "a cat"], "score": [-0.5] * len(FORMULAS) + [1.25]})
    header, *rows = read_back(to_csv(frame))
    assert header == ["prompt", "score"]
    assert [row[0] for row in rows] == [f"'{text}" for text in FORMULAS] + ["a cat"]
    assert {float(row[1]) for row in rows} == {-0.5, 1.25}


def test_csv_download_neutralises_row_labels_and_headers_of_a_matrix():
    matrix = pd.DataFrame([[-1.0, 0.5], [0.5, -1.0]], index=["=cmd", "dog"], columns=["=cmd", "dog"])
    header, first, second = read_back(to_csv(matrix))
    assert header == ["", "'=cmd", "dog"]
    assert first == ["'=cmd", "-1.0", "0.5"] and second == ["dog", "0.5", "-1.0"]
