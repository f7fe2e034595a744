"""The weekly digest of dunning stage changes, rendered as Slack Block Kit messages.

Pure: a frame of `dunning_history` rows in, a list of messages (fallback text + block dicts)
out; no Dagster, no I/O, no clock. The blocks are built with slack_sdk's block models, whose
`to_dict()` validates Slack's limits, and the packing below keeps every message within them:
at most 50 blocks, 3,000 characters per section text, 150 per header, and a cumulative text
budget (Slack rejects messages of about 12,000 characters with `msg_blocks_too_long`).
A long week becomes several messages (posted as a thread); nothing is cut silently.

What an accountant sees per invoice is its state at the end of the period: the last history
row of the invoice decides its category, the first row's `from_stage` says where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from dunning_pipeline import money

CLOSED = "closed"
RESOLVED_REASONS = ("paid", "credited", "cancelled")
HOLD_REASON = "hold"
RELEASED_REASON = "released"


@dataclass(frozen=True)
class Stage:
    """A dunning stage as the digest shows it. `overdue` is False for stages before the due date;
    a stage whose action is not an email is one an accountant must act on."""

    name: str
    label: str
    action: str
    todo: str
    overdue: bool = True

    @property
    def needs_action(self) -> bool:
        return self.action != "email"


# The default policy's stages, lowest first (the engine's default_policy.yaml has the same order).
DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("pre_due", "Pre-due", "email", "friendly email before the due date", overdue=False),
    Stage("reminder_1", "Reminder 1", "email", "reminder email"),
    Stage("reminder_2", "Reminder 2", "email", "second reminder email"),
    Stage("call", "Call", "call", "phone the customer"),
    Stage("final_notice", "Final notice", "letter",
          "send the final notice letter (warns of suspension or legal action)"),
    Stage("collection", "Collection", "agency", "hand to the collection agency or suspend service"),
)


# What a person does for a stage's action (stages of a custom policy get these).
ACTION_TODO = {
    "email": "reminder email",
    "call": "phone the customer",
    "letter": "send the letter",
    "suspend": "suspend service",
    "agency": "hand to the collection agency",
}


def stages_from(ladder: Iterable[tuple[str, int, str]]) -> tuple[Stage, ...]:
    """Stages of a policy ladder, given as (name, days relative to due date, action), lowest
    first: the default stages keep their wording, others are described by their action."""
    known = {s.name: s for s in DEFAULT_STAGES}
    out = []
    for name, days, action in ladder:
        base = known.get(name)
        if base is not None and base.action == action:
            out.append(Stage(name, base.label, action, base.todo, overdue=days > 0))
        else:
            out.append(Stage(name, name.replace("_", " ").capitalize(), action,
                             ACTION_TODO.get(action, action), overdue=days > 0))
    return tuple(out)


@dataclass(frozen=True)
class Limits:
    """Slack's limits, and how many messages one alert may take before it says what it left out."""

    blocks_per_message: int = 50
    section_chars: int = 3000
    header_chars: int = 150
    # Sum of the text of all blocks of one message; Slack's undocumented cap is near 12,000.
    message_chars: int = 10_000
    max_messages: int = 20


@dataclass(frozen=True)
class Links:
    """Where invoice numbers and ticket ids link to; without a base URL they are plain text."""

    odoo_url: str | None = None
    zendesk_url: str | None = None
    invoice_path: str = "/odoo/action-account.action_move_out_invoice_type/{invoice_id}"

    def invoice(self, invoice_id: int) -> str | None:
        if not self.odoo_url:
            return None
        return self.odoo_url.rstrip("/") + self.invoice_path.format(invoice_id=int(invoice_id))

    def ticket(self, ticket_id: int) -> str | None:
        if not self.zendesk_url:
            return None
        return f"{self.zendesk_url.rstrip('/')}/agent/tickets/{int(ticket_id)}"


@dataclass(frozen=True)
class Period:
    """The history an alert covers: `as_of_date` in (start - 1 day, end], plus `late_rows` rows
    dated earlier that were recorded after the previous alert. `start` None: from the beginning."""

    end: date
    start: date | None = None
    late_rows: int = 0

    def describe(self) -> str:
        if self.start is None:
            return f"up to {self.end.isoformat()}"
        if self.start == self.end:
            return self.end.isoformat()
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


