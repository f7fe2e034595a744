"""The dunning part of the code location; merged by dunning_pipeline.definitions."""

import dagster as dg

from dunning_pipeline.dunning.assets import ASSET_CHECKS, ASSET_SPECS, ASSETS

defs = dg.Definitions(assets=[*ASSETS, *ASSET_SPECS], asset_checks=ASSET_CHECKS)
