"""Test helpers: an in-process simulator of the Unpod platform API.

>>> async with serve(tasks=500) as sim:  # doctest: +SKIP
...     url = f"{sim.base_url}/api/v2/platform/spaces/{sim.space_token}/tasks/"
"""

from ._simulator import FAULT_KINDS, Fault, RequestRecord, Simulator, serve

__all__ = ["FAULT_KINDS", "Fault", "RequestRecord", "Simulator", "serve"]