@dataclass
class AlertMessage:
    """One chat.postMessage payload: `text` is the plain-text fallback and notification."""

    text: str
    blocks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "blocks": self.blocks}


# -- escaping and formatting ----------------------------------------------------------------------
def escape(text: object) -> str:
    """User data for mrkdwn: Slack's three control characters as HTML entities."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str | None, label: str) -> str:
    """`<url|label>` with an escaped label, or the escaped label alone when there is no URL."""
    if not url:
        return escape(label)
    # A '|' or '>' would end the URL part early; '&' is sent as an entity, as Slack expects.
    safe_url = url.replace("&", "&amp;").replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe_url}|{escape(label)}>"


def _clip(text: str, limit: int) -> str:
    """A display name cut to `limit` characters, visibly (an ellipsis), so one row fits a block."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _amounts(units_by_currency: Mapping[str, int]) -> str:
    if not units_by_currency:
        return "no amount"
    return " + ".join(
        money.format_amount(units, cur or None)
        for cur, units in sorted(units_by_currency.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _days(n: int | None) -> list[str]:
    if n is None:
        return []
    if n < 0:
        return [f"due in {-n} d"]
    if n == 0:
        return ["due today"]
    return [f"{n} d overdue"]


# The engine's hold reasons (dunning.holds.PRIORITY), as an accountant reads them.
HOLD_LABELS = {
    "dispute": "disputed",
    "promise": "payment promised",
    "exclusion": "excluded by hand",
    "in_payment": "payment on its way",
    "net_credit": "covered by credit notes",
}


def _hold_label(row) -> str:
    reason = row.hold_reason if isinstance(row.hold_reason, str) and row.hold_reason else "hold"
    label = HOLD_LABELS.get(reason, reason.replace("_", " "))
    until = _as_date(getattr(row, "hold_until", None))
    return escape(f"{label} until {until.isoformat()}" if until else label)


def _as_date(value) -> date | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, datetime):  # pd.Timestamp too
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def _int_or_none(value) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


# -- classification -----------------------------------------------------------------------------
SECTION_ORDER = ("action", "escalated", "newly_overdue", "on_hold", "resolved", "other")
SECTION_TITLES = {
    "action": ":rotating_light: *Needs action now*",
    "escalated": ":arrow_up: *Escalated*",
    "newly_overdue": ":hourglass_flowing_sand: *Newly overdue*",
    "on_hold": ":double_vertical_bar: *On hold*",
    "resolved": ":white_check_mark: *Resolved*",
    "other": ":information_source: *Other changes*",
}
SECTION_NAMES = {
    "action": "Needs action now",
    "escalated": "Escalated",
    "newly_overdue": "Newly overdue",
    "on_hold": "On hold",
    "resolved": "Resolved",
    "other": "Other changes",
}
# Among a customer's open invoices, the most urgent category decides where its one line goes.
_DUNNING_PRIORITY = {"action": 0, "escalated": 1, "newly_overdue": 2, "other": 3}


def invoice_states(history: pd.DataFrame, stages: Sequence[Stage] = DEFAULT_STAGES) -> pd.DataFrame:
    """One row per invoice: its last history row of the period, where it entered the period
    (`entry_stage`), its ticket, the stages it jumped, and its digest `category`."""
    if history.empty:
        return history.assign(entry_stage=[], category=[], jumped=[])
    order = [c for c in ("as_of_date", "id") if c in history.columns]
    h = history.sort_values(order, kind="stable") if order else history
    grouped = h.groupby("invoice_id", sort=False)
    last = grouped.tail(1).set_index("invoice_id")
    first = grouped.head(1).set_index("invoice_id")
    out = last.copy()
    out["entry_stage"] = first["from_stage"]
    out["jumped"] = grouped["stages_skipped"].sum(min_count=1) if "stages_skipped" in h else pd.NA
    tickets = h[h["ticket_id"].notna()].groupby("invoice_id", sort=False)["ticket_id"].last()
    out["ticket_id"] = tickets.reindex(out.index)
    # A closed invoice shows the amount it was closed at (the engine may record 0 on closure);
    # so does a hold whose residual is 0 (a payment on its way).
    open_amounts = h[h["amount_residual_company"].fillna(0) != 0]
    last_open = open_amounts.groupby("invoice_id", sort=False)["amount_residual_company"].last()
    closed_amount = last_open.reindex(out.index)
    if "prior_amount_residual_company" in out.columns:
        closed_amount = closed_amount.fillna(out["prior_amount_residual_company"])
    out["closed_amount_company"] = closed_amount.fillna(out["amount_residual_company"])

    # Dictionary lookups (hash joins), not Python per row: this runs over every changed invoice.
    ranks = {s.name: i for i, s in enumerate(stages)}
    acts = {s.name: s.needs_action for s in stages}
    dues = {s.name: s.overdue for s in stages}
    to_stage, entry_stage = out["to_stage"].astype(object), out["entry_stage"].astype(object)
    rank = to_stage.map(ranks).fillna(-1).astype("int64")
    entry_rank = entry_stage.map(ranks).fillna(-1).astype("int64")
    needs_action = to_stage.map(acts).fillna(False).astype(bool)
    if "action" in out.columns:  # the engine records each row's action (custom policies too)
        needs_action = needs_action.where(out["action"].isna(), out["action"].ne("email")).astype(bool)
    if "manual_only" in out.columns:  # manual-only policies leave even emails to a person
        needs_action = needs_action | out["manual_only"].fillna(False).astype(bool)
    overdue = to_stage.map(dues).fillna(False).astype(bool)
    entry_overdue = entry_stage.map(dues).fillna(False).astype(bool)

    reason = out["reason"]
    resolved = reason.isin(RESOLVED_REASONS) | out["to_stage"].eq(CLOSED)
    hold = ~resolved & reason.eq(HOLD_REASON)
    up = rank > entry_rank
    action = ~resolved & ~hold & needs_action & (up | reason.eq(RELEASED_REASON))
    newly = ~resolved & ~hold & ~action & up & overdue & ~entry_overdue
    escalated = ~resolved & ~hold & ~action & ~newly & up & entry_overdue
    category = pd.Series("other", index=out.index, dtype=object)
    for mask, name in ((resolved, "resolved"), (hold, "on_hold"), (action, "action"),
                       (newly, "newly_overdue"), (escalated, "escalated")):
        category[mask.to_numpy(dtype=bool)] = name
    out["category"] = category
    out["stage_rank"] = rank
    return out.reset_index()


# -- lines --------------------------------------------------------------------------------------
@dataclass
class Line:
    """One customer in one section: a head (who, how much, what to do) and per-invoice items."""

    section: str
    customer_id: int
    name: str
    head: str
    items: list[str]
    sort_amount: int


def _stage_label(name: str | None, stages: Mapping[str, Stage]) -> str:
    if name is None or (isinstance(name, float) and pd.isna(name)):
        return "none"
    if name == CLOSED:
        return "Closed"
    return stages[name].label if name in stages else str(name)


def _invoice_item(row, links: Links, stages: Mapping[str, Stage], section: str, period_end: date) -> str:
    number = _clip(str(row.invoice_number or f"id {row.invoice_id}"), 60)
    label = link(links.invoice(row.invoice_id), number)
    due = _as_date(row.invoice_date_due)
    days = (period_end - due).days if due is not None else _int_or_none(row.days_overdue)
    if section == "resolved":
        amount = money.format_amount(int(row.closed_amount_company or 0), row.company_currency or None)
        return f"{label} ({escape(row.reason)} {_as_date(row.as_of_date).isoformat()}, {amount})"
    residual = int(row.amount_residual_company or 0)
    amount = money.format_amount(residual, row.company_currency or None)
    if section == "on_hold":
        details = [_hold_label(row), f"at {_stage_label(row.to_stage, stages)}"]
        if residual == 0:  # e.g. paid, not yet reconciled: nothing owed
            known = row.closed_amount_company
            amount = (f"was {money.format_amount(int(known), row.company_currency or None)}"
                      if known is not None and not pd.isna(known) and int(known) != 0 else "")
    else:
        entry = row.entry_stage
        if entry is None or (isinstance(entry, float) and pd.isna(entry)):
            details = [f"entered {_stage_label(row.to_stage, stages)}"]
        else:
            details = [f"{_stage_label(entry, stages)} → {_stage_label(row.to_stage, stages)}"]
        if row.reason != "days_overdue":
            details.append(escape(str(row.reason).replace("_", " ")))
        jumped = _int_or_none(row.jumped)
        if jumped:
            details.append(f"skipped {jumped} stage{'s' if jumped != 1 else ''}")
    return f"{label} ({', '.join(details + _days(days) + ([amount] if amount else []))})"


def _todo(row, stage: Stage | None) -> str:
    action = getattr(row, "action", None)
    if not isinstance(action, str) or not action:
        action = stage.action if stage is not None else None
    todo = stage.todo if stage is not None and stage.action == action else ACTION_TODO.get(action, action or "act")
    manual = getattr(row, "manual_only", None)
    if manual is not None and not pd.isna(manual) and bool(manual):
        todo += " (by hand: manual-only policy)"
    return todo


_LINE_COLUMNS = ("invoice_id", "invoice_number", "customer_id", "customer_name", "company_currency",
                 "_amt", "amount_residual_company", "closed_amount_company", "reason", "to_stage",
                 "entry_stage", "stage_rank", "invoice_date_due", "days_overdue", "as_of_date",
                 "hold_reason", "hold_until", "jumped", "ticket_id", "action", "manual_only")


class _Records:
    """Rows as plain objects, converted a chunk at a time as lines are rendered (in row order):
    only what is shown pays, and pandas row access is far slower than attribute reads."""

    CHUNK = 2048

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        self._present = [c for c in _LINE_COLUMNS if c in frame.columns]
        self._blank = dict.fromkeys(c for c in _LINE_COLUMNS if c not in frame.columns)
        self._start, self._cols = -1, {}

    def _row(self, i: int) -> SimpleNamespace:
        start = i - i % self.CHUNK
        if start != self._start:
            part = self._frame.iloc[start:start + self.CHUNK]
            self._start, self._cols = start, {c: part[c].to_numpy(dtype=object) for c in self._present}
        j = i - start
        return SimpleNamespace(**self._blank, **{c: _none(v[j]) for c, v in self._cols.items()})

    def rows(self, start: int, stop: int) -> list[SimpleNamespace]:
        return [self._row(i) for i in range(start, stop)]


def _none(value):
    """Missing values of any flavour (NaN, NaT, pd.NA) as None."""
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # list-like values are not missing
        return value


def _customer_line(section: str, rows: list[SimpleNamespace], links: Links, stages: Mapping[str, Stage],
                   period_end: date, last_contact: Mapping[int, object] | None) -> Line:
    """One line from a customer's invoices of one section, biggest invoice first."""
    rows = sorted(rows, key=lambda r: (-int(r._amt), str(r.invoice_number or "")))
    first = rows[0]
    name = _clip(str(first.customer_name or f"customer {first.customer_id}"), 150)
    per_cur: dict[str, int] = {}
    for r in rows:
        cur = r.company_currency or ""
        per_cur[cur] = per_cur.get(cur, 0) + int(r._amt)
    parts = [f"*{escape(name)}*", f"*{_amounts(per_cur)}*"]
    if section == "resolved":
        parts.append(", ".join(sorted({escape(r.reason) for r in rows})))
    else:
        top = max(rows, key=lambda r: int(r.stage_rank))  # the first of the highest stage
        stage = stages.get(top.to_stage)
        label = _stage_label(top.to_stage, stages)
        if section == "on_hold":
            parts.append(f"on hold at {label}")
        elif section == "action":
            parts.append(f"{label}: {escape(_todo(top, stage))}")
        else:
            parts.append(label)
        days = [(period_end - _as_date(r.invoice_date_due)).days for r in rows if r.invoice_date_due is not None]
        if not days:
            days = [int(r.days_overdue) for r in rows if r.days_overdue is not None]
        if days and max(days) > 0:
            parts.append(f"{max(days)} days overdue")
    if last_contact is not None and section != "resolved":
        contact = _as_date(last_contact.get(int(first.customer_id)))
        parts.append(f"last contact {contact.isoformat()}" if contact else "no contact on record")
    items = [_invoice_item(r, links, stages, section, period_end) for r in rows]
    tickets = sorted({int(r.ticket_id) for r in rows if r.ticket_id is not None})
    items += [f"ticket {link(links.ticket(t), f'#{t}')}" for t in tickets]
    return Line(section, int(first.customer_id), name, " · ".join(parts), items,
                sum(per_cur.values()))


def line_groups(states: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where each invoice is shown, vectorised: `states` re-ordered so that each customer line
    is a contiguous run, and one row per line in display order
    (section order, then biggest customer amount first) with its `start`/`stop` rows.

    A customer's changed open invoices make one line in the most urgent section among them;
    its held and its resolved invoices make one line each in those sections."""
    states = states.assign(line_section=states["category"])
    dunning = states["category"].isin(list(_DUNNING_PRIORITY))
    if dunning.any():
        urgency = states.loc[dunning, "category"].map(_DUNNING_PRIORITY)
        best = urgency.groupby(states.loc[dunning, "customer_id"]).transform("min")
        states.loc[dunning, "line_section"] = best.map({v: k for k, v in _DUNNING_PRIORITY.items()})
    amount = states["amount_residual_company"].where(
        states["category"] != "resolved", states["closed_amount_company"])
    states["_amt"] = pd.to_numeric(amount).fillna(0).astype("int64")
    key = ["line_section", "customer_id"]
    lines = (states.groupby(key, sort=False)
             .agg(total=("_amt", "sum"), name=("customer_name", "first"), invoices=("_amt", "size"))
             .reset_index())
    lines["order"] = lines["line_section"].map(SECTION_ORDER.index)
    lines["name_key"] = lines["name"].fillna("").astype(str).str.lower()
    lines = lines.sort_values(["order", "total", "name_key", "customer_id"],
                              ascending=[True, False, True, True], kind="stable").reset_index(drop=True)
    lines["line_no"] = np.arange(len(lines))
    states = states.merge(lines[key + ["line_no"]], on=key, how="left")
    # Only grouped here; each line sorts its own invoices when (and if) it is rendered.
    states = states.sort_values("line_no", kind="stable").reset_index(drop=True)
    bounds = np.searchsorted(states["line_no"].to_numpy(), np.arange(len(lines) + 1))
    lines["start"], lines["stop"] = bounds[:-1], bounds[1:]
    return states, lines


# -- the summary at the top ---------------------------------------------------------------------
def _stage_totals(states: pd.DataFrame, stages: Sequence[Stage]) -> list[tuple[str, dict[str, int]]]:
    """Amount per stage (company currency) of the changed invoices still open at the period end."""
    open_ = states[states["category"] != "resolved"]
    sums = (open_.assign(_cur=open_["company_currency"].fillna(""))
            .groupby(["to_stage", "_cur"])["amount_residual_company"].sum())
    by_stage: dict[str, dict[str, int]] = {}
    for (stage, cur), units in sums.items():
        by_stage.setdefault(stage, {})[cur] = int(units)
    known = [s.name for s in stages]
    names = {s.name: s for s in stages}
    order = known + sorted(set(by_stage) - set(known))
    return [(_stage_label(name, names), by_stage[name]) for name in order if name in by_stage]


# -- packing into blocks and messages -----------------------------------------------------------
def _line_pieces(line: Line, limit: int) -> list[str]:
    """The line as text pieces each within `limit`; a customer with very many invoices
    continues in the next piece under its name."""
    whole = line.head + "\n" + " · ".join(line.items)
    if len(whole) <= limit:
        return [whole]
    pieces, current = [], line.head + "\n"
    cont = f"↳ *{escape(line.name)}* (continued)\n"
    body = ""
    for item in line.items:
        candidate = item if not body else body + " · " + item
        if len(current) + len(candidate) <= limit:
            body = candidate
            continue
        pieces.append(current + body)
        current, body = cont, item
    pieces.append(current + body)
    return pieces


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text))


class _Pager:
    """Blocks into messages as lines arrive: at most `blocks_per_message - 1` blocks (one is kept
    for the part footer) and `message_chars` characters each, a section cut by a message
    boundary repeats its title, and a section's title never ends a message. On the last message
    the cap allows, room is kept for the note that says what did not fit."""

    NOTE_CHARS = 600

    def __init__(self, limits: Limits, intro: list[tuple[object, int]]):
        self.limits = limits
        self.pages: list[list[tuple[object, int]]] = [list(intro)]
        self.full = False
        self.section: str | None = None
        self._heading: list[tuple[object, int]] = []  # divider + title, placed with the first text
        self._text = ""
        self._done_in_text: list[str] = []  # sections of lines whose last piece is in _text
        self.shown = {k: 0 for k in SECTION_ORDER}

    def _room(self) -> tuple[int, int]:
        blocks, chars = self.limits.blocks_per_message - 1, self.limits.message_chars - 200
        if len(self.pages) == self.limits.max_messages:
            blocks, chars = blocks - 1, chars - self.NOTE_CHARS
        return blocks, chars

    def _place(self, group: list[tuple[object, int]]) -> bool:
        page = self.pages[-1]
        max_blocks, max_chars = self._room()
        if (len(page) + len(group) <= max_blocks
                and sum(c for _b, c in page) + sum(c for _b, c in group) <= max_chars):
            page.extend(group)
            return True
        if len(self.pages) >= self.limits.max_messages:
            self.full = True
            return False
        if not isinstance(group[0][0], DividerBlock) and self.section is not None:
            title = f"{SECTION_TITLES[self.section]} (continued)"
            group = [(_section(title), len(title))] + group
        elif isinstance(group[0][0], DividerBlock):
            group = group[1:]  # no divider at the top of a message
        self.pages.append(list(group))
        return True

    def _flush(self) -> bool:
        if not self._text:
            return True
        group = self._heading + [(_section(self._text), len(self._text))]
        if not self._place(group):
            return False
        self._heading = []
        for section in self._done_in_text:
            self.shown[section] += 1
        self._text, self._done_in_text = "", []
        return True

    def begin_section(self, section: str, count: int) -> bool:
        if not self._flush():
            return False
        self.section = section
        title = f"{SECTION_TITLES[section]} · {count} customer{'s' if count != 1 else ''}"
        self._heading = [(DividerBlock(), 0), (_section(title), len(title))]
        return True

    def add(self, line: Line) -> bool:
        """Add a customer line; False once the alert is full (the line is not shown in full)."""
        pieces = _line_pieces(line, self.limits.section_chars)
        for i, piece in enumerate(pieces):
            if self._text and len(self._text) + 2 + len(piece) <= self.limits.section_chars:
                self._text += "\n\n" + piece
            else:
                if not self._flush():
                    return False
                self._text = piece
            if i == len(pieces) - 1:
                self._done_in_text.append(line.section)
        return True

    def finish(self) -> bool:
        return self._flush()


def _truncation_note(omitted: dict[str, int], limits: Limits) -> tuple[object, int]:
    total = sum(omitted.values())
    parts = ", ".join(f"{SECTION_NAMES[s]}: {n}" for s, n in omitted.items() if n)
    text = (f":warning: *{total} more customer line{'s' if total != 1 else ''} not shown in full* "
            f"({parts}): this alert is capped at {limits.max_messages} messages "
            f"(SLACK_MAX_MESSAGES). Every change is in the `dunning_history` table.")
    return _section(text), len(text)


def render_digest(
    history: pd.DataFrame,
    period: Period,
    *,
    links: Links = Links(),
    stages: Sequence[Stage] = DEFAULT_STAGES,
    last_contact: Mapping[int, object] | None = None,
    limits: Limits = Limits(),
) -> list[AlertMessage]:
    """The messages of one alert. `history`: the `dunning_history` rows of the period as
    `Warehouse.read` returns them. `last_contact`: customer id -> date of the last contact, or
    None when not known at all (then the lines do not mention it). Lines are rendered only as
    far as the alert has room, so a huge first alert costs what fits, not what exists."""
    title = f"Dunning changes {period.describe()}"
    if history.empty:
        text = f"No dunning stage changes {_period_phrase(period)}."
        return [AlertMessage(text, [_section(text).to_dict()])]

    states = invoice_states(history, stages)
    ordered, lines = line_groups(states)
    per_section = lines.groupby("line_section").size().to_dict()
    n_invoices = int(states["invoice_id"].nunique())
    n_customers = int(states["customer_id"].nunique())
    summary = (f"*{n_invoices}* invoice{'s' if n_invoices != 1 else ''} of "
               f"*{n_customers}* customer{'s' if n_customers != 1 else ''} changed stage")
    counts = [f"{SECTION_NAMES[s]}: {per_section[s]}" for s in SECTION_ORDER if per_section.get(s)]
    summary += ".\nCustomers per section: " + " · ".join(counts)
    if period.late_rows:
        summary += (f"\nIncludes {period.late_rows} change{'s' if period.late_rows != 1 else ''} "
                    f"dated before {period.start.isoformat() if period.start else period.end.isoformat()}"
                    f" that {'was' if period.late_rows == 1 else 'were'} recorded after the previous alert.")
    intro: list[tuple[object, int]] = [
        (HeaderBlock(text=PlainTextObject(text=_clip(title, limits.header_chars))), len(title)),
        (_section(summary), len(summary)),
    ]
    totals = _stage_totals(states, stages)
    for start in range(0, len(totals), 10):  # at most 10 fields per section
        fields = [MarkdownTextObject(text=f"*{label}*\n{_amounts(units)}")
                  for label, units in totals[start:start + 10]]
        intro.append((SectionBlock(fields=fields), sum(len(f.text) for f in fields)))
    note = "Open amount per stage in company currency, for the invoices that changed."
    intro.append((ContextBlock(elements=[MarkdownTextObject(text=note)]), len(note)))

    by_name = {s.name: s for s in stages}
    records = _Records(ordered)
    pager = _Pager(limits, intro)
    for section in SECTION_ORDER:
        rows_of = lines[lines["line_section"] == section]
        if rows_of.empty or not pager.begin_section(section, len(rows_of)):
            continue
        for start, stop in zip(rows_of["start"], rows_of["stop"]):
            line = _customer_line(section, records.rows(start, stop), links, by_name, period.end,
                                  last_contact)
            if not pager.add(line):
                break
        if pager.full:
            break
    pager.finish()
    pages = pager.pages
    if pager.full:
        omitted = {s: per_section.get(s, 0) - pager.shown[s] for s in SECTION_ORDER}
        pages[-1].append(_truncation_note(omitted, limits))

    fallback = (f"{title}: {n_invoices} invoices of {n_customers} customers changed stage; "
                + "; ".join(counts))
    n = len(pages)
    messages = []
    for i, page in enumerate(pages, start=1):
        blocks = [b for b, _chars in page]
        if n > 1:
            part = f"Part {i} of {n}" + (" · continued in the thread" if i == 1 else "")
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=part)]))
        text = fallback if i == 1 else f"{title} (part {i} of {n})"
        messages.append(AlertMessage(text, [b.to_dict() for b in blocks]))
    return messages


def _period_phrase(period: Period) -> str:
    if period.start is None:
        return f"up to {period.end.isoformat()}"
    if period.start == period.end:
        return f"on {period.end.isoformat()}"
    return f"from {period.start.isoformat()} to {period.end.isoformat()}"


# -- a markdown view for the Dagster UI ---------------------------------------------------------
def _mrkdwn_to_markdown(text: str) -> str:
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"[\2](\1)", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"**\1**", text)


def to_markdown(messages: Sequence[AlertMessage | dict]) -> str:
    """The messages as Markdown (run metadata shows what was, or would be, posted)."""
    out: list[str] = []
    for i, msg in enumerate(messages, start=1):
        blocks = msg.blocks if isinstance(msg, AlertMessage) else msg["blocks"]
        if len(messages) > 1:
            out.append(f"#### Message {i} of {len(messages)}")
        for block in blocks:
            kind = block.get("type")
            if kind == "header":
                out.append(f"### {block['text']['text']}")
            elif kind == "divider":
                out.append("---")
            elif kind == "context":
                out.append(" ".join(f"_{_mrkdwn_to_markdown(e.get('text', ''))}_" for e in block["elements"]))
            elif kind == "section":
                if block.get("text"):
                    out.append(_mrkdwn_to_markdown(block["text"]["text"]).replace("\n", "  \n"))
                for f in block.get("fields") or []:
                    out.append("- " + _mrkdwn_to_markdown(f["text"]).replace("\n", ": ", 1).replace("\n", ", "))
        out.append("")
    return "\n\n".join(out).strip() + "\n"
