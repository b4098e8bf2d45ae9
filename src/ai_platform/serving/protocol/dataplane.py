"""The data plane: one method per operation over the model runner and its batcher.

Protocol-independent (KServe's ``dataplane.py``): the REST endpoints only translate HTTP to
these calls. Every prediction, whatever the route, goes through the one batcher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ai_platform.serving.batching import Batcher
from ai_platform.serving.predictor import (
    Predictor,
    Runner,
    TensorSpec,
    classify,
    rows_of,
    stack_rows,
)
from ai_platform.serving.protocol import infer_type
from ai_platform.serving.protocol.v2_datamodels import (
    InferenceRequest,
    ModelMetadata,
    ModelReady,
    ServerMetadata,
    TensorMetadata,
)
from lakeapi.errors import InvalidRequest, NotFound
from lakekit.images import MAX_REQUEST_PIXELS

MAX_BATCH = 1024  # images (or rows) in one request by default, and rows in one forward pass
PLATFORM = "pytorch_torch_export"
SERVER_NAME = "lakehouse-model-server"
EXTENSIONS = ["binary_tensor_data"]


def _tensor_metadata(spec: TensorSpec) -> TensorMetadata:
    return TensorMetadata(
        name=spec.name, datatype=infer_type.datatype_of(spec.dtype), shape=list(spec.shape)
    )


@dataclass(frozen=True)
class RequestLimits:
    """What one request may ask of the model server (its ``--max-request-*`` arguments).

    Attributes:
        max_rows: images of a ``/predict`` request, batch rows of a tensor request; more is 400.
        max_pixels: pixels of all of a request's images together, from their headers before
            any is decoded; more is 413.
    """

    max_rows: int = MAX_BATCH
    max_pixels: int = MAX_REQUEST_PIXELS


class DataPlane:
    """The operations of one model server serving one model.

    Args:
        runner: the loaded model.
        batcher: the batcher whose forward pass is ``runner.forward``.
        name: the name clients address the model by.
        server_version: reported in the server metadata.
        limits: what one request may ask.
    """

    def __init__(
        self,
        runner: Runner,
        batcher: Batcher,
        name: str,
        server_version: str,
        limits: RequestLimits | None = None,
    ) -> None:
        self.limits = limits or RequestLimits()
        self.runner = runner
        self.batcher = batcher
        self.name = name
        self.version = str(runner.info.get("version"))
        self.server_version = server_version
        signature = runner.signature
        # The image codec, for image classifiers only; other models take tensors.
        self.images = Predictor(runner) if signature.is_image else None

    # -- health and metadata -------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """The app exists only once its model has loaded and passed its trial run."""
        return True

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(name=SERVER_NAME, version=self.server_version, extensions=EXTENSIONS)

    def check_model(self, name: str, version: str | None = None) -> None:
        """Raises NotFound unless ``name`` (and ``version``, if given) is the model served."""
        if name != self.name:
            raise NotFound(f"model {name!r} is not served here; this server serves {self.name!r}")
        if version is not None and version != self.version:
            raise NotFound(f"model {name!r} has no version {version!r}; it has {self.version!r}")

    def model_ready(self, name: str, version: str | None = None) -> ModelReady:
        self.check_model(name, version)
        return ModelReady(name=self.name, ready=True)

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        self.check_model(name, version)
        signature = self.runner.signature
        return ModelMetadata(
            name=self.name,
            versions=[self.version],
            platform=PLATFORM,
            inputs=[_tensor_metadata(s) for s in signature.inputs],
            outputs=[_tensor_metadata(s) for s in signature.outputs],
        )

    # -- inference ------------------------------------------------------------------------

    async def infer_arrays(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Checked input arrays through the batcher: one array per output.

        Raises:
            InvalidRequest: more rows than ``limits.max_rows``.
        """
        rows = len(arrays[0])
        if rows > self.limits.max_rows:
            raise InvalidRequest(
                f"the inputs hold {rows} rows; at most {self.limits.max_rows} a request"
            )
        return stack_rows(await self.batcher.predict(rows_of(arrays)))

    async def infer(
        self, name: str, version: str | None, body: bytes, header_length: str | None
    ) -> tuple[bytes, int | None]:
        """An OIP inference: the response body and its JSON header's length if binary.

        Raises:
            NotFound: not the model served here.
            InvalidRequest: a malformed request, or inputs that do not fit the signature.
        """
        self.check_model(name, version)
        request, binary = infer_type.parse_request(body, header_length)
        given = infer_type.input_arrays(request, binary)
        by_name = {s.name: s for s in self.runner.signature.inputs}
        for tensor in request.inputs:
            spec = by_name.get(tensor.name)
            want = infer_type.datatype_of(spec.dtype) if spec else None
            if spec is not None and tensor.datatype != want:
                raise InvalidRequest(
                    f"input {tensor.name!r} has datatype {tensor.datatype}, expected {want} "
                    f"of shape {list(spec.shape)}"
                )
        arrays = self.runner.check(given, datatypes_given=True)
        values = await self.infer_arrays(arrays)
        outputs = self.runner.signature.outputs
        wanted, binary_of = self._wanted_outputs(request, [o.name for o in outputs])
        chosen = [
            (spec.name, spec.dtype, value)
            for spec, value in zip(outputs, values, strict=True)
            if spec.name in wanted
        ]
        header: dict[str, Any] = {"model_name": self.name, "model_version": self.version}
        if request.id is not None:
            header["id"] = request.id
        return infer_type.encode_response(header, chosen, binary_of)

    @staticmethod
    def _wanted_outputs(
        request: InferenceRequest, names: list[str]
    ) -> tuple[set[str], dict[str, bool]]:
        """Which outputs to return, and which of them in binary.

        An output's own ``binary_data`` wins; else the request's ``binary_data_output``.
        """
        default = bool(request.parameters.get("binary_data_output", False))
        if request.outputs is None:
            return set(names), dict.fromkeys(names, default)
        unknown = sorted({o.name for o in request.outputs} - set(names))
        if unknown:
            raise InvalidRequest(f"unknown outputs {unknown}; the model returns {names}")
        binary = {o.name: bool(o.parameters.get("binary_data", default)) for o in request.outputs}
        return set(binary), binary

    async def predict_images(
        self, images: Sequence[np.ndarray] | np.ndarray
    ) -> list[dict[str, Any]]:
        """The image codec: decoded images to the design's answers (prediction, confidence,
        probabilities).

        Raises:
            InvalidRequest: the model is not an image classifier.
        """
        codec = self.image_codec()
        return codec.answer(await self.batcher.predict(codec.encode(images)))

    def image_codec(self) -> Predictor:
        """The image codec, or a 400 for a model that takes tensors."""
        if self.images is None:
            raise InvalidRequest(
                '"image"/"images" are for image models; this model takes tensors: send '
                '{"inputs": ...} (its inputs: GET /v2/models/' + self.name + ")"
            )
        return self.images

    async def predict_json(self, inputs: Any) -> dict[str, Any]:
        """The JSON convenience: ``[[...], ...]`` (one input) or ``{"name": [[...]]}``.

        Returns:
            ``outputs`` by name (nested lists); for classifiers also ``labels`` and, per row,
            ``prediction`` (the label), ``confidence`` and ``probabilities``.

        Raises:
            InvalidRequest: inputs that do not fit the signature.
        """
        signature = self.runner.signature
        names = [s.name for s in signature.inputs]
        if not isinstance(inputs, Mapping):
            if len(names) != 1:
                raise InvalidRequest(
                    f'the model takes several inputs {names}: give "inputs" as an object by name'
                )
            inputs = {names[0]: inputs}
        values = await self.infer_arrays(self.runner.check(inputs))
        if not all(np.isfinite(v).all() for v in values if v.dtype.kind == "f"):
            # JSON has no NaN or infinity; OIP's responses carry them, this answer cannot.
            raise InvalidRequest("the model's outputs for these inputs are not all finite")
        answer: dict[str, Any] = {
            "outputs": {
                spec.name: value.tolist()
                for spec, value in zip(signature.outputs, values, strict=True)
            }
        }
        if signature.is_classifier:
            labels = list(signature.labels)
            rows = classify(values[0], labels)
            answer["labels"] = labels
            answer["predictions"] = [
                {**row, "prediction": labels[row["prediction"]]} for row in rows
            ]
        return answer
