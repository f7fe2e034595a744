"""The reporting part of the code location; merged by dunning_pipeline.definitions."""

import dagster as dg

from dunning_pipeline.reporting import report_assets

defs = dg.Definitions(
    assets=[*report_assets.ASSETS],  # AR aging report, collection KPIs
    asset_checks=[*report_assets.ASSET_CHECKS],
)
