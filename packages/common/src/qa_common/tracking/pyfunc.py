"""The MLflow pyfunc wrapper of the served contract (qa_common.serving), shared by every architecture."""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from qa_common.serving import OUTPUT_FIELDS, InvalidRequestError, QAService


class SquadQAPythonModel(mlflow.pyfunc.PythonModel):
    """Loads the saved model from the ``model`` artifact on ``runtime`` ("torch" or "onnx").

    ``mlflow.pyfunc.load_model(uri, model_config={"device": "cuda"})`` moves a PyTorch model to a device.
    """

    def __init__(self, runtime: str = "torch"):
        self.runtime = runtime

    def load_context(self, context):
        config = context.model_config or {}
        self.service = QAService.from_directory(
            context.artifacts["model"], runtime=self.runtime, device=config.get("device")
        )

    def predict(self, context, model_input, params=None):
        try:
            answers = self.service.answer(_columns_as_given(model_input))
        except InvalidRequestError as error:
            raise MlflowException(f"invalid request: {error}", error_code=INVALID_PARAMETER_VALUE) from error
        return pd.DataFrame(answers, columns=list(OUTPUT_FIELDS))


def _columns_as_given(model_input):
    """Columns ``{"question": [...], "context": [...]}`` reach ``predict`` as one row of lists (MLflow's schema
    enforcement for untyped columns); hand them to the contract as the columns they were."""
    if isinstance(model_input, pd.DataFrame) and len(model_input) == 1 and len(model_input.columns):
        row = model_input.iloc[0]
        if all(isinstance(value, list) for value in row):
            return dict(row.items())
    return model_input
