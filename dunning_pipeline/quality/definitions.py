"""The quality part of the code location (merged by dunning_pipeline.definitions): the
Great Expectations asset checks of the raw Odoo and Zendesk assets. GX itself is imported only
when a check runs."""

import dagster as dg

from dunning_pipeline.quality.checks import build_all_asset_checks

defs = dg.Definitions(asset_checks=build_all_asset_checks())
