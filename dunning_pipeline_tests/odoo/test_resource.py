"""OdooResource: configuration errors name the variable; the API key never shows."""

from __future__ import annotations

import pytest

from dunning_pipeline.odoo.client import OdooClient
from dunning_pipeline.odoo.resource import OdooResource
from dunning_pipeline.settings import SettingsError

SECRET = "k3y-5ecr3t-0d00-abcdef"


def resource(**overrides) -> OdooResource:
    values = {"url": "https://acme.odoo.com/", "database": "acme", "username": "bot@acme.example",
              "api_key": SECRET}
    values.update(overrides)
    return OdooResource(**values)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"url": "acme.odoo.com"}, "ODOO_URL"),
        ({"url": "ftp://acme.odoo.com"}, "ODOO_URL"),
        ({"url": "https://user:pw@acme.odoo.com"}, "ODOO_URL"),
        ({"database": " "}, "ODOO_DB"),
        ({"username": ""}, "ODOO_USERNAME"),
        ({"api_key": ""}, "ODOO_API_KEY"),
        ({"protocol": "xmlrpc"}, "ODOO_PROTOCOL"),
        ({"page_size": 0}, "OdooResource.page_size"),
        ({"max_retries": -1}, "OdooResource.max_retries"),
    ],
)
def test_bad_configuration_names_the_variable(overrides, variable):
    with pytest.raises(SettingsError) as err:
        resource(**overrides).get_client()
    assert variable in str(err.value)
    assert SECRET not in str(err.value)


def test_client_is_built_from_the_configuration():
    with resource(protocol="json2", timeout_seconds=7, max_retries=2).get_client() as client:
        assert isinstance(client, OdooClient)
        assert client.url == "https://acme.odoo.com"  # trailing slash dropped
        assert client.database == "acme" and client.username == "bot@acme.example"
        assert client.protocol == "json2"  # explicit: no version request needed
        assert client.timeout_seconds == 7 and client.max_retries == 2
        retry = client._transport.retry  # the policy each call is retried by
        assert retry.total == 2 and client._transport.read_timeout == 7
        assert {429, 500, 502, 503, 504} <= set(retry.status_forcelist)
        assert "POST" in retry.allowed_methods and retry.respect_retry_after_header


def test_the_api_key_is_in_no_repr():
    res = resource()
    assert SECRET not in repr(res) and SECRET not in str(res)
    client = res.get_client()
    assert SECRET not in repr(client) and SECRET not in str(client)
    assert SECRET not in repr(vars(client))
