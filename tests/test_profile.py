"""keensight.profile: ImageNet logits to interest categories and a gallery's shares."""
from __future__ import annotations

import numpy as np
import pytest

from keensight import profile


def test_categories_of_clear_logits():
    logits = np.zeros((3, 1000))
    logits[0, 281], logits[1, 967], logits[2, 281] = 20, 20, 20  # tabby cat, espresso, tabby cat
    best, confidence = profile.assign_categories(logits)
    assert [profile.CATEGORIES[b] for b in best] == ["pets", "food & drink", "pets"]
    assert np.all(confidence > 0.99)
    shares = profile.gallery_profile(logits)
    assert shares["pets"] == pytest.approx(2 / 3) and shares["food & drink"] == pytest.approx(1 / 3)
    assert sum(shares.values()) == pytest.approx(1.0)
    np.testing.assert_allclose(profile.category_probabilities(logits).sum(axis=1), 1.0)


def test_no_images_give_zero_shares():
    shares = profile.gallery_profile(np.zeros((0, 1000), np.float32))
    assert set(shares) == set(profile.CATEGORIES) and not any(shares.values())


def test_bad_logits_are_refused():
    with pytest.raises(ValueError, match="logits: contains NaN"):
        profile.gallery_profile(np.full((2, 1000), np.nan))  # used to count as "pets"
    with pytest.raises(ValueError, match="logits: contains NaN or infinity"):
        profile.assign_categories(np.full((1, 1000), np.inf))
    with pytest.raises(ValueError, match="logits: expected 1000 columns"):
        profile.category_probabilities(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="logits: expected a 2-D array"):
        profile.category_probabilities(np.zeros(1000))
    with pytest.raises(TypeError, match="logits"):
        profile.category_probabilities([["a"] * 1000])
