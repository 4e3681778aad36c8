"""A model that cannot be found is one clear line and exit 2, for every command that takes a model."""

import pytest

from qa_common.cli import main
from qa_common.testing.contract import VALIDATION_SAMPLE, sample_directory


@pytest.mark.parametrize("command", ["evaluate", "benchmark"])
def test_an_unknown_registered_model_or_missing_directory_is_named_in_one_line(command, tmp_path, monkeypatch,
                                                                                capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = str(sample_directory() / VALIDATION_SAMPLE)
    extra = ["--no-log-to-run"] if command == "benchmark" else []
    for model, expected in (("models:/no-such-model@champion", "Registered Model with name=no-such-model not found"),
                            (str(tmp_path / "missing"), "no such model directory")):
        assert main([command, model, data, *extra]) == 2
        err = capsys.readouterr().err
        ours = [line for line in err.splitlines() if line.startswith(f"squad-qa {command}: error:")]
        assert len(ours) == 1 and model in ours[0] and expected in ours[0], err
        assert "Traceback" not in err
