"""The one Definitions object of the code location: assets, checks, jobs, schedules, sensors, resources.

Each source folder contributes its own `defs`; this module merges them and binds the resources
to environment variables (`dagster.EnvVar`, so secrets are resolved at run time and never shown).
The parts are imported as modules, not as `defs` objects: Dagster refuses a module that holds more
than one Definitions at module scope, and `dagster ... -m dunning_pipeline.definitions` must work
without `-a defs`.
"""

from __future__ import annotations

import os

import dagster as dg

from dunning_pipeline import settings
from dunning_pipeline.dunning import definitions as dunning_part
from dunning_pipeline.odoo import definitions as odoo_part
from dunning_pipeline.odoo.resource import OdooResource
from dunning_pipeline.quality import definitions as quality_part
from dunning_pipeline.reporting import definitions as reporting_part
from dunning_pipeline.reporting import llm_resource
from dunning_pipeline.schedules import nightly_dunning, nightly_dunning_schedule
from dunning_pipeline.slack import definitions as slack_part
from dunning_pipeline.slack.resource import SlackResource
from dunning_pipeline.warehouse.resource import WarehouseResource
from dunning_pipeline.zendesk import definitions as zendesk_part
from dunning_pipeline.zendesk.resource import ZendeskResource


def _optional(name: str) -> dg.EnvVar | None:
    """An optional variable: bound (as an EnvVar, never read here) only when it is set."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_resources() -> dict:
    return {
        "warehouse": WarehouseResource(database_url=_optional(settings.DATABASE_URL_VAR)),
        "odoo": OdooResource(
            url=dg.EnvVar("ODOO_URL"),
            database=dg.EnvVar("ODOO_DB"),
            username=dg.EnvVar("ODOO_USERNAME"),
            api_key=dg.EnvVar("ODOO_API_KEY"),
            protocol=_optional(settings.ODOO_PROTOCOL_VAR),
        ),
        "zendesk": ZendeskResource(
            url=dg.EnvVar("ZENDESK_URL"),
            email=dg.EnvVar("ZENDESK_EMAIL"),
            api_token=dg.EnvVar("ZENDESK_API_TOKEN"),
        ),
        "slack": SlackResource(
            bot_token=dg.EnvVar("SLACK_BOT_TOKEN"),
            channel=dg.EnvVar("SLACK_CHANNEL"),
            api_url=_optional("SLACK_API_URL"),
            alerts_channel=_optional("SLACK_ALERTS_CHANNEL"),
            odoo_url=_optional("ODOO_URL"),
            zendesk_url=_optional("ZENDESK_URL"),
            webserver_url=_optional("DAGSTER_WEBSERVER_URL"),
        ),
        "llm": llm_resource.LlmSuggesterResource(
            url=_optional(llm_resource.URL_VAR),
            model=_optional(llm_resource.MODEL_VAR),
            api_key=_optional(llm_resource.API_KEY_VAR),
        ),
    }


defs = dg.Definitions.merge(
    odoo_part.defs,
    zendesk_part.defs,
    quality_part.defs,
    dunning_part.defs,
    reporting_part.defs,
    slack_part.defs,
    dg.Definitions(
        jobs=[nightly_dunning],
        schedules=[nightly_dunning_schedule],
        resources=build_resources(),
        # Runs the UI or a backfill launches for an asset selection (Dagster's implicit asset
        # job) run in one process too, as the nightly job does: a process per step would load
        # the code location (and Great Expectations) again for each step.
        executor=dg.in_process_executor,
    ),
)
