"""bert_qa against the contract every architecture meets (qa_common.testing.contract)."""

from qa_common.testing.contract import AdapterContract


class TestBertContract(AdapterContract):
    adapter_name = "bert_qa"
    preset = "tiny"
