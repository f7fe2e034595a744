"""Local stand-ins for Odoo, Zendesk and Slack on loopback, seeded with realistic data.

`Sandbox` (see `harness.py`) is what tests, the demo and the benchmark use; `python -m
dunning_pipeline.sandbox` serves one until interrupted and prints the environment to use it.
"""

from dunning_pipeline.sandbox.data import NightChanges, SandboxData, generate, open_receivables
from dunning_pipeline.sandbox.harness import Sandbox, SandboxProcess

__all__ = ["NightChanges", "Sandbox", "SandboxData", "SandboxProcess", "generate", "open_receivables"]
