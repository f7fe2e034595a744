"""reminder_drafts from templates: who gets one, language, locale, tone, lines, references."""

from __future__ import annotations

import json
import textwrap
from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from dunning_pipeline.dunning.policy import PolicyError, parse_policy
from dunning_pipeline.reporting.drafts import DraftTemplateError, build_drafts, customer_locale
from dunning_pipeline.reporting.interest import late_payment_charges
from dunning_pipeline.reporting.timeline import build_timeline

from . import timeline_data as TD

AS_OF = date(2026, 3, 2)
T = pd.Timestamp
_AGING_ROWS = [
    # id, number, type, customer, due, residual, days, stage, rank, action, tone, status, hold
    (11, "INV/2026/00011", "out_invoice", 10, "2026-02-20", 12_345_600, 10, "reminder_2", 2, "email", "firm", "on_hold", "dispute"),
    (12, "INV/2026/00012", "out_invoice", 10, "2026-02-21", 5_000_000, 9, "reminder_2", 2, "email", "firm", "dunned", None),
    (13, "INV/2026/00013", "out_invoice", 10, "2026-02-28", 20_000_000, 2, "reminder_1", 1, "email", "polite", "dunned", None),
    (14, "RINV/2026/00014", "out_refund", 10, "2026-02-01", -1_000_000, 29, None, None, None, None, "credit_note", None),
    (21, "INV/2026/00021", "out_invoice", 20, "2026-01-20", 30_000_000, 41, "final_notice", 4, "letter", "formal", "dunned", None),
    (31, "INV/2026/00031", "out_invoice", 30, "2026-03-05", 4_500_000, -3, "pre_due", 0, "email", "friendly", "dunned", None),
    (41, "INV/2026/00041", "out_invoice", 40, "2026-02-10", 1_000_000, 20, "call", 3, "call", "firm", "dunned", None),
    (42, "INV/2026/00042", "out_invoice", 40, "2026-02-25", 1_000_000, 5, "reminder_1", 1, "email", "polite", "dunned", None),
    (51, "INV/2026/00051", "out_invoice", 50, "2026-02-25", 1_000_000, 5, "reminder_1", 1, "email", "polite", "on_hold", "promise"),
]


def aging() -> pd.DataFrame:
    cols = ["invoice_id", "invoice_number", "move_type", "customer_id", "invoice_date_due", "amount_residual",
            "days_overdue", "stage", "stage_rank", "action", "tone", "dunning_status", "hold_reason"]
    frame = pd.DataFrame(_AGING_ROWS, columns=cols)
    frame["invoice_date_due"] = pd.to_datetime(frame["invoice_date_due"])
    frame["invoice_date"] = frame["invoice_date_due"] - pd.Timedelta(days=30)
    frame["stage_rank"] = frame["stage_rank"].astype("Int64")
    frame["company_id"] = 1
    frame["currency"] = "EUR"
    frame["customer_name"] = frame["customer_id"].map({10: "Weber GmbH", 20: "Dupont SA", 30: "Jansen BV",
                                                       40: "Smith Ltd", 50: "Promise Co"})
    frame["manual_only"] = False
    frame["policy"], frame["segment"] = "default", "default"
    return frame


def customers() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [10, 20, 30, 40, 50], "company_id": 1,
                         "customer_name": ["Weber GmbH", "Dupont SA", "Jansen BV", "Smith Ltd", "Promise Co"],
                         "customer_email": ["ap@weber.de", "compta@dupont.fr", "ap@jansen.nl", "ap@smith.co.uk", None],
                         "customer_lang": ["de_DE", "fr_FR", "nl_NL", "en_GB", None],
                         "company_name": "Northwind Trading"})


def timeline() -> pd.DataFrame:
    return build_timeline(TD.comments(), TD.tickets(), TD.users(), TD.communications(), TD.history(),
                          TD.invoices(), TD.PATTERN, AS_OF, ZoneInfo("UTC"))


def _drafts(**kw) -> pd.DataFrame:
    return build_drafts(aging(), customers(), kw.pop("timeline", timeline()), AS_OF, **kw).set_index("customer_id")


