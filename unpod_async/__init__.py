"""unpod-async: a fast, safe asyncio client for the Unpod platform API.

>>> from unpod_async import UnpodClient
>>> async with UnpodClient() as client:
...     tasks = await client.get_all_tasks("SPACE_TOKEN")
"""

from ._client import UnpodClient
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BusinessLogicError,
    DeadlineExceededError,
    ExportError,
    IncompletePullError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ServerError,
    SyncError,
    UnpodError,
)
from ._export import ExportArgs, ExportProgress, ExportStats, Format, ProgressCallback
from ._iterate import TaskIterator
from ._models import (
    CallSummary,
    Organization,
    PostCallData,
    Run,
    RunsPage,
    Space,
    Task,
    TaskOutput,
    TasksPage,
    TaskSpec,
    TranscriptTurn,
    UserInfo,
)
from ._page import PullStats
from ._params import DEFAULT_BASE_URL, TaskFilter, TaskFilterArgs
from ._spaces import SpaceExportResult, SpacesExportStats, SpacesProgress, SpacesProgressCallback
from ._store_export import export_from_db
from ._sync import FINAL_STATUSES, SyncStats
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BusinessLogicError",
    "CallSummary",
    "DEFAULT_BASE_URL",
    "DeadlineExceededError",
    "ExportArgs",
    "ExportError",
    "ExportProgress",
    "ExportStats",
    "FINAL_STATUSES",
    "Format",
    "IncompletePullError",
    "NotFoundError",
    "Organization",
    "PermissionDeniedError",
    "PostCallData",
    "ProgressCallback",
    "PullStats",
    "RateLimitError",
    "RedirectError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "Run",
    "RunsPage",
    "ServerError",
    "Space",
    "SpaceExportResult",
    "SpacesExportStats",
    "SpacesProgress",
    "SpacesProgressCallback",
    "SyncError",
    "SyncStats",
    "Task",
    "TaskFilter",
    "TaskFilterArgs",
    "TaskIterator",
    "TaskOutput",
    "TaskSpec",
    "TasksPage",
    "TranscriptTurn",
    "UnpodClient",
    "UnpodError",
    "UserInfo",
    "__version__",
    "export_from_db",
]
