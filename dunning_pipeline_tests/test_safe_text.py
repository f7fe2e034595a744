"""Text no database can store: replaced by U+FFFD in one place, named by the parsers, and never a
crash of the warehouse write (COPY on PostgreSQL, executemany on SQLite)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from dunning_pipeline import safe_text
from dunning_pipeline.zendesk import parse as zparse

EXTRACTED = datetime(2026, 3, 2, 1, 0)


@pytest.mark.parametrize(("raw", "stored", "problem"), [
    ("Müller \ud800GmbH", "Müller \ufffdGmbH", "a lone surrogate"),
    ("Gr\udcfc\udcdfe", "Gr\ufffd\ufffde", "a lone surrogate"),
    ("a\x00b", "a\ufffdb", "a NUL character"),
    ("M\ufffdller", "M\ufffdller", "U+FFFD"),
])
def test_unstorable_text_is_replaced_and_described(raw, stored, problem):
    assert safe_text.clean(raw) == stored
    assert problem in safe_text.text_problem(raw)
    assert safe_text.suspect_positions(["fine", raw, None, "é"]) == [1]


def test_ordinary_text_is_left_alone_and_not_copied():
    values = ["Müller GmbH", None, "Straße 1", "日本"]
    assert safe_text.text_problem("Straße") is None
    assert safe_text.suspect_positions(values) == []
    assert safe_text.clean_strings(values) is values


def test_the_warehouse_stores_unstorable_text_as_replacement_characters(warehouse):
    frame = pd.DataFrame({"key": ["odoo.x", "odoo.y"], "value": ["ok \ud83d", "nul\x00"],
                          "updated_at": [EXTRACTED, EXTRACTED]})
    warehouse.upsert("extract_state", frame)
    assert warehouse.get_state("odoo.x") == "ok \ufffd"
    assert warehouse.get_state("odoo.y") == "nul\ufffd"


def test_a_zendesk_ticket_with_unstorable_text_is_kept_and_named():
    frame = zparse.tickets_frame([
        {"id": 1, "status": "open", "subject": "Rechnung \udbff", "updated_at": "2026-03-01T10:00:00Z",
         "tags": ["ok", "b\udc80d"]},
        {"id": 2, "status": "open", "subject": "Invoice 7", "updated_at": "2026-03-01T10:00:00Z"},
    ], EXTRACTED)
    spoiled, fine = frame.iloc[0], frame.iloc[1]
    assert spoiled["subject"] == "Rechnung \ufffd" and "\ufffd" in spoiled["tags"]
    assert "ticket 1: field 'subject' holds a lone surrogate" in spoiled["parse_error"]
    assert "field 'tags' holds a lone surrogate" in spoiled["parse_error"]
    assert pd.isna(fine["parse_error"]) and fine["subject"] == "Invoice 7"
