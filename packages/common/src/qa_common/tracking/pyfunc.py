"""The MLflow pyfunc wrapper of the served contract (qa_common.serving), shared by every architecture."""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from qa_common.serving import OUTPUT_FIELDS, InvalidRequestError, QAService, RequestTooLargeError, ServingLimits

TOO_LARGE = "request too large"


class RequestRefused(MlflowException):
    """A refused request, answered with its own message only.

    MLflow's scoring server rewrites the message of an MlflowException raised by ``predict`` into
    ``f"Failed to predict data '{data}'. Error: {message}"``: for ``inputs`` requests ``data`` is the request
    itself, so a refused 50 MB context came back as a 50 MB answer. This exception keeps its first message.

    The HTTP status: 413 (Content Too Large) for a request over a limit (its message starts "request too
    large"), else the error code's in MLflow's ``ERROR_CODE_TO_HTTP_STATUS`` (INVALID_PARAMETER_VALUE: 400).
    No error code in that table maps to 413 (RESOURCE_EXHAUSTED and REQUEST_LIMIT_EXCEEDED map to 429, "retry
    later", which a request that will never fit should not get); MLflow's scoring server answers with
    ``get_http_status_code()`` of the exception ``predict`` raised, which this class overrides.
    """

    def get_http_status_code(self) -> int:
        return 413 if self.message.startswith(TOO_LARGE) else super().get_http_status_code()

    @property
    def message(self) -> str:
        return self.__dict__["_message"]

    @message.setter
    def message(self, value: str) -> None:
        self.__dict__.setdefault("_message", value)


class SquadQAPythonModel(mlflow.pyfunc.PythonModel):
    """Loads the saved model from the ``model`` artifact on ``runtime`` ("torch" or "onnx").

    ``mlflow.pyfunc.load_model(uri, model_config={"device": "cuda"})`` moves a PyTorch model to a device. The
    request limits (`qa_common.serving.ServingLimits`) come from model config keys of their names or from the
    ``SQUAD_QA_MAX_*`` environment variables, read when the model is loaded (when `mlflow models serve` starts).
    Model config keys named like the fields of `qa_common.extractive.InferenceOptions` (``precision``,
    ``max_batch_tokens``, ``compile``, ``compile_mode``, ``cuda_graphs``, ...) set how it answers.
    """

    def __init__(self, runtime: str = "torch"):
        self.runtime = runtime

    def load_context(self, context):
        config = context.model_config or {}
        self.service = QAService.from_directory(
            context.artifacts["model"], runtime=self.runtime, device=config.get("device"),
            limits=ServingLimits.from_settings(config), inference=inference_options(config),
        )

    def predict(self, context, model_input, params=None):
        try:
            answers = self.service.answer(_columns_as_given(model_input))
        except RequestTooLargeError as error:
            raise RequestRefused(f"{TOO_LARGE}: {error}", error_code=INVALID_PARAMETER_VALUE) from error
        except InvalidRequestError as error:
            raise RequestRefused(f"invalid request: {error}", error_code=INVALID_PARAMETER_VALUE) from error
        return pd.DataFrame(answers, columns=list(OUTPUT_FIELDS))


def inference_options(config):
    """`InferenceOptions` from the pyfunc model config's keys of their names (the rest of the config is not theirs)."""
    import dataclasses

    from qa_common.config import build_config
    from qa_common.extractive import InferenceOptions

    names = {field.name for field in dataclasses.fields(InferenceOptions)}
    return build_config(InferenceOptions, {key: value for key, value in config.items() if key in names})


def _columns_as_given(model_input):
    """Columns ``{"question": [...], "context": [...]}`` reach ``predict`` as one row of lists (MLflow's schema
    enforcement for untyped columns); hand them to the contract as the columns they were."""
    if isinstance(model_input, pd.DataFrame) and len(model_input) == 1 and len(model_input.columns):
        row = model_input.iloc[0]
        if all(isinstance(value, list) for value in row):
            return dict(row.items())
    return model_input
