"""The floors a night is measured against, each run in its own process by `benchmarks.run`.

extract (floor a): a bare loop that replays the night's own requests to the sandbox's Odoo and
    Zendesk (the same pages, from the sandbox's request log), decodes each answer with `json`
    and COPYs its records (every field as text) into PostgreSQL, one request at a time.
    Seconds per extraction step (the request's Odoo model or Zendesk export names the step).
engine (floor b): the receivables, aging, stage and history arithmetic as DuckDB SQL over the
    same warehouse tables: COPY the needed columns of odoo_invoices, odoo_customers and the
    last recorded state out of PostgreSQL, compute in DuckDB, COPY the aging and the history
    rows back into PostgreSQL. Read, compute and write are timed apart.
Both print one JSON line. Their tables live in a schema of their own, dropped at the end.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import psycopg2

# Which pipeline step an Odoo model's pages belong to.
ODOO_MODEL_STEPS = {
    "res.partner": "odoo_customers",
    "account.move": "odoo_invoices",
    "account.move.line": "odoo_receivable_lines",
    "account.partial.reconcile": "odoo_reconciliations",
}
EXTRACTION_STEPS = ("odoo_customers", "odoo_invoices", "odoo_receivable_lines", "odoo_reconciliations",
                    "zendesk_tickets_and_users", "zendesk_comments")
ENGINE_STEPS = ("receivables", "invoice_aging", "dunning_history")
_SKIP_HEADERS = {"host", "content-length"}


def request_step(service: str, entry: dict) -> str | None:
    """The extraction step a logged sandbox request belongs to (None: not replayed)."""
    if entry.get("status") != 200 or entry.get("fault"):
        return None
    path = entry["path"]
    if service == "odoo":
        if path.startswith("/json/2/"):
            model = path.split("/")[3]
        else:
            params = (entry.get("json") or {}).get("params") or {}
            args = params.get("args") or []
            model = args[3] if params.get("method") == "execute_kw" and len(args) > 3 else None
        return ODOO_MODEL_STEPS.get(model, "odoo_session") if model else "odoo_session"
    if service == "zendesk" and entry["method"] == "GET":
        if "/incremental/tickets" in path or "/incremental/users" in path:
            return "zendesk_tickets_and_users"
        if path.endswith("/ticket_events.json") or path.endswith("/comments.json"):
            return "zendesk_comments"
    return None


def _records(step: str, data) -> list[dict]:
    """The records of one decoded answer, as the pipeline stores them (comments: one a row)."""
    if isinstance(data, dict) and "result" in data:  # JSON-RPC
        data = data["result"]
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if not isinstance(data, dict):
        return []
    if step == "zendesk_comments":
        if "comments" in data:
            return data["comments"]
        return [{**child, "ticket_id": event.get("ticket_id"), "created_at": event.get("created_at")}
                for event in data.get("ticket_events", [])
                for child in event.get("child_events", []) if child.get("event_type") == "Comment"]
    return [r for key in ("tickets", "users") for r in data.get(key, [])]


def _copy_records(cur, table: str, records: list[dict], known: dict[str, list[str]]) -> None:
    if not records:
        return
    if table not in known:
        known[table] = list(records[0])
        cols = ", ".join(f'"{c}" text' for c in known[table])
        cur.execute(f'CREATE TABLE floor_a."{table}" ({cols})')
    cols = known[table]
    buf = io.StringIO()
    writer = csv.writer(buf)
    for r in records:
        writer.writerow([None if (v := r.get(c)) is None else
                         json.dumps(v) if isinstance(v, (dict, list)) else v for c in cols])
    buf.seek(0)
    quoted = ", ".join(f'"{c}"' for c in cols)
    cur.copy_expert(f'COPY floor_a."{table}" ({quoted}) FROM STDIN WITH (FORMAT csv)', buf)


def extract_floor(request_log: dict[str, list[dict]], base_urls: dict[str, str], dsn: str) -> dict:
    import urllib3

    http = urllib3.PoolManager(maxsize=4, retries=False)
    seconds: dict[str, float] = {}
    requests: dict[str, int] = {}
    rows: dict[str, int] = {}
    conn = psycopg2.connect(dsn)
    known: dict[str, list[str]] = {}
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS floor_a CASCADE; CREATE SCHEMA floor_a")
        for service in ("odoo", "zendesk"):
            for entry in request_log.get(service, []):
                step = request_step(service, entry)
                if step is None:
                    continue
                started = time.perf_counter()
                url = base_urls[service] + entry["path"]
                if entry.get("query"):
                    url += "?" + urlencode(entry["query"])
                headers = {k: v for k, v in entry["headers"].items() if k not in _SKIP_HEADERS}
                body = json.dumps(entry["json"]).encode() if entry.get("json") is not None else None
                resp = http.request(entry["method"], url, body=body, headers=headers)
                if resp.status != 200:
                    raise SystemExit(f"floor a: {service} {entry['path']} answered {resp.status} on replay")
                records = _records(step, json.loads(resp.data))
                with conn, conn.cursor() as cur:
                    _copy_records(cur, step, records, known)
                seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - started
                requests[step] = requests.get(step, 0) + 1
                rows[step] = rows.get(step, 0) + len(records)
        with conn, conn.cursor() as cur:
            cur.execute("DROP SCHEMA floor_a CASCADE")
    finally:
        conn.close()
        http.clear()
    return {"steps": {s: round(v, 2) for s, v in seconds.items()}, "requests": requests, "rows": rows}


# ---------------------------------------------------------------------------------- floor b
_INVOICE_COLUMNS = ("id, name, move_type, state, payment_state, partner_id, commercial_partner_id, company_id,"
                    " currency, company_currency, invoice_date, invoice_date_due, amount_total,"
                    " amount_residual, amount_total_signed, amount_residual_signed, write_date")
_CUSTOMER_COLUMNS = "id, name, email, tags, company_id"
_STATE_COLUMNS = "invoice_id, to_stage AS stage, as_of_date"
_AMOUNTS = {c: "DECIMAL(18,4)" for c in ("amount_total", "amount_residual", "amount_total_signed",
                                         "amount_residual_signed")}
_PG_TYPES = {"BIGINT": "bigint", "INTEGER": "integer", "DATE": "date", "BOOLEAN": "boolean",
             "VARCHAR": "text", "TIMESTAMP": "timestamp", "DOUBLE": "double precision"}


def _engine_sql(as_of: str, buckets: list[int], ladder_values: str, key_tags: list[str]) -> tuple[str, str]:
    """(aging query, history query) over the DuckDB tables invoices, customers, state, ladder."""
    bucket_case, low = ["CASE WHEN days_overdue <= 0 THEN 'current'"], 1
    for b in buckets:
        bucket_case.append(f"WHEN days_overdue <= {b} THEN '{low}-{b}'")
        low = b + 1
    bucket_case.append(f"ELSE '{buckets[-1]}+' END")
    tags = " OR ".join(f"lower(c.tags) LIKE '%{t.lower()}%'" for t in key_tags) or "false"
    aging = f"""
    WITH ladder(policy, rank, stage, days) AS (VALUES {ladder_values}),
    recv AS (
      SELECT i.id AS invoice_id, i.name AS invoice_number, i.move_type, i.company_id, i.currency,
             i.company_currency, c.id AS customer_id, c.name AS customer_name,
             CASE WHEN {tags} THEN 'key_accounts' ELSE 'default' END AS segment,
             CASE WHEN {tags} THEN 'key_accounts' ELSE 'default' END AS policy,
             i.amount_residual, abs(i.amount_residual_signed) * sign(i.amount_residual) AS amount_residual_company,
             i.invoice_date, coalesce(i.invoice_date_due, i.invoice_date) AS invoice_date_due,
             DATE '{as_of}' - coalesce(i.invoice_date_due, i.invoice_date) AS days_overdue
      FROM invoices i JOIN customers c ON c.id = i.commercial_partner_id
      WHERE i.state = 'posted' AND i.move_type IN ('out_invoice', 'out_refund')
        AND i.payment_state NOT IN ('paid', 'reversed')),
    staged AS (
      SELECT r.*, {' '.join(bucket_case)} AS aging_bucket,
             CASE WHEN r.move_type = 'out_invoice' THEN l.stage END AS stage,
             CASE WHEN r.move_type = 'out_invoice' THEN l.rank END AS stage_rank
      FROM recv r ASOF LEFT JOIN ladder l ON r.policy = l.policy AND r.days_overdue >= l.days)
    SELECT *,
      sum(CASE WHEN move_type = 'out_invoice' AND days_overdue > 0 THEN amount_residual_company ELSE 0 END)
        OVER w AS customer_overdue_company,
      sum(CASE WHEN move_type = 'out_refund' THEN amount_residual_company ELSE 0 END) OVER w AS customer_credit_company,
      max(stage_rank) OVER w AS customer_stage_rank,
      DATE '{as_of}' AS as_of_date
    FROM staged WINDOW w AS (PARTITION BY customer_id, company_id)"""
    history = f"""
    WITH last AS (SELECT invoice_id, arg_max(stage, as_of_date) AS stage FROM state
                  WHERE as_of_date < DATE '{as_of}' GROUP BY invoice_id),
    now AS (SELECT * FROM aging WHERE move_type = 'out_invoice')
    SELECT coalesce(n.invoice_id, l.invoice_id) AS invoice_id, l.stage AS from_stage,
           coalesce(n.stage, CASE WHEN n.invoice_id IS NULL THEN 'closed' END) AS to_stage,
           n.days_overdue, n.amount_residual, n.amount_residual_company, n.policy, n.segment,
           DATE '{as_of}' AS as_of_date
    FROM now n FULL OUTER JOIN last l ON n.invoice_id = l.invoice_id
    WHERE (n.invoice_id IS NULL AND l.stage IS NOT NULL AND l.stage <> 'closed')
       OR (n.invoice_id IS NOT NULL AND n.stage IS DISTINCT FROM l.stage AND n.stage IS NOT NULL)"""
    return aging, history


def _copy_out(cur, query: str, path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)", f)


def _copy_in(duck, cur, relation: str, table: str, path: Path) -> int:
    cols = duck.execute(f"DESCRIBE {relation}").fetchall()
    pg_cols = ", ".join(f'"{name}" {_PG_TYPES.get(kind, "numeric" if kind.startswith("DECIMAL") else "text")}'
                        for name, kind, *_ in cols)
    cur.execute(f"CREATE TABLE floor_b.{table} ({pg_cols})")
    duck.execute(f"COPY {relation} TO '{path}' (FORMAT csv, HEADER)")
    with path.open(encoding="utf-8") as f:
        cur.copy_expert(f"COPY floor_b.{table} FROM STDIN WITH (FORMAT csv, HEADER)", f)
    return duck.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]


def engine_floor(dsn: str, as_of: str) -> dict:
    import duckdb

    from dunning_pipeline.dunning.policy import load_policy

    policy = load_policy()
    ladder_values = ", ".join(f"('{lad.name}', {s.rank}, '{s.name}', {s.days})"
                              for lad in policy.ladders.values() for s in lad.stages)
    key_tags = [t for seg in policy.config.segments for t in seg.tags]
    aging_sql, history_sql = _engine_sql(as_of, list(policy.config.aging_buckets), ladder_values, key_tags)
    out: dict[str, float | int] = {}
    conn = psycopg2.connect(dsn)
    duck = duckdb.connect()
    try:
        with tempfile.TemporaryDirectory() as tmp, conn, conn.cursor() as cur:
            d = Path(tmp)
            t0 = time.perf_counter()
            _copy_out(cur, f"SELECT {_INVOICE_COLUMNS} FROM odoo_invoices", d / "invoices.csv")
            _copy_out(cur, f"SELECT {_CUSTOMER_COLUMNS} FROM odoo_customers", d / "customers.csv")
            _copy_out(cur, f"SELECT {_STATE_COLUMNS} FROM dunning_history", d / "state.csv")
            duck.execute(f"CREATE TABLE invoices AS SELECT * FROM read_csv('{d / 'invoices.csv'}', types={_AMOUNTS!r})")
            duck.execute(f"CREATE TABLE customers AS SELECT * FROM read_csv('{d / 'customers.csv'}')")
            duck.execute(f"CREATE TABLE state AS SELECT * FROM read_csv('{d / 'state.csv'}',"
                         " types={'invoice_id': 'BIGINT', 'stage': 'VARCHAR', 'as_of_date': 'DATE'})")
            t1 = time.perf_counter()
            duck.execute(f"CREATE TABLE aging AS {aging_sql}")
            duck.execute(f"CREATE TABLE history AS {history_sql}")
            t2 = time.perf_counter()
            cur.execute("DROP SCHEMA IF EXISTS floor_b CASCADE; CREATE SCHEMA floor_b")
            out["aging_rows"] = _copy_in(duck, cur, "aging", "aging", d / "aging_out.csv")
            out["history_rows"] = _copy_in(duck, cur, "history", "history", d / "history_out.csv")
            t3 = time.perf_counter()
            cur.execute("DROP SCHEMA floor_b CASCADE")
        out.update(read_s=round(t1 - t0, 2), compute_s=round(t2 - t1, 2), write_s=round(t3 - t2, 2),
                   seconds=round(t3 - t0, 2))
    finally:
        duck.close()
        conn.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("floor", choices=["extract", "engine"])
    p.add_argument("--dsn", required=True, help="libpq connection string of the warehouse")
    p.add_argument("--request-log", type=Path, help="extract: the sandbox's request log and base URLs (JSON)")
    p.add_argument("--as-of", help="engine: the night's as-of date")
    args = p.parse_args()
    if args.floor == "extract":
        spec = json.loads(args.request_log.read_text(encoding="utf-8"))
        report = extract_floor(spec["requests"], spec["base_urls"], args.dsn)
    else:
        report = engine_floor(args.dsn, args.as_of)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
