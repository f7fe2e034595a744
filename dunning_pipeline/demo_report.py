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
    staff = {u["id"] for u in data.zendesk_users if u.get("role") in ("agent", "admin")}

    def names_someone_outside(t: dict) -> bool:  # a forwarded mail, people in CC
        source = ((t.get("via") or {}).get("source") or {}).get("from") or {}
        return bool(source.get("address") or t.get("email_cc_ids") or t.get("collaborator_ids"))

    # Customer correspondence: requested by a customer, or by our agent on a customer's behalf.
    commented = [t for t in data.zendesk_tickets if t["status"] != "deleted"
                 and (t.get("requester_id") not in staff or names_someone_outside(t))]
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


def print_checks(dagster_home, job_name: str) -> list[str]:
    """The data-quality checks of the job's latest run; returns the dunning assets it stopped."""
    import dagster as dg
    from dagster._core.storage.dagster_run import RunsFilter

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(filters=RunsFilter(job_name=job_name), limit=1)
        if not runs:
            return []
        run = runs[0]
        evaluations = [
            rec.event_log_entry.dagster_event.event_specific_data
            for rec in instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
            ).records
        ]
        materialized = {
            rec.event_log_entry.dagster_event.asset_key.to_user_string()
            for rec in instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
            ).records
        }
    per_asset: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    failures = []
    for ev in evaluations:
        asset = ev.asset_key.to_user_string()
        if ev.passed:
            per_asset[asset][0] += 1
        else:
            blocking = ev.severity == dg.AssetCheckSeverity.ERROR
            per_asset[asset][1 if blocking else 2] += 1
            failures.append((asset, ev.check_name, "ERROR" if blocking else "WARN",
                             (ev.description or "").replace("\n", " ")[:110]))
    print("\nData-quality checks (Great Expectations) of this run:")
    rows = [(a, p, e, w) for a, (p, e, w) in sorted(per_asset.items())]
    print(_table(rows, ("asset", "passed", "failed: blocking", "failed: warn")))
    for asset, check, sev, text in failures:
        print(f"  {sev:5} {asset}.{check}: {text}")
    dunning = ["receivables", "customer_communications", "invoice_aging", "dunning_history"]
    stopped = [a for a in dunning if a not in materialized]
    if stopped:
        print(f"  not materialized in this run: {', '.join(stopped)}")
    return stopped


def print_quarantine(wh: Warehouse) -> None:
    q = wh.read("data_quality_quarantine", columns=["asset", "record_id", "check_name", "field", "value"],
                order_by=["asset", "record_id"])
    print(f"\nQuarantined records (data_quality_quarantine, {len(q)} rows):")
    if len(q):
        rows = [tuple("" if (v is None or v != v) else str(v)[:40] for v in r)
                for r in q.itertuples(index=False, name=None)]
        print(_table(rows, ("asset", "record_id", "check", "field", "value")))


def print_aging(wh: Warehouse) -> None:
    """The AR aging report: open amounts per currency and bucket, and invoices per stage."""
    from dunning_pipeline.dunning.aging import bucket_totals
    from dunning_pipeline.dunning.policy import load_policy

    policy = load_policy()
    aging = wh.read("invoice_aging", columns=["currency", "aging_bucket", "stage", "amount_residual"])
    # Each instalment in the bucket of its own due date, as Odoo's Aged Receivable report does.
    instalments = wh.read("instalment_aging", columns=["currency", "aging_bucket", "amount_residual"])
    totals = bucket_totals(instalments, tuple(policy.all_bucket_labels()))
    buckets = [c for c in totals.columns if c not in ("currency", "total")]
    rows = [(r["currency"], *[money.format_amount(int(r[b]), r["currency"], with_code=False)
                              for b in [*buckets, "total"]]) for _, r in totals.iterrows()]
    print("\nAR aging (instalment_aging), open amount per invoice currency and bucket:")
    print(_table(rows, ("currency", *buckets, "total")))
    stages = aging["stage"].fillna("not yet due for dunning").value_counts()
    order = ["not yet due for dunning", "pre_due", "reminder_1", "reminder_2", "call", "final_notice",
             "collection"]
    ranked = sorted(stages.index, key=lambda n: (order.index(n) if n in order else len(order), n))
    print("  invoices per stage: " + ", ".join(f"{name} {stages[name]}" for name in ranked))


def print_drafts(wh: Warehouse, count: int = 2) -> None:
    """The customer timeline's size and a few reminder drafts (one in German when there is one)."""
    import pandas as pd

    timeline = wh.read("customer_timeline", columns=["customer_id", "kind"])
    drafts = wh.read("reminder_drafts")
    print(f"\n  customer_timeline: {len(timeline)} events ({int((timeline['kind'] == 'message').sum())}"
          f" messages, {int((timeline['kind'] == 'dunning').sum())} dunning events) for"
          f" {timeline['customer_id'].nunique()} customers")
    if drafts.empty:
        print("  reminder_drafts: no customer's stage calls for an email today")
        return
    by_lang = drafts["locale"].str.slice(0, 2).value_counts().sort_index()
    print(f"  reminder_drafts: {len(drafts)} drafts, never sent ("
          + ", ".join(f"{k}: {v}" for k, v in by_lang.items()) + "; text used: "
          + ", ".join(f"{k} {v}" for k, v in drafts["source"].value_counts().items()) + ")")
    german = drafts[drafts["locale"].str.startswith("de")].head(1)
    other = drafts[~drafts["locale"].str.startswith("de")].head(count - len(german))
    for d in pd.concat([german, other]).itertuples():
        print(f"\n  --- draft for {d.customer_name} ({d.locale}, stage {d.stage}, {d.source})"
              f" to {d.customer_email or '?'}")
        print(f"  Subject: {d.subject}")
        for line in d.body.rstrip("\n").split("\n"):
            print(f"  | {line}")


