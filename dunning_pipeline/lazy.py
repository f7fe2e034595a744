"""Libraries imported on their first use rather than when a module is imported.

Dagster imports every asset module to build the code location's Definitions, and pandas with
NumPy cost more to import than Dagster itself (issue 12); only a running step needs them. A
module binds `pd = lazy.module("pandas")` after its imports and uses `pd` as usual: the first
attribute read imports the library, later reads are plain attribute reads. A module-level
expression such as `pd.NA` as a default value would import it at load, so such values are
written where they are used.
"""

from __future__ import annotations

import importlib
import types


class _LazyModule(types.ModuleType):
    def __getattr__(self, name: str):
        # Only reached for names not yet copied: the first read, or a submodule imported since.
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


def module(name: str) -> types.ModuleType:
    """`name` (a top-level library such as "pandas"), imported when an attribute is first read."""
    return _LazyModule(name)
