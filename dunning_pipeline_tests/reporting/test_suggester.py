"""The suggester against a local stand-in endpoint: good, wrong, failing and hanging answers."""

from __future__ import annotations

import json
import time

import pytest

from dunning_pipeline.reporting.llm_resource import LlmSuggesterResource
from dunning_pipeline.reporting.suggester import LLM, TEMPLATE, amount_tokens, check_answer

from .llm_standin import HANG, StandIn

SECRET = "sk-test-very-secret"
BODY = ("Sehr geehrte Damen und Herren,\n\n- INV/2026/00012, fällig am 21. Februar 2026: 500,00\xa0€\n"
        "- INV/2026/00013, fällig am 28. Februar 2026: 2.000,00\xa0€\n\nGesamt: 2.500,00\xa0€\n")
NUMBERS = ["INV/2026/00012", "INV/2026/00013"]
AMOUNTS = ["500,00\xa0€", "2.000,00\xa0€", "2.500,00\xa0€"]
GOOD = ("Guten Tag Frau Weber,\n\nwie besprochen hier die offenen Rechnungen INV/2026/00012 (500,00 €, fällig am "
        "21. Februar 2026) und INV/2026/00013 (2.000,00 €), zusammen 2.500,00 €. Bitte zahlen Sie in 7 Tagen.\n")
CONVERSATION = [{"date": "2026-02-21", "from": "us", "subject": "Rechnung", "text": "Wir prüfen das."}]


def _suggest(suggester):
    return suggester.suggest(language="de", subject="2. Mahnung", body=BODY, invoice_numbers=NUMBERS,
                             amounts=AMOUNTS, messages=CONVERSATION)


def _resource(url, **kw):
    return LlmSuggesterResource(url=url, model="llama3.1:8b", api_key=SECRET, **kw).get_suggester()


def test_amount_like_numbers():
    assert amount_tokens("Gesamt: 2.500,00\xa0€, fällig am 21.02.2026 (INV/2026/00012), in 7 Tagen") == ["2.500,00"]
    assert amount_tokens("we waive 50 € or EUR 40, 1\u202f234,56 and €450.00") == ["50", "40", "1234,56", "450.00"]
    assert check_answer(GOOD, NUMBERS, AMOUNTS) is None


def test_a_good_answer_is_accepted_and_stored_with_the_prompt():
    with StandIn(GOOD) as server:
        s = _suggest(_resource(server.url))
    assert (s.source, s.body, s.answer) == (LLM, GOOD, GOOD)
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {SECRET}"
    assert request["json"]["model"] == "llama3.1:8b"
    prompt = json.loads(s.prompt)
    assert prompt == request["json"]["messages"]
    assert BODY in prompt[1]["content"] and "[2026-02-21] us (Rechnung): Wir prüfen das." in prompt[1]["content"]
    assert SECRET not in s.prompt and SECRET not in s.note


@pytest.mark.parametrize("answer, why", [
    (GOOD.replace("INV/2026/00013", "die zweite Rechnung"), "invoice number(s) missing: INV/2026/00013"),
    (GOOD.replace("2.000,00 €", "zweitausend Euro"), "amount(s) missing: 2.000,00"),
    (GOOD + "Bei Zahlung bis Freitag gewähren wir 50 € Rabatt.", "amount(s) not in the template: 50"),
    (GOOD + "Zzgl. Gebühren von 12,50.", "amount(s) not in the template: 12,50"),
    ("   ", "empty answer"),
])
def test_a_wrong_answer_leaves_the_template(answer, why):
    with StandIn(answer) as server:
        s = _suggest(_resource(server.url))
    assert (s.source, s.body) == (TEMPLATE, BODY)
    assert s.note == f"template: suggestion rejected, {why}" and s.answer == answer and s.prompt


@pytest.mark.parametrize("reply, why", [
    (500, "HTTP 500 from http://127.0.0.1:"), ("RAW:<html>busy</html>", "not a chat completion"),
    ("RAW:" + json.dumps({"choices": []}), "not a chat completion"),
])
def test_an_error_leaves_the_template(reply, why):
    with StandIn(reply) as server:
        s = _suggest(_resource(server.url))
    assert (s.source, s.body, s.answer) == (TEMPLATE, BODY, None)
    assert s.note.startswith("template: suggester failed: ") and why in s.note and SECRET not in s.note


def test_a_hanging_endpoint_times_out_and_is_not_asked_again():
    with StandIn(HANG) as server:
        suggester = _resource(server.url, timeout_seconds=0.5)
        started = time.monotonic()
        first = _suggest(suggester)
        elapsed = time.monotonic() - started
        second = _suggest(suggester)
        assert len(server.requests) == 1  # the second draft did not wait for it again
    assert (first.source, first.body) == (TEMPLATE, BODY)
    assert first.note == "template: suggester failed: no answer within 0.5 s"
    assert 0.5 <= elapsed < 5
    assert second.source == TEMPLATE and "failed earlier in this run (no answer within 0.5 s)" in second.note


def test_unreachable_or_unconfigured():
    with StandIn(GOOD) as server:
        url = server.url
    s = _suggest(_resource(url))  # the server is gone
    assert s.source == TEMPLATE and "cannot reach" in s.note
    none = LlmSuggesterResource().get_suggester().suggest(
        language="en", subject="x", body=BODY, invoice_numbers=NUMBERS, amounts=AMOUNTS, messages=[])
    assert (none.source, none.prompt) == (TEMPLATE, None) and "no suggester configured" in none.note
