"""lstm_qa against the contract every architecture meets (qa_common.testing.contract)."""

from qa_common.testing.contract import AdapterContract


class TestLstmContract(AdapterContract):
    adapter_name = "lstm_qa"
    preset = "tiny"
    # LSTMs on random embeddings learn slower per step than a transformer: a larger step, more of them.
    learning_overrides = {"learning_rate": 1e-2, "steps": 60}
