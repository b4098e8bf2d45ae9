"""Python SDK and ``aip`` command line for the AI Platform.

    from aip import Client, TaskFailedError

    client = Client()  # $AIP_URL (default http://127.0.0.1:8000), $AIP_API_KEY
    task = client.training.submit(
        name="cnn", input="mnist", script="training/mnist_cnn.py", output="mnist_cnn",
        params={"epochs": 1},
    )
    try:
        done = task.wait(timeout=600, on_progress=lambda t: print(t.progress))
    except TaskFailedError as exc:
        print(exc.reason, exc.message)
    service = client.services.create("digits", "mnist_cnn")
    print(service.predict("seven.png").prediction)

Server errors are the ``lakeapi.errors`` classes with the server's ``code``; see
:mod:`aip.errors`. Every call goes through one :class:`~aip.transport.Transport`
(``client.http``), which also serves calls the SDK has no method for.

The command line over this SDK is ``aip`` (installed beside the Python that has this package:
``.venv/bin/aip``), or ``python -m aip``; see :mod:`aip.cli`.
"""

from aip.client import Client, DatasetsAPI, ModelsAPI, ServicesAPI, TasksAPI
from aip.errors import (
    Conflict,
    DatasetNotFound,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    PlatformError,
    PlatformUnreachable,
    PortInUse,
    ServiceAlreadyExists,
    ServiceNotFound,
    ServiceUnavailable,
    TaskAlreadyExists,
    TaskAlreadyFinished,
    TaskAlreadyRunning,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFound,
    TaskTimeoutError,
    Unauthorized,
    UpstreamUnavailable,
)
from aip.handles import ServiceHandle, TaskHandle
from aip.images import encode_image
from aip.records import (
    Dataset,
    DatasetVersion,
    Model,
    Prediction,
    Service,
    Task,
    TaskFailure,
)

__all__ = [
    "Client",
    "Conflict",
    "Dataset",
    "DatasetNotFound",
    "DatasetVersion",
    "DatasetsAPI",
    "InvalidRequest",
    "Model",
    "ModelNotFound",
    "ModelsAPI",
    "NotFound",
    "PlatformError",
    "PlatformUnreachable",
    "PortInUse",
    "Prediction",
    "Service",
    "ServiceAlreadyExists",
    "ServiceHandle",
    "ServiceNotFound",
    "ServiceUnavailable",
    "ServicesAPI",
    "Task",
    "TaskAlreadyExists",
    "TaskAlreadyFinished",
    "TaskAlreadyRunning",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskFailure",
    "TaskHandle",
    "TaskNotFound",
    "TaskTimeoutError",
    "TasksAPI",
    "Unauthorized",
    "UpstreamUnavailable",
    "encode_image",
]
