"""Warehouse tables of the dunning concern, on the shared metadata."""

from dunning_pipeline.warehouse.schema import Money, metadata  # noqa: F401
