"""Odoo 19 as a real server answers: JSON-2's error paths, the fallback to JSON-RPC where /json/2
is blocked, JSON-RPC's deprecation, whose API key it is; and JSON-RPC's URL and version probe."""

from __future__ import annotations

import pytest

from dunning_pipeline.odoo.client import (
    OdooAccessError,
    OdooAuthError,
    OdooConfigError,
    OdooJson2Unavailable,
)
from dunning_pipeline_tests.odoo.conftest import assert_secret_free, client_for, make_sandbox, out_moves


@pytest.fixture
def sb19():
    with make_sandbox("19.0") as sb:
        yield sb


def read_invoices(client) -> list[dict]:
    return [r for page in client.iter_pages("account.move", [["move_type", "in", ["out_invoice", "out_refund"]]],
                                            ["name", "amount_residual"], page_size=50) for r in page]


@pytest.mark.parametrize("protocol", ["json2", "auto"])
def test_unknown_database_names_odoo_db(sb19, protocol):
    with client_for(sb19, database="acme-prod", protocol=protocol) as client, \
            pytest.raises(OdooConfigError) as err:
        client.check_connection()
    text = str(err.value)
    assert "ODOO_DB" in text and "'acme-prod'" in text
    assert_secret_free(err.value, sb19.env["ODOO_API_KEY"])


def test_auto_falls_back_to_jsonrpc_where_json2_is_blocked(sb19):
    sb19.odoo.json2_blocked = True
    heard: list[str] = []
    with client_for(sb19, protocol="auto") as client:
        client._on_warning = heard.append
        client.check_connection()
        rows = read_invoices(client)
        read_invoices(client)
    assert client.protocol == "jsonrpc"
    assert [r["id"] for r in rows] == [m["id"] for m in out_moves(sb19.data)]
    assert len(heard) == 2 == len(client.warnings)  # each reported once
    fallback, deprecation = heard
    assert "HTTP 403" in fallback and "Falling back to JSON-RPC" in fallback
    assert "deprecated in 19" in deprecation


def test_explicit_json2_where_it_is_blocked_says_what_to_do(sb19):
    sb19.odoo.json2_blocked = True
    with client_for(sb19, protocol="json2") as client, pytest.raises(OdooJson2Unavailable) as err:
        client.check_connection()
    text = str(err.value)
    assert "HTTP 403" in text and "ODOO_DB" in text and "ODOO_PROTOCOL=jsonrpc" in text


def test_jsonrpc_on_19_reports_its_deprecation_once(sb19):
    heard: list[str] = []
    with client_for(sb19, protocol="jsonrpc") as client:
        client._on_warning = heard.append
        client.check_connection()
        read_invoices(client)
        read_invoices(client)
    assert len(heard) == 1 and "JSON-RPC, which Odoo deprecated in 19" in heard[0]


def test_jsonrpc_on_older_odoo_reports_no_deprecation_and_skips_the_version_probe():
    with make_sandbox("18.0") as sb, client_for(sb, protocol="jsonrpc") as client:
        client.check_connection()
        read_invoices(client)
        assert client.warnings == []
        assert client.version().label == "18.0"
        assert not [r for r in sb.requests["odoo"] if r["path"] == "/web/version"]


def test_json2_key_of_another_user_names_the_owner(sb19):
    sb19.odoo.add_api_key("bobs-key-0123456789", "bob@acme.example", "Bob Builder")
    with client_for(sb19, protocol="json2", api_key="bobs-key-0123456789") as client, \
            pytest.raises(OdooAuthError) as err:
        client.check_connection()
    text = str(err.value)
    assert "belongs to Odoo user 'bob@acme.example' (Bob Builder)" in text
    assert "not to ODOO_USERNAME 'admin'" in text
    assert_secret_free(err.value, "bobs-key-0123456789")


def test_json2_checks_the_key_owner_and_names_it_in_access_errors(sb19):
    sb19.odoo.add_api_key("clerk-key-0123456789", "clerk@acme.example", "Clerk", accounting=False)
    with client_for(sb19, protocol="json2", api_key="clerk-key-0123456789",
                    username="Clerk@acme.example") as client:
        client.check_connection()  # the login matches whatever its case
        assert client.key_owner == "clerk@acme.example"
        assert client.search_read("res.partner", [], ["name"], limit=1)  # contacts still read
        with pytest.raises(OdooAccessError) as err:
            read_invoices(client)
    text = str(err.value)
    assert "user 'clerk@acme.example' (the API key's owner) may not run account.move.search_read" in text
    assert "You are not allowed to access 'Journal Entry' (account.move) records." in text


@pytest.mark.parametrize("fault", ["expired_key", "bad_credentials"])
def test_json2_expired_or_wrong_key_reads_wrong_or_expired(sb19, fault):
    with client_for(sb19, protocol="json2") as client:
        sb19.faults.set("odoo", fault)
        with pytest.raises(OdooAuthError) as err:
            read_invoices(client)
    text = str(err.value)
    assert "is wrong or expired (Odoo answered 'Invalid apikey')" in text
    assert "re-issue your Odoo API key" in text
    assert_secret_free(err.value, sb19.env["ODOO_API_KEY"])


def test_json2_unknown_field_is_a_500_named_as_a_field_error(sb19):
    with client_for(sb19, protocol="json2") as client, pytest.raises(OdooConfigError) as err:
        client.search_read("account.move", [], ["name", "x_level"], limit=1)
    assert str(err.value).startswith("field x_level does not exist on model account.move in Odoo 19.0")
    (entry,) = [r for r in sb19.requests["odoo"] if r["path"] == "/json/2/account.move/search_read"]
    assert entry["status"] == 500


def test_url_with_a_path_gets_400_on_odoo_18_and_still_says_use_the_root():
    with make_sandbox("18.0") as sb, client_for(sb, url=sb.env["ODOO_URL"] + "/odoo") as client, \
            pytest.raises(OdooConfigError) as err:
        client.check_connection()
    text = str(err.value)
    assert "HTTP 400" in text and "ODOO_URL must be the root address" in text and "drop '/odoo'" in text
