import numpy as np

from qa_common.onnx_export import parity_difference


def test_parity_difference_is_the_max_over_real_tokens():
    expected = np.array([[1.0, 2.0, -5.0], [0.5, 0.25, 9.0]], dtype=np.float32)
    actual = np.array([[1.0, 2.5, 7.0], [0.75, 0.25, -9.0]], dtype=np.float32)
    mask = np.array([[True, True, False], [True, True, False]])
    assert parity_difference(expected, actual, mask) == 0.5
    assert parity_difference(expected, actual, np.ones_like(mask)) == 18.0


def test_non_finite_logits_fail_parity_instead_of_vanishing_from_the_max():
    expected = np.array([[1.0, 2.0]], dtype=np.float32)
    mask = np.array([[True, True]])
    for bad in (np.nan, np.inf, -np.inf):
        actual = np.array([[1.0, bad]], dtype=np.float32)
        assert parity_difference(expected, actual, mask) == float("inf")
        assert parity_difference(actual, expected, mask) == float("inf")
    # NaN on a padding position is not a token: it does not count.
    assert parity_difference(expected, np.array([[1.0, np.nan]], dtype=np.float32), np.array([[True, False]])) == 0.0
