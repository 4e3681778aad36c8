"""squad-qa's shared SQuAD core: readers, official scoring, decoding, one job, MLflow tracking and serving."""

__version__ = "0.1.0"
