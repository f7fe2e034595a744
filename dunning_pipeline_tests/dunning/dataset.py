"""A small hand-made dataset: raw Odoo and Zendesk rows as the extraction writes them.

As of 2026-03-02 with the shipped default policy. What each record is for, and what the engine
must make of it, is written out by hand in test_engine.py.
"""

from __future__ import annotations

import json
from datetime import date

import pandas as pd

from dunning_pipeline.money import to_units

AS_OF = date(2026, 3, 2)


def _inv(id_, name, customer, due, residual, *, move_type="out_invoice", state="posted", payment_state="not_paid",
         total=None, currency="EUR", residual_company=None, partner=None, invoice_date=None, write_date="2026-02-01 08:00:00",
         company=1):
    total = residual if total is None else total
    rc = residual if residual_company is None else residual_company
    sign = -1 if move_type == "out_refund" else 1
    return {
        "id": id_, "name": name, "move_type": move_type, "state": state, "payment_state": payment_state,
        "partner_id": partner or customer, "partner_name": f"Partner {partner or customer}",
        "commercial_partner_id": customer, "company_id": company, "company_name": "Dunning Demo SE",
        "currency": currency, "company_currency": "EUR",
        "invoice_date": pd.Timestamp(invoice_date or due) - pd.Timedelta(days=30 if invoice_date is None else 0),
        "invoice_date_due": pd.Timestamp(due),
        "amount_total": to_units(total), "amount_residual": to_units(residual),
        "amount_total_signed": sign * to_units(total if residual_company is None else rc),
        "amount_residual_signed": sign * to_units(rc),
        "invoice_origin": None, "ref": None, "payment_term": "30 Days",
        "write_date": pd.Timestamp(write_date), "create_date": pd.Timestamp("2026-01-01 08:00:00"),
        "extracted_at": pd.Timestamp("2026-03-02 01:00:00"),
    }


def invoices() -> pd.DataFrame:
    rows = [
        # Acme (customer 10; invoices to its contact 11 count for the company)
        _inv(101, "INV/2026/00101", 10, "2026-03-05", "100.00", partner=11),
        _inv(102, "INV/2026/00102", 10, "2026-03-01", "250.50", total="500.00", payment_state="partial"),
        _inv(103, "INV/2026/00103", 10, "2026-02-22", "80.00"),
        _inv(104, "INV/2026/00104", 10, "2026-02-15", "1000.00", currency="USD", residual_company="900.00"),
        _inv(105, "INV/2026/00105", 10, "2026-01-30", "70.00"),
        _inv(106, "INV/2026/00106", 10, "2026-01-16", "60.00"),
        _inv(107, "INV/2026/00107", 10, "2025-12-01", "40.00", payment_state="in_payment",
             write_date="2026-02-27 09:30:00"),
        _inv(108, "INV/2026/00108", 10, "2026-03-10", "30.00"),
        _inv(109, "INV/2026/00109", 10, "2026-01-10", "0.00", total="90.00", payment_state="paid"),
        _inv(110, "/", 10, "2026-01-10", "55.00", state="draft"),
        _inv(111, "INV/2026/00111", 10, "2026-01-10", "0.01", total="20.00", payment_state="partial"),
        _inv(112, "INV/2026/00112", 10, "2026-03-20", "0.02", total="20.00", payment_state="partial"),
        _inv(113, "INV/2026/00113", 10, "2026-01-10", "75.00", state="cancel"),
        # Beta (20): a key account (tag), manual-only policy with a 14-day delay
        _inv(201, "INV/2026/00201", 20, "2026-02-15", "5000.00"),
        # Gamma (30): a credit note covers the oldest invoice and part of the next
        _inv(301, "INV/2026/00301", 30, "2026-02-01", "300.00"),
        _inv(302, "INV/2026/00302", 30, "2026-02-20", "200.00"),
        _inv(303, "RINV/2026/00303", 30, "2026-02-25", "400.00", move_type="out_refund", invoice_date="2026-02-25"),
        # Theta (35): credit notes exceed the overdue balance
        _inv(351, "INV/2026/00351", 35, "2026-02-10", "100.00"),
        _inv(352, "RINV/2026/00352", 35, "2026-02-26", "150.00", move_type="out_refund", invoice_date="2026-02-26"),
        # Delta (40): a payment promise entered by an accountant
        _inv(401, "INV/2026/00401", 40, "2026-02-20", "120.00"),
        # Epsilon (50): excluded from dunning by hand
        _inv(501, "INV/2026/00501", 50, "2026-01-01", "999.99"),
        # Zeta (60): quarantined customer; 602 of Acme: quarantined invoice
        _inv(601, "INV/2026/00601", 60, "2026-01-01", "10.00"),
        _inv(602, "INV/2026/00602", 10, "2026-01-01", "20.00"),
    ]
    return pd.DataFrame(rows)


def customers() -> pd.DataFrame:
    def c(id_, name, email, tags=(), parent=None, is_company=True):
        return {"id": id_, "name": name, "email": email, "phone": None, "vat": None, "lang": "en_US",
                "country": "Germany", "is_company": is_company, "parent_id": parent,
                "commercial_partner_id": parent or id_, "customer_rank": 1, "tags": json.dumps(list(tags)),
                "company_id": None, "active": True, "write_date": pd.Timestamp("2026-01-01 08:00:00"),
                "extracted_at": pd.Timestamp("2026-03-02 01:00:00")}
    return pd.DataFrame([
        c(10, "Acme GmbH", "ap@acme.example", ["Wholesale"]),
        c(11, "Anna Acme", "Anna@Acme.example", parent=10, is_company=False),
        c(20, "Beta Ltd", "billing@beta.example", ["Key Account"]),
        c(30, "Gamma SA", "finance@gamma.example"),
        c(35, "Theta BV", "ar@theta.example"),
        c(40, "Delta Inc", "ar@delta.example"),
        c(50, "Epsilon AG", "pay@epsilon.example"),
        c(60, "Zeta Oy", "pay@zeta.example"),
    ])


