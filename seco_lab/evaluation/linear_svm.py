"""SeCo's linear protocol: standardised video features, liblinear SVM (squared hinge, L2), C=1.

``C="cv"`` chooses C instead by cross-validation on the train split alone (folds keep the
videos of one group together when groups are known, e.g. UCF101's actor/scene groups), for
small datasets where the paper's C=1 over-fits; the test split is never looked at.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from seco_lab.evaluation.metrics import top1_accuracy

SVM_C_GRID = (1e-5, 1e-4, 0.001, 0.01, 0.1, 1.0, 10.0)


def record_groups(records: Sequence[Any]) -> np.ndarray | None:
    """The ``group`` of every record (N,), or None when any record has none (layout without groups)."""
    groups = [record.group for record in records]
    return None if None in groups else np.array(groups)


def _svm(C: float, standardize: bool, max_iter: int, seed: int) -> Pipeline | LinearSVC:
    svm = LinearSVC(C=C, loss="squared_hinge", penalty="l2", dual="auto", max_iter=max_iter, random_state=seed)
    return make_pipeline(StandardScaler(), svm) if standardize else svm


def _fit(classifier: Pipeline | LinearSVC, features: np.ndarray, labels: np.ndarray) -> bool:
    """Fit in place; True when liblinear converged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(features, labels)
    return not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def choose_svm_c(features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None,
                 grid: tuple[float, ...] = SVM_C_GRID, folds: int = 3, standardize: bool = True,
                 max_iter: int = 5000, seed: int = 0,
                 class_names: Sequence[str] | None = None) -> tuple[float, dict[float, float]]:
    """The C of ``grid`` with the best mean validation top-1 over ``folds`` stratified folds of
    the train split (N, D); folds never split a group when ``groups`` (N,) is given, so every
    class then needs train videos from 2 groups or more, and there are at most as many folds as
    the class with the fewest groups has. Every fold is fitted on videos of every class (fewer
    folds are tried when the grouped split cannot manage it). Ties go to the smaller C (stronger
    regularisation). Returns (C, {C: mean validation top-1}). ``class_names`` (indexed by label)
    name the classes in the errors about too few videos or groups."""
    labels = np.asarray(labels)
    if not grid or any(c <= 0 for c in grid):
        raise ValueError(f"the C grid must hold positive values, got {grid}")
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    classes, class_sizes = np.unique(labels, return_counts=True)

    def named(label: int) -> str:
        return str(class_names[label]) if class_names is not None else f"label {label}"

    too_small = [f"{named(label)}: {size}" for label, size in zip(classes.tolist(), class_sizes.tolist()) if size < 2]
    if not labels.size or too_small:
        found = f"train videos of the classes with fewer: {', '.join(too_small)}" if too_small else "no train videos"
        raise ValueError(f"choosing C by cross-validation needs at least 2 train videos per class; {found}")
    num_folds = min(folds, int(class_sizes.min()))
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != labels.shape:
            raise ValueError(f"groups {groups.shape} must match labels {labels.shape}")
        class_groups = {label: np.unique(groups[labels == label]) for label in classes.tolist()}
        one_group = [f"{named(label)} (all in {names[0]})" for label, names in class_groups.items() if len(names) < 2]
        if one_group:
            raise ValueError(f"choosing C by cross-validation holds out whole groups (videos that share actors and "
                             f"scene), so every class needs train videos from at least 2 groups; these have one: "
                             f"{', '.join(one_group)}. Give C as a number instead (1 is the paper's)")
        num_folds = min(num_folds, min(len(names) for names in class_groups.values()))
    splits = _folds_fitted_on_every_class(features, labels, groups, num_folds, seed, named)
    fold_scores: dict[float, list[float]] = {C: [] for C in grid}
    for fit_rows, check_rows in splits:
        fit_x, check_x = features[fit_rows], features[check_rows]
        if standardize:  # one scaler per fold, shared by every C
            scaler = StandardScaler().fit(fit_x)
            fit_x, check_x = scaler.transform(fit_x), scaler.transform(check_x)
        for C in grid:
            classifier = _svm(C, standardize=False, max_iter=max_iter, seed=seed)
            _fit(classifier, fit_x, labels[fit_rows])
            fold_scores[C].append(top1_accuracy(classifier.predict(check_x), labels[check_rows]))
    scores = {C: float(np.mean(values)) for C, values in fold_scores.items()}
    best = max(scores.values())
    chosen = min(C for C, score in scores.items() if score == best)
    _warn_at_grid_edge(chosen, scores)
    return chosen, scores


