"""The multiple-testing correction against hand-computed Holm and BH values."""

import numpy as np
import pytest

from factroots.label.multitest import adjust


def test_holm_hand_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005,0.01,0.03,0.04 -> *4,*3,*2,*1 = 0.02,0.03,0.06,0.04 -> monotone 0.02,0.03,0.06,0.06
    assert np.allclose(adjust(p, "holm"), [0.03, 0.06, 0.06, 0.02])


def test_bh_hand_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005,0.01,0.03,0.04 -> *4/1,*4/2,*4/3,*4/4 = 0.02,0.02,0.04,0.04
    assert np.allclose(adjust(p, "bh"), [0.02, 0.04, 0.04, 0.02])


def test_nan_is_not_a_test_and_caps_at_one():
    out = adjust([np.nan, 0.5, 0.6], "holm")
    assert np.isnan(out[0]) and np.allclose(out[1:], [1.0, 1.0])
    assert np.isnan(adjust([np.nan], "bh")).all()


def test_null_pvalues_rarely_survive():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(2000, 52))
    hits = np.mean([(adjust(row, "holm") <= 0.05).any() for row in p])
    assert hits < 0.07  # family-wise error held near 5 %; uncorrected it would be ~93 %


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown correction"):
        adjust([0.1], "bonf")
