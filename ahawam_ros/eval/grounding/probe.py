"""
Linear probes: how much of a target a set of features carries, measured on held-out samples.

Shapes: N samples, F features, T targets.

`ridge_cv_r2` fits a ridge regression (closed form, numpy) on k - 1 folds and predicts the
held-out fold, for every fold; R^2 is computed once over the pooled held-out predictions. The
ridge strength of each fold is chosen on that fold's training samples alone, by their exact
leave-one-out error, so no held-out sample ever influences its own prediction. Features are
standardised with the training fold's statistics: a probe must not favour a feature for its
units (radians next to normalised gripper openings).
"""

from typing import Sequence, Tuple

import numpy as np

ALPHAS: Tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 6, 19))
_TINY = 1e-12  # variance below which a feature or a target counts as constant


def _standardise(train: np.ndarray, test: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Centre and scale both by the training statistics; constant features become zeros."""
    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale = np.where(scale > _TINY, scale, np.inf)  # a constant feature carries nothing
    return (train - mean) / scale, (test - mean) / scale


def _fit_predict(features: np.ndarray, targets: np.ndarray, test: np.ndarray,
                 alphas: Sequence[float]) -> np.ndarray:
    """
    Ridge in its dual form with the strength picked by exact leave-one-out error.

    Parameters
    ----------
    features : np.ndarray
        (n, F) standardised training features.
    targets : np.ndarray
        (n, T) training targets.
    test : np.ndarray
        (m, F) standardised held-out features.
    alphas : sequence of float
        Candidate ridge strengths.

    Returns
    -------
    np.ndarray
        (m, T) predictions.

    """
    offset = targets.mean(axis=0)
    centred = targets - offset  # (n, T)
    values, vectors = np.linalg.eigh(features @ features.T)  # Gram (n, n) = U diag(s) U^T
    values = np.clip(values, 0.0, None)
    projected = vectors.T @ centred  # (n, T)
    best, best_error = None, np.inf
    for alpha in alphas:
        shrink = 1.0 / (values + alpha)  # (n,)
        dual = vectors @ (shrink[:, None] * projected)  # (n, T) = (G + a I)^-1 y
        # I - H = a (G + a I)^-1 - 11^T / n, the intercept fitted (centring leaves G 1 = 0);
        # the leave-one-out residual of sample i is (I - H) y at i over (I - H)_ii.
        diagonal = alpha * ((vectors ** 2) @ shrink) - 1.0 / len(features)  # (n,)
        error = float(np.sum((alpha * dual / diagonal[:, None]) ** 2))
        if error < best_error:
            best, best_error = dual, error
    return offset + test @ (features.T @ best)  # (m, T)


def ridge_cv_r2(features: np.ndarray, targets: np.ndarray, folds: int = 5, seed: int = 0,
                alphas: Sequence[float] = ALPHAS) -> np.ndarray:
    """
    Return the k-fold cross-validated R^2 of each target from a ridge regression.

    R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2 over the pooled held-out predictions:
    1 for a target the features determine linearly, about 0 or below for one they do not
    carry (a held-out prediction can be worse than the mean).

    Parameters
    ----------
    features : np.ndarray
        (N, F) or (N, ...) features (flattened per sample).
    targets : np.ndarray
        (N, T) or (N,) targets.
    folds : int
        k, at least 2 and at most N, leaving at least 2 training samples in each fold.
    seed : int
        Seeds the shuffle of the samples into folds.
    alphas : sequence of float
        Candidate ridge strengths (on standardised features).

    Returns
    -------
    np.ndarray
        (T,) R^2 per target; NaN for a constant target.

    """
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    targets = np.asarray(targets, dtype=np.float64)
    targets = targets[:, None] if targets.ndim == 1 else targets
    count = len(features)
    if len(targets) != count:
        raise ValueError(f'features and targets differ in N: {count} vs {len(targets)}')
    if not 2 <= folds <= count or count - -(-count // folds) < 2:
        raise ValueError(f'need 2 <= folds <= N and >= 2 training samples a fold, got '
                         f'{folds} folds of N={count}')
    if not (np.all(np.isfinite(features)) and np.all(np.isfinite(targets))):
        raise ValueError('features and targets must be finite')
    order = np.random.default_rng(seed).permutation(count)
    predictions = np.empty_like(targets)
    for held in np.array_split(order, folds):
        train = np.setdiff1d(order, held)
        train_x, test_x = _standardise(features[train], features[held])
        predictions[held] = _fit_predict(train_x, targets[train], test_x, alphas)
    total = np.sum((targets - targets.mean(axis=0)) ** 2, axis=0)
    residual = np.sum((targets - predictions) ** 2, axis=0)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(total > _TINY * count, 1.0 - residual / total, np.nan)
