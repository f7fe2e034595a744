"""How fast the collections workbench answers on a big warehouse (issue 11: under 300 ms with
200,000 customers and a million open invoices, on PostgreSQL).

Fills a fresh PostgreSQL database (dropped afterwards) with synthetic but realistic rows of the
tables the workbench reads, created by the pipeline's own schema (`Warehouse.ensure_schema`, so
with the pipeline's indexes) and bulk-loaded by `Warehouse.append` (COPY): the aging snapshot,
the stage history, holds, the customer timeline, reminder drafts, instalments and a day's
workbench actions. Invoices per customer are skewed (most have a few, some hundreds). Then the
app runs in-process behind Starlette's TestClient (routing, login, SQL and templates all
counted; no network) and each page is requested `--requests` times; median, p95 and max are
reported as a markdown table.

    python -m benchmarks.workbench --customers 200000 --invoices 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
AS_OF = date(2026, 3, 2)
CHUNK = 250_000
# The default policy's ladder: (stage, days overdue from which it applies, action, tone).
LADDER = (("pre_due", -3, "email", "friendly"), ("reminder_1", 1, "email", "polite"),
          ("reminder_2", 8, "email", "firm"), ("call", 15, "call", "firm"),
          ("final_notice", 31, "letter", "formal"), ("collection", 45, "agency", "legal"))
SEGMENTS = np.array(["standard", "key_accounts", "public_sector", "small_business"])
COMPANIES = ((1, "EUR"), (2, "USD"), (3, "GBP"))
CURRENCIES = np.array(["EUR", "USD", "GBP", "CHF"])
HOLD_REASONS = np.array(["dispute", "payment_claimed", "promise", "in_payment", "exclusion", "blocked"])
BUCKETS = ((-10**6, "not_due"), (1, "1-30"), (31, "31-60"), (61, "61-90"), (91, "91+"))


def _day(days: np.ndarray) -> np.ndarray:
    return (np.datetime64(AS_OF, "D") + days.astype("timedelta64[D]")).astype("datetime64[s]")


def _customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    ids = np.arange(100_000, 100_000 + n, dtype=np.int64)
    return pd.DataFrame({
        "id": ids, "name": [f"Kunde {i:06d} GmbH" for i in range(n)],
        "email": [f"billing@kunde{i:06d}.example" for i in range(n)],
        "phone": [f"+49 30 {i:07d}" for i in range(n)], "vat": None,
        "lang": rng.choice(np.array(["de_DE", "en_US", "fr_FR"]), n), "country": "DE",
        "is_company": True, "parent_id": None, "commercial_partner_id": ids, "customer_rank": 1,
        "tags": "[]", "company_id": None, "active": True,
        "write_date": pd.Timestamp("2026-01-01"), "extracted_at": pd.Timestamp("2026-03-02 23:00"),
    })


def _invoice_customers(n_invoices: int, n_customers: int, rng: np.random.Generator) -> np.ndarray:
    """Customer index of each invoice: every customer has one, the rest skewed (a few big ones)."""
    base = np.arange(n_customers) % n_customers
    extra = n_invoices - min(n_invoices, n_customers)
    skewed = (n_customers * rng.random(extra) ** 2).astype(np.int64)
    idx = np.concatenate([base[:min(n_invoices, n_customers)], skewed])
    rng.shuffle(idx)
    return idx


def _aging(start: int, idx: np.ndarray, names: np.ndarray, segment: np.ndarray, company: np.ndarray,
           rng: np.random.Generator) -> pd.DataFrame:
    n = len(idx)
    ids = np.arange(start + 1, start + n + 1, dtype=np.int64)
    days = (rng.exponential(55, n) - 30).astype(np.int64)
    refund = rng.random(n) < 0.04
    stage_i = np.full(n, -1)
    for k, (_, from_days, _, _) in enumerate(LADDER):
        stage_i[days >= from_days] = k
    stages = np.array([s for s, *_ in LADDER] + [None], dtype=object)
    actions = np.array([a for _, _, a, _ in LADDER] + [None], dtype=object)
    tones = np.array([t for *_, t in LADDER] + [None], dtype=object)
    stage_i[refund] = -1
    held = (stage_i >= 0) & (rng.random(n) < 0.07)
    status = np.where(refund, "credit_note", np.where(stage_i < 0, "not_in_dunning",
                                                        np.where(held, "on_hold", "dunned")))
    inv_company = company[idx]
    company_cur = np.array([c for _, c in COMPANIES])[inv_company]
    currency = np.where(rng.random(n) < 0.85, company_cur, rng.choice(CURRENCIES, n))
    units = (rng.lognormal(11.5, 1.2, n).astype(np.int64) // 100) * 100 * np.where(refund, -1, 1)
    bucket = np.full(n, "not_due", dtype=object)
    for from_days, name in BUCKETS:
        bucket[days >= from_days] = name
    due = _day(-days)
    frame = pd.DataFrame({
        "invoice_id": ids, "invoice_number": [f"INV/2026/{i:07d}" for i in ids],
        "move_type": np.where(refund, "out_refund", "out_invoice"), "customer_id": idx + 100_000,
        "customer_name": names[idx], "segment": segment[idx], "policy": "default",
        "company_id": inv_company + 1, "currency": currency, "company_currency": company_cur,
        "receivable_status": "open", "amount_residual": units, "amount_residual_company": units,
        "net_residual_company": units, "invoice_date": _day(-days - 30), "invoice_date_due": due,
        "days_overdue": days, "aging_bucket": bucket, "due_date": due, "instalment_number": 1,
        "instalments_total": 1, "instalments_open": 1, "due_stage": stages[stage_i],
        "stage": stages[stage_i], "stage_rank": np.where(stage_i >= 0, stage_i + 1, 0),
        "action": actions[stage_i], "tone": tones[stage_i], "manual_only": False,
        "dunning_status": status,
        "hold_reason": np.where(held, rng.choice(HOLD_REASONS, n), None),
        "hold_since": np.where(held, _day(-rng.integers(0, 20, n)), np.datetime64("NaT")).astype("datetime64[s]"),
        "hold_until": pd.NaT, "hold_ticket_id": None, "hold_note": None,
        "customer_overdue_company": None, "customer_credit_company": None,
        "customer_net_overdue_company": None, "customer_stage": None,
        "customer_last_inbound_at": pd.NaT, "customer_last_outbound_at": pd.NaT,
        "as_of_date": pd.Timestamp(AS_OF), "run_id": "bench",
    })
    return frame


def _history(aging: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One to three stage changes per invoice in dunning."""
    staged = aging[aging["stage"].notna()]
    reps = rng.integers(1, 4, len(staged))
    h = staged.loc[staged.index.repeat(reps)].reset_index(drop=True)
    nth = np.concatenate([np.arange(r) for r in reps]) if len(reps) else np.array([], dtype=int)
    back = nth * 14 + rng.integers(0, 14, len(h))  # one change per invoice and day
    return pd.DataFrame({
        "invoice_id": h["invoice_id"], "invoice_number": h["invoice_number"], "move_type": h["move_type"],
        "customer_id": h["customer_id"], "customer_name": h["customer_name"], "company_id": h["company_id"],
        "currency": h["currency"], "company_currency": h["company_currency"], "from_stage": None,
        "to_stage": h["stage"], "as_of_date": _day(-back), "run_id": "bench", "reason": "overdue",
        "days_overdue": h["days_overdue"] - back, "amount_residual": h["amount_residual"],
        "amount_residual_company": h["amount_residual_company"], "action": h["action"],
    })


