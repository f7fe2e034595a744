"""The pluggable suggester: an OpenAI-compatible chat endpoint that personalises a draft's text.

Works with any server speaking `POST {base}/chat/completions` (a local Ollama or vLLM, or a
hosted one). The model gets the template's body and the customer's recent public conversation
(internal notes are never sent). Its answer is accepted only if it still contains every invoice
number and every amount of the template and no other number that looks like an amount;
otherwise, or on an error or a timeout, the template stands. Either way the draft records which
text was used and why, with the prompt and the answer, for audit. After a timeout or a
connection failure the endpoint is not asked again in the same run (one slow server must not
cost a minute per customer). No Dagster here; the key never appears in a note or an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import requests

TEMPLATE, LLM = "template", "llm"
MAX_MESSAGES = 10
MAX_MESSAGE_CHARS = 1500

# A number as people write amounts: 1.234,56  1,234.56  1 234,56  1’234.56  450  12.5
_NUMBER = re.compile(
    r"(?<![\w.,/’'\u00a0\u202f-])(\d{1,3}(?:[.,’'\u00a0\u202f ]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)(?![\w/]|[.,’']\d)")
_CURRENCY = re.compile(r"[€$£¥₣]|\b(?:EUR|USD|GBP|CHF|JPY|SEK|NOK|DKK|PLN|CZK|CAD|AUD|Fr)\b\.?")
_GAP = "\u00a0\u202f "


def _normal(token: str) -> str:
    return "".join(ch for ch in token if ch not in _GAP + "’'")


def amount_tokens(text: str) -> list[str]:
    """The numbers in `text` that look like amounts (normalised: no group spaces): those with
    two decimals (1.234,56) and those written next to a currency sign or code (40 €, EUR 40).
    Dates (21.02.2026), years, invoice numbers and day counts are not amounts."""
    found = []
    for m in _NUMBER.finditer(text):
        token = m.group(1)
        before, after = text[max(0, m.start() - 5):m.start()], text[m.end():m.end() + 5]
        two_decimals = re.search(r"[.,]\d{2}$", token) is not None
        near_currency = bool(_CURRENCY.search(before.rstrip(_GAP)[-4:]) or _CURRENCY.match(after.lstrip(_GAP)))
        if two_decimals or near_currency:
            found.append(_normal(token))
    return found


def check_answer(answer: str, invoice_numbers: list[str], amounts: list[str]) -> str | None:
    """Why an answer cannot replace the template (None: it can)."""
    if not answer or not answer.strip():
        return "empty answer"
    missing = [n for n in invoice_numbers if n not in answer]
    if missing:
        return f"invoice number(s) missing: {', '.join(missing)}"
    allowed = {t for a in amounts for t in amount_tokens(a)}
    found = amount_tokens(answer)
    lost = sorted(allowed - set(found))
    if lost:
        return f"amount(s) missing: {', '.join(lost)}"
    extra = sorted(set(found) - allowed)
    if extra:
        return f"amount(s) not in the template: {', '.join(extra)}"
    return None


def conversations(timeline, limit: int = MAX_MESSAGES) -> dict[int, list[dict]]:
    """Per customer of `timeline`, its last public messages (oldest first) as the model sees
    them. One stable sort of all the public messages orders each customer's as a sort of its own
    would."""
    msgs = timeline[(timeline["kind"] == "message") & (timeline["visibility"] == "public")]
    msgs = msgs.sort_values(["day", "at", "comment_id"], kind="stable").groupby("customer_id", sort=False).tail(limit)
    out: dict[int, list[dict]] = {}
    for customer_id, day, direction, subject, text in zip(
            msgs["customer_id"].tolist(), msgs["day"].tolist(), msgs["direction"].tolist(), msgs["subject"].tolist(),
            msgs["text"].tolist(), strict=True):
        out.setdefault(int(customer_id), []).append({
            "date": day.date().isoformat(), "from": "customer" if direction == "inbound" else "us",
            "subject": subject if isinstance(subject, str) else "", "text": (text or "")[:MAX_MESSAGE_CHARS]})
    return out


def build_prompt(language: str, subject: str, body: str, messages: list[dict]) -> list[dict]:
    system = (
        "You write payment reminder emails for an accounts receivable team. Rewrite the draft so it reads "
        "naturally and personally for this customer, taking the recent conversation into account where it is "
        f"relevant. Write in the draft's language ({language}). Keep every invoice number, amount and date exactly "
        "as written in the draft. Do not add amounts, discounts, deadlines or promises that are not in the draft. "
        "Answer with the email body only, without a subject line.")
    history = "\n".join(f"[{m['date']}] {m['from']} ({m['subject']}): {m['text']}" for m in messages) or "(none)"
    user = f"Subject: {subject}\n\nDraft:\n{body}\n\nRecent conversation, oldest first:\n{history}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class SuggesterError(RuntimeError):
    """The endpoint failed; `fatal` when it should not be asked again this run."""

    def __init__(self, message: str, *, fatal: bool):
        super().__init__(message)
        self.fatal = fatal


@dataclass
class ChatClient:
    """An OpenAI-compatible chat completions endpoint (base URL such as http://127.0.0.1:11434/v1)."""

    url: str
    model: str
    api_key: str | None = None
    timeout_seconds: float = 30.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"

    def complete(self, messages: list[dict]) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        payload = {"model": self.model, "messages": messages, "temperature": 0.2, "stream": False}
        try:
            resp = self.session.post(self.endpoint, json=payload, headers=headers,
                                     timeout=(self.timeout_seconds, self.timeout_seconds))
        except requests.Timeout:
            raise SuggesterError(f"no answer within {self.timeout_seconds:g} s", fatal=True) from None
        except requests.ConnectionError as exc:
            raise SuggesterError(f"cannot reach {self.endpoint}: {type(exc).__name__}", fatal=True) from None
        if resp.status_code != 200:
            raise SuggesterError(f"HTTP {resp.status_code} from {self.endpoint}", fatal=resp.status_code in (401, 403, 404))
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise SuggesterError("the answer is not a chat completion (choices[0].message.content)", fatal=False) from None
        if not isinstance(content, str):
            raise SuggesterError("the answer's content is not text", fatal=False)
        return content


@dataclass
class Suggestion:
    source: str  # template or llm
    note: str
    body: str
    prompt: str | None = None  # JSON of the messages sent
    answer: str | None = None
    model: str | None = None


class Suggester:
    """Personalises drafts through a ChatClient, or leaves the template when there is none."""

    def __init__(self, client: ChatClient | None):
        self.client = client
        self.broken: str | None = None  # why the endpoint is not asked again this run

    def suggest(self, *, language: str, subject: str, body: str, invoice_numbers: list[str], amounts: list[str],
                messages: list[dict]) -> Suggestion:
        if self.client is None:
            return Suggestion(TEMPLATE, "no suggester configured (DUNNING_LLM_URL, DUNNING_LLM_MODEL)", body)
        prompt = build_prompt(language, subject, body, messages)
        audit = {"prompt": json.dumps(prompt, ensure_ascii=False), "model": self.client.model}
        if self.broken:
            return Suggestion(TEMPLATE, f"template: suggester skipped, it failed earlier in this run ({self.broken})",
                              body, **audit)
        try:
            answer = self.client.complete(prompt)
        except SuggesterError as exc:
            if exc.fatal:
                self.broken = str(exc)
            return Suggestion(TEMPLATE, f"template: suggester failed: {exc}", body, **audit)
        problem = check_answer(answer, invoice_numbers, amounts)
        if problem:
            return Suggestion(TEMPLATE, f"template: suggestion rejected, {problem}", body, answer=answer, **audit)
        return Suggestion(LLM, "suggestion accepted: every invoice number and amount kept, no other amount",
                          answer.strip() + "\n", answer=answer, **audit)
