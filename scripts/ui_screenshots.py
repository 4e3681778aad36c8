"""Open the MLflow UI in headless Chromium on the experiment and the registered champion, save screenshots, and
check that the runs and the champion show up as a person would see them.

    python scripts/ui_screenshots.py [--experiment squad-qa] [--model squad-qa] [--out outputs/ui]

Reads the store of MLFLOW_TRACKING_URI (default sqlite:///mlflow.db), serves it with `mlflow server` on
127.0.0.1, and renders three pages with Chromium (`apt-get install chromium`, Debian's package): the
experiment's runs, the registered model's versions, and the champion version. Each page's rendered text must
name what it is about (run names; the model, its `champion` alias and version), else the script exits 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from qa_common.tracking.servers import ServerDidNotStart, free_port, running


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no Chromium found: apt-get install chromium (Debian) or put chrome on PATH")


def render(browser: str, url: str, png: Path) -> str:
    """Screenshot of ``url`` into ``png``; returns the rendered DOM (after the page's scripts ran)."""
    common = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--window-size=1600,1000", "--virtual-time-budget=20000"]
    subprocess.run([*common, f"--screenshot={png}", url], check=True, capture_output=True, timeout=120)
    return subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, text=True,
                          timeout=120).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="squad-qa")
    parser.add_argument("--model", default="squad-qa")
    parser.add_argument("--out", default="outputs/ui")
    args = parser.parse_args()
    uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        print(f"no experiment {args.experiment!r} in {uri}", file=sys.stderr)
        return 1
    runs = client.search_runs([experiment.experiment_id], max_results=20)
    champion = client.get_model_version_by_alias(args.model, "champion")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pages = {
        "experiment_runs.png": (f"{base}/#/experiments/{experiment.experiment_id}/runs",
                                [run.info.run_name for run in runs[:3]]),
        "registered_model.png": (f"{base}/#/models/{args.model}", [args.model, "champion"]),
        "champion_version.png": (f"{base}/#/models/{args.model}/versions/{champion.version}",
                                 [f"Version {champion.version}", "champion",
                                  client.get_run(champion.run_id).info.run_name]),
    }
    missing = []
    try:
        with running(["server", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port),
                      "--workers", "1"], f"{base}/health"):
            for name, (url, expected) in pages.items():
                dom = render(browser, url, out / name)
                absent = [text for text in expected if text not in dom]
                shown = ", ".join(repr(text) for text in expected if text in dom)
                print(f"{out / name}: {(out / name).stat().st_size} bytes; {url}; shows {shown}"
                      + (f"; MISSING {absent}" if absent else ""))
                missing += absent
    except ServerDidNotStart as error:
        print(error, file=sys.stderr)
        return 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