def print_instalments(wh: Warehouse) -> None:
    """An invoice of several instalments, aged by its oldest open one (not by invoice_date_due)."""
    import pandas as pd

    inst = wh.read("instalment_aging")
    aging = wh.read("invoice_aging", columns=["invoice_id", "invoice_number", "customer_name", "currency",
                                              "invoice_date_due", "due_date", "instalment_number",
                                              "instalments_total", "days_overdue", "stage", "hold_reason",
                                              "as_of_date"])
    terms = wh.read("odoo_invoices", columns=["id", "payment_term"]).set_index("id")["payment_term"]
    several = aging[aging["instalments_total"] > 1]
    print(f"\nInstalments (instalment_aging): {len(inst)} open instalments of {inst['invoice_id'].nunique()}"
          f" receivables; {len(several)} invoices have several instalments")
    # An instalment overdue while Odoo's due date (the last instalment's) is still ahead.
    hidden = several[(several["days_overdue"] > 0) & (several["invoice_date_due"] > several["as_of_date"])
                     & several["stage"].notna()]
    if hidden.empty:
        return
    row = hidden.sort_values(["hold_reason", "days_overdue"], ascending=[True, False], na_position="first").iloc[0]
    print(f"  {row['invoice_number']} ({row['customer_name']}), payment term {terms.get(row['invoice_id'])!s}:"
          f" Odoo's invoice_date_due {row['invoice_date_due'].date()} is its last instalment")
    for r in inst[inst["invoice_id"] == row["invoice_id"]].itertuples():
        print(f"    instalment {r.instalment_number}/{r.instalments_total}  due {r.date_maturity.date()}  "
              f"{r.days_overdue:>4} days overdue  {r.aging_bucket:<8} "
              f"{money.format_amount(int(r.amount_residual), r.currency)} open")
    print(f"    -> aged by instalment {row['instalment_number']}: {row['days_overdue']} days overdue,"
          f" stage {row['stage']}" + (f", on hold ({row['hold_reason']})" if pd.notna(row["hold_reason"]) else ""))


def print_ticket_holds(wh: Warehouse, data: SandboxData) -> None:
    """The sandbox's real-world ticket shapes and what the night made of each: customer, how the
    ticket was matched, and the hold on the invoice it is about."""
    scenarios = getattr(data, "zendesk_scenarios", {}) or {}
    if not scenarios:
        return
    aging = wh.read("invoice_aging", columns=["invoice_id", "invoice_number", "hold_reason", "hold_note"])
    aging = aging.set_index("invoice_id")
    comms = wh.read("customer_communications", columns=["ticket_id", "match_method"])
    method = comms.drop_duplicates("ticket_id").set_index("ticket_id")["match_method"]
    print("\nTickets as people write them (sandbox scenarios) and the holds they give:")
    rows = []
    for name, case in scenarios.items():
        inv = aging.loc[case["invoice_id"]] if case["invoice_id"] in aging.index else None
        hold = inv["hold_reason"] if inv is not None and isinstance(inv["hold_reason"], str) else "-"
        note = inv["hold_note"] if inv is not None and isinstance(inv["hold_note"], str) else ""
        rows.append((name, f"#{case['ticket_id']}", method.get(case["ticket_id"], "-"),
                     case.get("invoice_number") or "", hold, note[:60]))
    print(_table(rows, ("scenario", "ticket", "matched by", "invoice", "hold", "why")))


def check_workbench(warehouse_url: str, users_file: str, odoo_url: str | None) -> bool:
    """Start the workbench on the demo's warehouse, log in as the demo user and open the worklist
    (what `make demo` does when no one is at the terminal to use it), then stop it."""
    import re
    import socket
    import threading
    import time

    import requests
    import uvicorn

    from dunning_pipeline.workbench.__main__ import prepare_demo
    from dunning_pipeline.workbench.app import create_app

    cfg, password = prepare_demo(warehouse_url, users_file=users_file, odoo_url=odoo_url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning",
                                           proxy_headers=False, server_header=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        session = requests.Session()
        login = session.get(f"{base}/login", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        worklist = session.post(f"{base}/login", data={"csrf_token": token, "username": "demo",
                                                       "password": password}, timeout=10)
        ok = worklist.status_code == 200 and "Worklist" in worklist.text
        print(f"  the workbench answered at {base}: login as demo, worklist "
              + ("shown" if ok else f"NOT shown (HTTP {worklist.status_code})"))
        return ok
    finally:
        server.should_exit = True
        thread.join(timeout=10)
