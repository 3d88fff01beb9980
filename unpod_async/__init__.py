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
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ServerError,
    UnpodError,
)
from ._export import ExportProgress, ExportStats
from ._models import (
    Organization,
    PostCallData,
    Space,
    Task,
    TaskOutput,
    TasksPage,
    TaskSpec,
    TranscriptTurn,
    UserInfo,
)
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BusinessLogicError",
    "DeadlineExceededError",
    "ExportError",
    "ExportProgress",
    "ExportStats",
    "NotFoundError",
    "Organization",
    "PermissionDeniedError",
    "PostCallData",
    "RateLimitError",
    "RedirectError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "ServerError",
    "Space",
    "Task",
    "TaskOutput",
    "TaskSpec",
    "TasksPage",
    "TranscriptTurn",
    "UnpodClient",
    "UnpodError",
    "UserInfo",
    "__version__",
]