def test_who_gets_a_draft_language_and_tone():
    drafts = _drafts()
    # 40's highest stage is a call, 50 is on hold: no draft
    assert sorted(drafts.index) == [10, 20, 30]
    assert drafts.loc[10, ["locale", "stage", "tone", "template_name"]].tolist() == [
        "de_DE", "reminder_2", "firm", "reminder_de.txt.j2"]
    assert drafts.loc[20, ["locale", "action", "tone"]].tolist() == ["fr_FR", "letter", "formal"]
    assert drafts.loc[30, ["locale", "template_name"]].tolist() == ["en", "reminder_en.txt.j2"]  # Dutch: English
    assert drafts.loc[10, "subject"] == "2. Mahnung: überfällige Rechnungen"
    assert drafts.loc[20, "subject"] == "Dernière relance : INV/2026/00021"
    assert drafts.loc[30, "subject"] == "Invoices falling due soon: INV/2026/00031"


def test_german_draft_lists_overdue_invoices_in_the_locale_credit_and_dispute():
    body = _drafts().loc[10, "body"]
    assert "- INV/2026/00012, fällig am 21. Februar 2026: 500,00\xa0€" in body
    assert "- INV/2026/00013, fällig am 28. Februar 2026: 2.000,00\xa0€" in body
    assert "Gesamt: 2.500,00\xa0€" in body
    assert "Ihre offenen Gutschriften RINV/2026/00014 (100,00\xa0€) werden mit diesem Betrag verrechnet." in body
    # the disputed invoice is not demanded: named as under review only, without its amount
    assert "INV/2026/00011 wird nach Ihrer Rückfrage geprüft" in body
    assert "1.234,56" not in body
    # the last public message of this customer: our reply of 21 February (the internal note is not a contact)
    assert "wir beziehen uns auf unsere E-Mail vom 21. Februar 2026." in body
    drafts = _drafts()
    assert json.loads(drafts.loc[10, "invoice_numbers"]) == ["INV/2026/00012", "INV/2026/00013"]
    assert json.loads(drafts.loc[10, "under_review"]) == ["INV/2026/00011"]
    assert json.loads(drafts.loc[10, "amounts"]) == ["500,00\xa0€", "2.000,00\xa0€", "2.500,00\xa0€", "100,00\xa0€"]
    assert drafts.loc[10, ["last_contact_kind", "last_contact_ticket_id"]].tolist() == ["email_out", 501]


def test_french_and_english_drafts_refer_only_to_what_happened():
    drafts = _drafts()
    fr = drafts.loc[20, "body"]
    assert "Nous vous remercions de votre message du 21 février 2026." in fr  # Eve's inbound message
    assert "- INV/2026/00021, échue le 20 janvier 2026 : 3\u202f000,00\xa0€" in fr
    assert "nous suspendrons nos livraisons" in fr
    en = drafts.loc[30, "body"]
    assert en.startswith("Dear Jansen BV,\n\nThis is a friendly note that the following invoices fall due soon:")
    assert "- INV/2026/00031, due March 5, 2026: €450.00" in en
    for word in ("email of", "message of", "phone", "credit", "review", "interest"):
        assert word not in en  # no conversation, credit, dispute or interest to mention
    assert pd.isna(drafts.loc[30, "last_contact_kind"])


def test_a_phone_call_is_mentioned_and_as_agreed_only_with_a_promise():
    tl = timeline()
    phone = tl[tl["comment_id"] == 5].assign(customer_id=50)  # the voice comment, as 50's only message
    drafts = _drafts(timeline=pd.concat([tl, phone], ignore_index=True))
    assert 50 not in drafts.index  # on hold: no draft, whatever was said
    ag = aging()
    ag.loc[ag["invoice_id"] == 42, "hold_reason"] = "promise"  # 40: a promise on one invoice, another dunned
    ag.loc[ag["invoice_id"] == 41, ["stage", "stage_rank", "action"]] = ["reminder_2", 2, "email"]
    phone40 = tl[tl["comment_id"] == 5].assign(customer_id=40)
    out = build_drafts(ag, customers(), pd.concat([tl, phone40], ignore_index=True), AS_OF).set_index("customer_id")
    assert "As agreed on the phone on 6 January 2026, here is the overview" in out.loc[40, "body"]
    ag.loc[ag["invoice_id"] == 42, "hold_reason"] = None
    out = build_drafts(ag, customers(), pd.concat([tl, phone40], ignore_index=True), AS_OF).set_index("customer_id")
    assert "Further to our phone call of 6 January 2026" in out.loc[40, "body"]
    assert "agreed" not in out.loc[40, "body"]


