from pathlib import Path

import mlflow

from qa_common.tracking import runs


def test_inside_mlflow_run_the_job_logs_into_the_project_run_of_another_experiment(tmp_path: Path, monkeypatch,
                                                                                    capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # What `mlflow run` without --experiment-name does: a run in "Default", its id in MLFLOW_RUN_ID.
    project_run = mlflow.MlflowClient().create_run(experiment_id="0")
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run.info.run_id)
    with runs.job_run("squad-qa", run_name="x", resume_run_id=None, tags={"adapter": "a"},
                      system_metrics=False) as run_id:
        runs.log_metrics({"exact": 1.0})
    assert run_id == project_run.info.run_id
    assert mlflow.get_run(run_id).data.metrics["exact"] == 1.0
    assert "put this run in experiment 'Default', not 'squad-qa'" in capsys.readouterr().err