def _timeline(customer_ids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """About five messages and dunning events per customer."""
    reps = rng.integers(1, 10, len(customer_ids))
    cust = np.repeat(customer_ids, reps)
    seq = np.concatenate([np.arange(1, r + 1) for r in reps]) if len(reps) else np.array([], dtype=int)
    n = len(cust)
    at = pd.Timestamp(AS_OF) - pd.to_timedelta(rng.integers(0, 200 * 86400, n), unit="s")
    inbound = rng.random(n) < 0.5
    return pd.DataFrame({
        "customer_id": cust, "seq": seq, "day": at.normalize(), "at": at, "kind": "message",
        "event": np.where(inbound, "inbound", "outbound"), "direction": np.where(inbound, "inbound", "outbound"),
        "visibility": "public", "channel": "email", "author_name": np.where(inbound, "Customer", "Anna Schmidt"),
        "author_role": np.where(inbound, "end-user", "agent"), "ticket_id": cust * 10 + seq,
        "ticket_status": "open", "subject": "Invoice INV/2026/0001234",
        "text": "Hello,\n\nplease find attached the remittance advice for the invoices listed below. "
                "We will settle the rest by the end of the month.\n\nKind regards", "as_of_date": pd.Timestamp(AS_OF),
    })


def _drafts(aging: pd.DataFrame, names: np.ndarray) -> pd.DataFrame:
    dunned = aging[aging["dunning_status"] == "dunned"].groupby(["customer_id", "company_id"], as_index=False).agg(
        stage=("stage", "max"), n=("invoice_id", "size"))
    body = ("Dear customer,\n\naccording to our records the following invoices are overdue. Please pay "
            "the open amount within seven days or tell us why you cannot.\n\n" + "INV/2026/0001234  1.234,00 EUR\n" * 5
            + "\nKind regards\nNordwind Trading, accounts receivable")
    return pd.DataFrame({
        "customer_id": dunned["customer_id"], "company_id": dunned["company_id"],
        "customer_name": names[dunned["customer_id"].to_numpy() - 100_000],
        "customer_email": "billing@customer.example", "stage": dunned["stage"], "action": "email",
        "subject": "Overdue invoices", "body": body, "template_body": body, "source": "template",
        "status": "draft", "as_of_date": pd.Timestamp(AS_OF), "run_id": "bench",
    })


def fill(url: str, customers: int, invoices: int, log, seed: int = 11) -> dict:
    """Create the schema in `url` and load the synthetic warehouse; returns row counts."""
    from dunning_pipeline.warehouse.store import Warehouse

    rng = np.random.default_rng(seed)
    wh = Warehouse(url)
    wh.ensure_schema()
    counts: dict[str, int] = {}

    def load(table: str, frame: pd.DataFrame) -> None:
        counts[table] = counts.get(table, 0) + wh.append(table, frame)

    cust = _customers(customers, rng)
    load("odoo_customers", cust)
    names = cust["name"].to_numpy()
    segment = rng.choice(SEGMENTS, customers, p=[0.6, 0.1, 0.1, 0.2])
    company = rng.integers(0, len(COMPANIES), customers)
    idx = _invoice_customers(invoices, customers, rng)
    log(f"  loading {invoices:,} invoices of {customers:,} customers...")
    drafts = []
    for start in range(0, invoices, CHUNK):
        aging = _aging(start, idx[start:start + CHUNK], names, segment, company, rng)
        load("invoice_aging", aging)
        load("dunning_history", _history(aging, rng))
        staged = aging[aging["instalments_total"] > 0].sample(frac=0.1, random_state=start)
        load("instalment_aging", pd.DataFrame({
            "invoice_id": staged["invoice_id"], "instalment_number": 1, "invoice_number": staged["invoice_number"],
            "company_id": staged["company_id"], "customer_id": staged["customer_id"], "currency": staged["currency"],
            "company_currency": staged["company_currency"], "instalments_total": 1,
            "date_maturity": staged["due_date"], "days_overdue": staged["days_overdue"],
            "aging_bucket": staged["aging_bucket"], "amount_residual": staged["amount_residual"],
            "amount_residual_company": staged["amount_residual_company"], "as_of_date": pd.Timestamp(AS_OF)}))
        drafts.append(aging[["invoice_id", "customer_id", "company_id", "stage", "dunning_status"]])
    load("reminder_drafts", _drafts(pd.concat(drafts), names).drop_duplicates(["customer_id", "company_id"]))
    log("  loading the timeline, holds and actions...")
    ids = cust["id"].to_numpy()
    for start in range(0, customers, CHUNK // 5):
        load("customer_timeline", _timeline(ids[start:start + CHUNK // 5], rng))
    n_holds = max(1, customers // 40)
    load("dunning_holds", pd.DataFrame({
        "customer_id": rng.choice(ids, n_holds), "invoice_id": None, "kind": "promise",
        "until": pd.Timestamp(AS_OF + timedelta(days=10)), "note": "promised on the phone",
        "created_by": "bench", "created_at": pd.Timestamp("2026-03-01 10:00")}))
    n_actions = max(1, customers // 40)
    load("workbench_actions", pd.DataFrame({
        "kind": "call", "customer_id": rng.choice(ids, n_actions), "outcome": "no_answer", "author": "bench",
        "created_at": pd.Timestamp("2026-03-02 10:00"), "as_of_date": pd.Timestamp(AS_OF)}))
    with wh.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    wh.dispose()
    return counts


def _time(client, paths: list[str], n: int) -> dict:
    client.get(paths[0])  # warm: the first request reflects optional tables and caches the filter values
    times = []
    for k in range(n):
        path = paths[k % len(paths)]
        t0 = time.perf_counter()
        resp = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"GET {path} answered {resp.status_code}")
    times.sort()
    return {"median": statistics.median(times), "p95": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))],
            "max": times[-1], "n": n}


def measure(url: str, invoices: int, requests: int, log) -> list[dict]:
    from starlette.testclient import TestClient

    from dunning_pipeline.workbench import auth
    from dunning_pipeline.workbench.app import create_app
    from dunning_pipeline.workbench.config import WorkbenchConfig

    with tempfile.TemporaryDirectory() as tmp:
        users = Path(tmp) / "users.txt"
        auth.UsersFile(users).add("bench", "bench-password-1")
        cfg = WorkbenchConfig(database_url=url, users_file=str(users), secret=b"b" * 32, secret_is_random=False)
        now = datetime.combine(AS_OF, datetime.min.time(), UTC) + timedelta(hours=15)
        client = TestClient(create_app(cfg, now=lambda: now), follow_redirects=False)
        page = client.get("/login").text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        assert client.post("/login", data={"csrf_token": token, "username": "bench",
                                           "password": "bench-password-1"}).status_code == 303
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            # The customer with the most invoices, and ordinary ones.
            biggest = conn.execute(sa.text(
                "SELECT customer_id FROM invoice_aging GROUP BY customer_id ORDER BY count(*) DESC LIMIT 1")).scalar()
            # Customers of invoices spread over the table, each page asked for once.
            sample = conn.execute(sa.text(
                "SELECT customer_id FROM invoice_aging WHERE dunning_status = 'dunned' AND invoice_id % :step = 0 "
                "LIMIT :n"), {"step": max(1, invoices // (requests + 1)), "n": requests}).scalars().all()
            biggest_n = conn.execute(sa.text("SELECT count(*) FROM invoice_aging WHERE customer_id = :c"),
                                     {"c": biggest}).scalar()
        engine.dispose()
        pages = [("worklist, first page", ["/"]),
                 ("worklist, stage and currency filter", ["/?stage=call&currency=EUR"]),
                 ("worklist, segment filter, page 3", ["/?segment=key_accounts&page=3"]),
                 (f"customer page ({len(sample)} different customers)", [f"/customers/{c}" for c in sample]),
                 (f"customer page (the biggest customer: {biggest_n:,} invoices)", [f"/customers/{biggest}"])]
        rows = []
        for label, paths in pages:
            log(f"  {label}: {paths[0]}")
            rows.append({"page": label, **_time(client, paths, requests)})
        client.close()
    return rows


def to_markdown(rows: list[dict], customers: int, invoices: int) -> str:
    out = [f"{customers:,} customers, {invoices:,} open invoices (PostgreSQL)", "",
           "| page | requests | median ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['page']} | {r['n']} | {r['median']:.0f} | {r['p95']:.0f} | {r['max']:.0f} |")
    return "\n".join(out)


def run(customers: int, invoices: int, requests: int, log, *, database: str | None = None,
        keep: bool = False) -> tuple[str, dict]:
    """Fill a new database (or measure the kept one named `database`) and time the pages."""
    name = database or f"dunning_bench_wb_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    if database is None:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    counts: dict = {}
    try:
        if database is None:
            t0 = time.perf_counter()
            log(f"filling {name}...")
            counts = fill(url, customers, invoices, log)
            log(f"  loaded in {time.perf_counter() - t0:.0f} s: {counts}")
        else:
            from dunning_pipeline.warehouse.store import Warehouse

            Warehouse(url).ensure_schema()  # indexes added since it was filled
        rows = measure(url, invoices, requests, log)
    finally:
        if keep or database is not None:
            log(f"kept database {name}")
        else:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return to_markdown(rows, customers, invoices), {"rows": rows, "counts": counts}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=200_000)
    p.add_argument("--invoices", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=20, help="timed requests per page")
    p.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    p.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    p.add_argument("--database", default=None, help="measure this kept database instead of filling a new one")
    args = p.parse_args(argv)
    if args.customers < 1 or args.invoices < args.customers:
        p.error("need at least one customer and at least one invoice per customer")
    table, _ = run(args.customers, args.invoices, args.requests, lambda m: print(m, file=sys.stderr, flush=True),
                   database=args.database, keep=args.keep)
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
