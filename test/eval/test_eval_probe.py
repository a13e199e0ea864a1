"""The held-out ridge R^2 probe on synthetic data (numpy only)."""

from ahawam_ros.eval.grounding.probe import ridge_cv_r2
import numpy as np
import pytest


def test_a_linear_target_is_recovered():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 10))
    targets = features @ rng.normal(size=(10, 2)) + 3.0  # an offset the intercept absorbs
    assert ridge_cv_r2(features, targets) == pytest.approx([1.0, 1.0], abs=1e-3)


def test_a_low_rank_signal_in_many_features_is_recovered():
    # As a chunk (K * A = 224 values) carries a 2-D cube position: more features than samples.
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(100, 2))
    features = latent @ rng.normal(size=(2, 224)) + 0.05 * rng.normal(size=(100, 224))
    assert np.all(ridge_cv_r2(features, latent, folds=5) > 0.95)


def test_noise_carries_nothing():
    rng = np.random.default_rng(2)
    scores = ridge_cv_r2(rng.normal(size=(100, 224)), rng.normal(size=(100, 2)))
    assert np.all(scores <= 0.05) and np.all(scores > -0.5)


def test_a_partly_predictable_target_scores_in_between():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(200, 5))
    target = features[:, 0] + rng.normal(size=200)  # half the variance is noise
    assert 0.3 < ridge_cv_r2(features, target)[0] < 0.7


def test_constant_features_and_targets():
    rng = np.random.default_rng(4)
    features = np.concatenate([rng.normal(size=(30, 3)), np.ones((30, 2))], axis=1)
    targets = np.stack([features[:, 0], np.full(30, 2.0)], axis=1)
    scores = ridge_cv_r2(features, targets, folds=3)
    assert scores[0] == pytest.approx(1.0, abs=1e-3) and np.isnan(scores[1])


@pytest.mark.parametrize('count, folds', [(10, 1), (3, 4), (3, 2)])
def test_bad_folds_are_rejected(count, folds):
    with pytest.raises(ValueError, match='folds'):
        ridge_cv_r2(np.zeros((count, 2)), np.zeros(count), folds=folds)


def test_non_finite_input_is_rejected():
    features = np.zeros((10, 2))
    features[3, 1] = np.nan
    with pytest.raises(ValueError, match='finite'):
        ridge_cv_r2(features, np.arange(10.0))