def _folds_fitted_on_every_class(features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, num_folds: int,
                                 seed: int, named: Callable[[int], str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds (grouped when ``groups`` is given) whose fitting rows hold every class:
    ``num_folds`` of them, or fewer (down to 2) when a grouped split puts all of a class's groups
    in one held-out fold, which would leave that fold's classifier without the class."""
    classes = np.unique(labels)
    for count in range(num_folds, 1, -1):
        if groups is None:
            splits = list(StratifiedKFold(count, shuffle=True, random_state=seed).split(features, labels))
        else:
            splits = list(StratifiedGroupKFold(count, shuffle=True, random_state=seed).split(features, labels, groups))
        missing = [label for fit_rows, _ in splits for label in np.setdiff1d(classes, labels[fit_rows]).tolist()]
        if not missing:
            return splits
    raise ValueError(f"choosing C by cross-validation: no split of the train videos into folds by group leaves "
                     f"videos of every class to fit each fold on ({', '.join(sorted({named(m) for m in missing}))} "
                     "missing from one); give C as a number instead (1 is the paper's)")


def _warn_at_grid_edge(chosen: float, scores: dict[float, float]) -> None:
    """Warn when the chosen C is the grid's smallest or largest and beat its neighbour: the best C
    may lie beyond the grid."""
    ordered = sorted(scores)
    if len(ordered) < 2 or chosen not in (ordered[0], ordered[-1]):
        return
    edge, neighbour = ("smallest", ordered[1]) if chosen == ordered[0] else ("largest", ordered[-2])
    if scores[chosen] > scores[neighbour]:
        warnings.warn(f"linear-svm: cross-validation chose C={chosen:g}, the {edge} of the grid "
                      f"({', '.join(f'{C:g}' for C in ordered)}), over C={neighbour:g} ({scores[chosen]:.1f} % "
                      f"against {scores[neighbour]:.1f} % on held-out train folds): the best C may lie beyond the "
                      "grid", stacklevel=3)


def linear_svm_protocol(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                        test_labels: np.ndarray, C: float | str = 1.0, standardize: bool = True,
                        max_iter: int = 5000, seed: int = 0, train_groups: np.ndarray | None = None,
                        class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit a one-vs-rest linear SVM on train features (N, D), report test top-1 (percent).

    Features are standardised with the train split's mean/std (as SeCo does before liblinear).
    C: a positive number (the paper: 1), or ``"cv"`` to choose it with ``choose_svm_c`` on the
    train split (``train_groups`` (N,) keeps groups within one fold).
    Returns {"top1", "predictions" (M,), "converged", "C", and with "cv" "cv_top1" per C}.
    """
    train_features = np.asarray(train_features, dtype=np.float64)
    test_features = np.asarray(test_features, dtype=np.float64)
    train_labels = np.asarray(train_labels)
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise ValueError(f"features must be (N, D); got train {train_features.shape}, test {test_features.shape}")
    result: dict[str, Any] = {}
    if isinstance(C, str):
        if C != "cv":
            raise ValueError(f"C must be a positive number or 'cv', got {C!r}")
        C, result["cv_top1"] = choose_svm_c(train_features, train_labels, train_groups, standardize=standardize,
                                            max_iter=max_iter, seed=seed, class_names=class_names)
    elif not C > 0:
        raise ValueError(f"C must be a positive number or 'cv', got {C!r}")
    classifier = _svm(float(C), standardize, max_iter, seed)
    converged = _fit(classifier, train_features, train_labels)
    predictions = classifier.predict(test_features)
    return {"top1": top1_accuracy(predictions, test_labels), "predictions": predictions, "converged": converged,
            "C": float(C), **result}
