"""What `make demo` prints: rows loaded against the sandbox, the reconciliation, the Slack alert."""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import date

from dunning_pipeline import money
from dunning_pipeline.sandbox.data import SandboxData, open_receivables
from dunning_pipeline.warehouse.store import Warehouse


def _table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  " + "  ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def source_counts(data: SandboxData) -> dict[str, int]:
    """What the sandbox holds, counted the way each extract defines its scope."""
    customer_moves = [m for m in data.moves if m["move_type"] in ("out_invoice", "out_refund")]
    end_users = {u["id"] for u in data.zendesk_users if u.get("role") == "end-user"}
    commented = [t for t in data.zendesk_tickets
                 if t["status"] != "deleted" and t.get("requester_id") in end_users]
    return {
        "odoo_invoices": len(customer_moves),
        "odoo_customers": len(data.partners),
        "zendesk_tickets": len(data.zendesk_tickets),
        "zendesk_users": len(data.zendesk_users),
        "zendesk_comments": sum(len(data.zendesk_comments.get(t["id"], [])) for t in commented),
    }


def print_loaded(wh: Warehouse, data: SandboxData) -> dict[str, int]:
    expected = source_counts(data)
    rows, loaded = [], {}
    for table in [*expected, "data_quality_quarantine", "receivables", "customer_communications",
                  "invoice_aging", "dunning_history"]:
        n = wh.count(table) if table in wh.metadata.tables else 0
        loaded[table] = n
        src = expected.get(table)
        verdict = "" if src is None else ("ok" if src == n else "MISMATCH")
        rows.append((table, "" if src is None else src, n, verdict))
    print("\nRows per table:")
    print(_table(rows, ("table", "in sandbox", "in warehouse", "")))
    return loaded


def print_reconciliation(wh: Warehouse, data: SandboxData, as_of: date) -> bool:
    """Open amounts per currency: the sandbox's open receivables against the aging table."""
    source: dict[str, int] = defaultdict(int)
    for move in open_receivables(data):
        units = money.to_units(move["amount_residual"])
        source[data.currency_code(move["currency_id"][0])] += -units if move["move_type"] == "out_refund" else units
    aging = wh.read("invoice_aging", columns=["currency", "amount_residual"])
    got = aging.groupby("currency")["amount_residual"].sum().to_dict() if len(aging) else {}
    rows, ok = [], True
    for cur in sorted(set(source) | set(got)):
        same = source.get(cur, 0) == got.get(cur, 0)
        ok = ok and same
        rows.append((cur, money.format_amount(source.get(cur, 0), cur, with_code=False),
                     money.format_amount(int(got.get(cur, 0)), cur, with_code=False),
                     "ok" if same else "MISMATCH"))
    print(f"\nOpen receivables as of {as_of}, per invoice currency (credit notes negative):")
    print(_table(rows, ("currency", "sandbox", "invoice_aging", "")))
    return ok


def print_alert(messages: list[dict]) -> None:
    """The Slack messages as an accountant would read them (fallback text plus block text)."""
    if not messages:
        print("  (no message was posted)")
        return
    for i, msg in enumerate(messages, 1):
        print(f"\n  --- Slack message {i}/{len(messages)} to {msg.get('channel')} (ts {msg.get('ts')}) ---")
        for block in msg.get("blocks") or []:
            text = html.unescape(_block_text(block))  # Slack shows &amp; as &
            if text:
                print("  " + text.replace("\n", "\n  "))
        if not msg.get("blocks"):
            print("  " + str(msg.get("text", "")))


def _block_text(block: dict) -> str:
    kind = block.get("type")
    if kind == "header":
        return f"# {block['text']['text']}"
    if kind == "divider":
        return "-" * 60
    if kind == "section":
        parts = [block.get("text", {}).get("text", "")]
        parts += [f.get("text", "") for f in block.get("fields") or []]
        return "\n".join(p for p in parts if p)
    if kind == "context":
        return "  ".join(e.get("text", "") for e in block.get("elements", []) if isinstance(e, dict))
    return ""
