"""Test suites shared by the architecture packages (they need pytest, a development dependency).

``qa_common.testing.contract.AdapterContract`` is the one contract every adapter is checked against.
"""