def test_instalments_are_listed_when_the_table_exists():
    instalments = pd.DataFrame({
        "invoice_id": [21, 21, 21], "line_id": [1, 2, 3], "instalment_number": [1, 2, 3], "instalments_total": 3,
        "date_maturity": pd.to_datetime(["2026-01-20", "2026-02-20", "2026-03-20"]),
        "days_overdue": [41, 10, -18], "amount_residual": [10_000_000, 10_000_000, 10_000_000]})
    fr = _drafts(instalments=instalments).loc[20, "body"]
    assert "- INV/2026/00021, échéance 1 sur 3, échue le 20 janvier 2026 : 1\u202f000,00\xa0€" in fr
    assert "- INV/2026/00021, échéance 2 sur 3, échue le 20 février 2026 : 1\u202f000,00\xa0€" in fr
    assert "échéance 3 sur 3" not in fr and "Total : 2\u202f000,00\xa0€" in fr


def test_statutory_interest_and_fees_are_shown_when_the_policy_charges_them():
    policy = parse_policy(textwrap.dedent("""
    policies:
      default:
        stages:
          - {name: pre_due, days: -3, action: email, tone: friendly}
          - {name: reminder_1, days: 1, action: email, tone: polite}
          - {name: reminder_2, days: 8, action: email, tone: firm}
          - {name: call, days: 15, action: call, tone: firm}
          - {name: final_notice, days: 31, action: letter, tone: formal}
    late_payment:
      default:
        interest: {reference_rate_percent: 2.15, points: 9}
        fee: {amounts: {EUR: 40}}
    """))
    charges = late_payment_charges(aging(), policy)
    drafts = _drafts(charges=charges)
    # 500.00 x 9/365 x 11.15 % = 1.37; 2,000.00 x 2/365 x 11.15 % = 1.22; the disputed one is not claimed
    assert "Hinzu kommen gesetzliche Verzugszinsen von 2,59\xa0€ bis heute und Mahngebühren von 80,00\xa0€" \
        in drafts.loc[10, "body"]
    assert drafts.loc[10, ["interest_total", "fee_total"]].tolist() == ["2,59\xa0€", "80,00\xa0€"]
    assert "In addition" not in _drafts().loc[30, "body"]


def test_locales():
    assert customer_locale("de_CH").locale == "de_CH" and customer_locale("fr_BE").language == "fr"
    assert customer_locale(None).language == "en" and customer_locale("ja_JP").locale == "en"
    assert customer_locale("de").money(12_345_600, "EUR") == "1.234,56\xa0€"


def test_an_override_folder_is_validated_at_load_and_used(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "reminder_de.txt.j2").write_text("Subject: Hallo {{ customer_name }}\n\n{{ lines|length }} Posten\n",
                                               encoding="utf-8")
    drafts = _drafts(templates_dir=folder)
    assert drafts.loc[10, ["subject", "body"]].tolist() == ["Hallo Weber GmbH", "2 Posten\n"]
    assert drafts.loc[20, "template_name"] == "reminder_fr.txt.j2" and "Madame, Monsieur" in drafts.loc[20, "body"]

    base = "policies:\n  default:\n    stages:\n      - {name: r, days: 1, action: email, tone: polite}\n"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(base + "drafts:\n  templates_dir: templates\n", encoding="utf-8")
    assert parse_policy(policy_file.read_text(), source=str(policy_file)).templates_dir == folder
    (folder / "reminder_xx.txt.j2").write_text("Subject: x", encoding="utf-8")
    (folder / "reminder_fr.txt.j2").write_text("Subject: {% if %}", encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        parse_policy(policy_file.read_text(), source=str(policy_file))
    text = str(exc.value)
    assert "line 6, drafts.templates_dir: reminder_xx.txt.j2 in" in text and "expected names: reminder_de.txt.j2" in text
    assert "reminder_fr.txt.j2, line 1: template syntax error" in text
    with pytest.raises(PolicyError, match="does not exist or is not a folder"):
        parse_policy(base + "drafts:\n  templates_dir: nowhere\n", source=str(policy_file))


def test_a_template_without_subject_line_is_named(tmp_path):
    (tmp_path / "reminder_en.txt.j2").write_text("Hello\n", encoding="utf-8")
    with pytest.raises(DraftTemplateError, match="template reminder_en.txt.j2 must start with a line 'Subject: ...'"):
        _drafts(templates_dir=tmp_path)