def quarantine() -> pd.DataFrame:
    return pd.DataFrame([
        {"asset": "odoo_customers", "record_id": 60, "check_name": "email_format", "field": "email",
         "value": "pay@zeta", "reason": "malformed email", "run_id": "q", "quarantined_at": pd.Timestamp("2026-03-02")},
        {"asset": "odoo_invoices", "record_id": 602, "check_name": "residual_range", "field": "amount_residual",
         "value": "20", "reason": "residual above total", "run_id": "q", "quarantined_at": pd.Timestamp("2026-03-02")},
    ])


def users() -> pd.DataFrame:
    def u(id_, email, role="end-user", org=None):
        return {"id": id_, "email": email, "name": email.split("@")[0], "organization_id": org, "role": role,
                "external_id": None, "updated_at": pd.Timestamp("2026-01-01"), "extracted_at": pd.Timestamp("2026-03-02")}
    return pd.DataFrame([
        u(7001, "anna@acme.example"),
        u(7002, "someone.else@acme.example"),
        u(7003, "billing@beta.example"),
        u(7004, "mystery@gmail.com"),
        u(7005, "AP@acme.example"),
        u(8001, "agent@ourcompany.example", role="agent"),
    ])


def tickets() -> pd.DataFrame:
    def t(id_, status, subject, requester, created, tags=(), description=""):
        return {"id": id_, "status": status, "subject": subject, "description": description,
                "requester_id": requester, "organization_id": None, "tags": json.dumps(list(tags)),
                "via_channel": "email", "from_address": None, "created_at": pd.Timestamp(created),
                "updated_at": pd.Timestamp(created), "extracted_at": pd.Timestamp("2026-03-02")}
    return pd.DataFrame([
        # open, names 106: disputes it from 2026-02-20
        t(9001, "open", "Invoice INV/2026/00106 shows the wrong amount", 7001, "2026-02-20 10:00:00"),
        # solved: naming 103 does not hold it; matched by the email domain
        t(9002, "solved", "Copy of invoice please", 7002, "2026-02-23 09:00:00",
          description="Could you resend INV/2026/00103?"),
        # pending with a dispute tag and no invoice number: holds all of Beta's invoices
        t(9003, "pending", "We do not accept your charges", 7003, "2026-02-10 12:00:00", tags=["billing", "dispute"]),
        # from an unknown gmail address: matched to no customer, holds nothing
        t(9004, "open", "INV/2026/00102?", 7004, "2026-02-25 12:00:00"),
        # open; the number 105 appears only in a comment (lower case) on 2026-02-28
        t(9005, "open", "A question", 7005, "2026-02-26 08:00:00", description="Hello, a question about our account."),
        # created after the as-of day: not looked at
        t(9006, "open", "INV/2026/00101 is wrong", 7001, "2026-03-03 08:00:00"),
    ])


def comments() -> pd.DataFrame:
    def cm(id_, ticket, author, body, created, public=True):
        return {"id": id_, "ticket_id": ticket, "author_id": author, "public": public, "body": body,
                "via_channel": "email", "created_at": pd.Timestamp(created), "extracted_at": pd.Timestamp("2026-03-02")}
    return pd.DataFrame([
        cm(1, 9001, 7001, "Invoice INV/2026/00106 shows the wrong amount", "2026-02-20 10:00:00"),
        cm(2, 9001, 8001, "We are looking into it.", "2026-02-21 11:00:00"),
        cm(3, 9005, 7005, "Hello, a question about our account.", "2026-02-26 08:00:00"),
        cm(4, 9005, 7005, "It is about inv/2026/00105, the quantity is wrong.", "2026-02-28 16:00:00"),
        cm(5, 9005, 8001, "Internal: check the delivery note", "2026-03-01 09:00:00", public=False),
        cm(6, 9005, 8001, "Thanks, we will check.", "2026-03-01 10:00:00"),
    ])


def manual_holds() -> pd.DataFrame:
    return pd.DataFrame([
        {"id": 1, "customer_id": None, "invoice_id": 401, "kind": "promise", "until": pd.Timestamp("2026-03-10"),
         "note": "Promised on the phone", "created_by": "jane", "created_at": pd.Timestamp("2026-02-25 14:00:00")},
        {"id": 2, "customer_id": 50, "invoice_id": None, "kind": "exclusion", "until": None,
         "note": "Insolvency proceedings", "created_by": "joe", "created_at": pd.Timestamp("2026-01-10 09:00:00")},
        # expired promise: no effect
        {"id": 3, "customer_id": 30, "invoice_id": None, "kind": "promise", "until": pd.Timestamp("2026-02-28"),
         "note": "old promise", "created_by": "jane", "created_at": pd.Timestamp("2026-02-01 09:00:00")},
    ])


def fill(warehouse) -> None:
    """Write the whole dataset into a warehouse, as the extraction and the accountants would."""
    warehouse.upsert("odoo_invoices", invoices())
    warehouse.upsert("odoo_customers", customers())
    warehouse.upsert("zendesk_tickets", tickets())
    warehouse.upsert("zendesk_users", users())
    warehouse.upsert("zendesk_comments", comments())
    warehouse.upsert("data_quality_quarantine", quarantine())
    warehouse.append("dunning_holds", manual_holds().drop(columns=["id"]))
