"""Linear SVM, linear probe, kNN and retrieval on hand-made features."""

import itertools
import re
import warnings

import numpy as np
import pytest
import torch

from seco_lab.evaluation.knn import knn_predict, knn_protocol
from seco_lab.evaluation.linear import linear_protocol
from seco_lab.evaluation.linear_svm import SVM_C_GRID, choose_svm_c, linear_svm_protocol
from seco_lab.evaluation.metrics import chance_accuracy, confusion_matrix, majority_class_accuracy, top1_accuracy
from seco_lab.evaluation.retrieval import (
    certain_recall_k, chance_recall_at_k, recall_at_k, retrieval_neighbours, retrieval_protocol,
)


pytestmark = pytest.mark.usefixtures("single_thread")


NUM_CLASSES = 4
CHANCE = 100.0 / NUM_CLASSES


def separable(seed, per_class=20, dim=16, views=None):
    """Class c lives around +5 on axis c (plus a shared offset), noise 0.5: linearly separable."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(NUM_CLASSES), per_class)
    shape = (len(labels), dim) if views is None else (len(labels), views, dim)
    features = rng.normal(0, 0.5, shape) + 3.0
    features[..., :NUM_CLASSES] += 5.0 * np.eye(NUM_CLASSES)[labels][:, None, :] if views else 5.0 * np.eye(NUM_CLASSES)[labels]
    order = rng.permutation(len(labels))
    return features[order].astype(np.float32), labels[order]


def shuffled(seed, n=80, dim=16):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, NUM_CLASSES, n)


def run_classifier(name, train_x, train_y, test_x, test_y):
    if name == "linear-svm":
        return linear_svm_protocol(train_x, train_y, test_x, test_y)
    if name == "linear":
        return linear_protocol(train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, epochs=30)
    return knn_protocol(train_x, train_y, test_x, test_y, k=10, num_classes=NUM_CLASSES)


@pytest.mark.parametrize("name", ["linear-svm", "linear", "knn"])
def test_separable_features_reach_100(name):
    train_x, train_y = separable(0)
    test_x, test_y = separable(1)
    result = run_classifier(name, train_x, train_y, test_x, test_y)
    assert result["top1"] == 100.0
    assert result["predictions"].shape == test_y.shape


@pytest.mark.parametrize("name", ["linear-svm", "linear", "knn"])
def test_shuffled_labels_stay_near_chance(name):
    scores = []
    for seed in range(5):
        train_x, train_y = shuffled(2 * seed)
        test_x, test_y = shuffled(2 * seed + 1)
        scores.append(run_classifier(name, train_x, train_y, test_x, test_y)["top1"])
    assert np.mean(scores) < CHANCE + 15


def test_linear_averages_softmax_over_test_views():
    train_x, train_y = separable(0, views=3)
    test_x, test_y = separable(1, views=3)
    test_x[:, 1:] = np.random.default_rng(5).normal(0, 0.5, test_x[:, 1:].shape) + 3.0  # two uninformative views
    result = linear_protocol(train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, epochs=30)
    assert result["top1"] == 100.0


def test_knn_weights_votes_by_similarity():
    train = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    labels = np.array([0, 1, 1])
    query = np.array([[1.0, 0.05]])
    # two neighbours of class 1 are far (cos ~0.1), one of class 0 is near: a sharp temperature trusts the near one
    assert knn_protocol(train, labels, query, np.array([0]), k=3, temperature=0.05, num_classes=2)["top1"] == 100.0
    assert knn_protocol(train, labels, query, np.array([0]), k=3, temperature=100.0, num_classes=2)["top1"] == 0.0


def test_knn_scores_stay_on_the_features_device():
    # "meta" stands in for a GPU: before, the votes were made on the CPU whatever the features' device
    train = torch.randn(6, 3, device="meta")
    test = torch.randn(2, 3, device="meta")
    scores = knn_predict(train, torch.tensor([0, 1, 2, 0, 1, 2]), test, num_classes=3, k=4)
    assert scores.device == train.device and scores.shape == (2, 3)


def slow_recall(train_x, train_y, test_x, test_y, k):
    train_mean = train_x.mean(axis=0)
    train_x, test_x = train_x - train_mean, test_x - train_mean
    hits = 0
    for query, label in zip(test_x, test_y):
        sims = []
        for index, item in enumerate(train_x):
            sims.append((-(query @ item) / (np.linalg.norm(query) * np.linalg.norm(item)), index))
        top = [train_y[index] for _, index in sorted(sims)[:k]]
        hits += label in top
    return 100.0 * hits / len(test_y)


def test_retrieval_recall_matches_slow_reference():
    rng = np.random.default_rng(3)
    train_x, train_y = rng.normal(size=(60, 8)), rng.integers(0, 6, 60)
    test_x, test_y = rng.normal(size=(25, 8)) + 0.3, rng.integers(0, 6, 25)
    result = retrieval_protocol(train_x, train_y, test_x, test_y)
    for k in (1, 5, 10, 20, 50):
        assert result[f"R@{k}"] == pytest.approx(slow_recall(train_x, train_y, test_x, test_y, k))
    assert "R@k_capped_to" not in result


def test_retrieval_caps_k_and_averages_clip_views():
    rng = np.random.default_rng(4)
    train_x, train_y = rng.normal(size=(7, 5, 4)), rng.integers(0, 3, 7)
    test_x, test_y = rng.normal(size=(4, 5, 4)), rng.integers(0, 3, 4)
    result = retrieval_protocol(train_x, train_y, test_x, test_y, ks=(1, 5, 50))
    assert result["R@k_capped_to"] == 7
    assert result["R@50"] == pytest.approx(100.0 * np.mean(np.isin(test_y, train_y)))
    assert result["R@1"] == pytest.approx(slow_recall(train_x.mean(1), train_y, test_x.mean(1), test_y, 1))
    assert result["neighbours"].shape == (4, 7)


def slow_chance_recall(train_y, test_y, k):
    """Every set of k train videos a ranking can put first is equally likely: count the hits."""
    hits = total = 0
    for label in test_y:
        for chosen in itertools.combinations(range(len(train_y)), min(k, len(train_y))):
            hits += any(train_y[index] == label for index in chosen)
            total += 1
    return 100.0 * hits / total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chance_recall_matches_counting_every_top_k(seed):
    rng = np.random.default_rng(seed)
    train_y, test_y = rng.integers(0, 3, 8), rng.integers(0, 4, 5)  # class 3 has no train videos
    chances = chance_recall_at_k(train_y, test_y, (1, 2, 4, 7, 8, 20))
    for k, chance in chances.items():
        assert chance == pytest.approx(slow_chance_recall(train_y, test_y, k))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certain_recall_k_is_where_every_top_k_hits(seed):
    rng = np.random.default_rng(seed)
    train_y, test_y = rng.integers(0, 3, 9), rng.integers(0, 3, 6)
    certain = certain_recall_k(train_y, test_y)
    reachable = 100.0 * np.mean(np.isin(test_y, train_y))
    assert slow_chance_recall(train_y, test_y, certain) == pytest.approx(reachable)
    assert slow_chance_recall(train_y, test_y, certain - 1) < reachable
    assert certain_recall_k(train_y, np.array([7])) is None


def test_retrieval_reports_chance_and_where_recall_is_certain():
    rng = np.random.default_rng(5)
    train_x, train_y = rng.normal(size=(12, 4)), np.repeat([0, 1, 2], 4)
    test_x, test_y = rng.normal(size=(6, 4)), np.array([0, 0, 1, 1, 2, 2])
    result = retrieval_protocol(train_x, train_y, test_x, test_y, ks=(1, 5, 9, 10))
    assert result["chance_R@1"] == pytest.approx(100 / 3)
    assert result["R@k_certain_from"] == 9  # 12 videos, 4 of each class: any 9 hold one of every class
    assert result["R@9"] == result["chance_R@9"] == pytest.approx(100.0)
    assert "R@k_certain_from" not in retrieval_protocol(train_x, train_y, test_x, test_y, ks=(1, 5))


def test_retrieval_ranks_a_query_alike_alone_or_among_other_queries():
    """Centring by the train mean: a query's neighbours do not depend on the other test videos (a
    lone query centred by its own mean would be the zero vector, with no nearest train video)."""
    train_x, train_y = separable(0, per_class=5)
    test_x, test_y = separable(1, per_class=3)
    together = retrieval_protocol(train_x, train_y, test_x, test_y, ks=(1, 5))
    for query in range(len(test_y)):
        alone = retrieval_protocol(train_x, train_y, test_x[query:query + 1], test_y[query:query + 1], ks=(1, 5))
        np.testing.assert_array_equal(alone["neighbours"][0], together["neighbours"][query])
        np.testing.assert_allclose(alone["similarities"][0], together["similarities"][query], rtol=1e-6)  # float32
        assert alone["R@1"] == 100.0 * (train_y[together["neighbours"][query, 0]] == test_y[query])
    assert together["R@1"] == 100.0


def test_retrieval_centres_both_splits_by_the_train_mean():
    train = np.array([[10.0, 1.0], [10.0, -1.0]])
    test = np.array([[10.0, 0.9], [14.0, 0.9]])  # both above the train mean: closer to train video 0
    neighbours, similarities = retrieval_neighbours(train, test, k=2)
    np.testing.assert_array_equal(neighbours, [[0, 1], [0, 1]])
    centred = test - train.mean(axis=0)
    expected = centred[:, 1] / np.linalg.norm(centred, axis=1)  # cosine with the centred train video 0, (0, 1)
    np.testing.assert_allclose(similarities[:, 0], expected)


def dense_neighbours(train_x, test_x, k, center=True):
    """Every test-train cosine similarity at once, fully sorted (ties: lower train index first)."""
    if center:
        train_mean = train_x.mean(axis=0)
        train_x, test_x = train_x - train_mean, test_x - train_mean
    train_units = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    test_units = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    similarity = test_units @ train_units.T
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(similarity, order, axis=1)


@pytest.fixture
def chunk_rows(monkeypatch):
    """The number of test rows each chunk of ``retrieval_neighbours`` ranks, in order."""
    from seco_lab.evaluation import retrieval

    rows = []
    real_top_k_columns = retrieval._top_k_columns

    def recording_top_k_columns(similarity, k):
        rows.append(similarity.shape[0])
        return real_top_k_columns(similarity, k)

    monkeypatch.setattr(retrieval, "_top_k_columns", recording_top_k_columns)
    return rows


@pytest.mark.parametrize("k", [1, 3, 7, 40, 41, 100])
def test_retrieval_neighbours_ranked_in_chunks_match_a_dense_ranking(chunk_rows, k):
    rng = np.random.default_rng(7)
    train_x, test_x = rng.normal(size=(41, 12)), rng.normal(size=(23, 12)) + 0.2
    neighbours, similarities = retrieval_neighbours(train_x, test_x, k, chunk_size=5)
    expected_neighbours, expected_similarities = dense_neighbours(train_x, test_x, min(k, 41))
    np.testing.assert_array_equal(neighbours, expected_neighbours)
    np.testing.assert_allclose(similarities, expected_similarities, rtol=1e-5, atol=1e-6)
    assert chunk_rows == [5, 5, 5, 5, 3]


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 12])
def test_retrieval_neighbours_put_the_lower_train_index_first_among_equal_similarities(chunk_rows, k):
    """Train videos on the axes, several per axis: a test video is equally similar to all of an
    axis's videos (exactly, in any precision), so ties cross the k-th place in most rows."""
    rng = np.random.default_rng(8)
    axes = rng.integers(0, 4, 12)  # (N,) each train video's axis, about 3 per axis
    train_x = np.eye(4)[axes]
    test_x = rng.integers(0, 3, (9, 4)).astype(np.float64) + np.eye(4)[rng.integers(0, 4, 9)]  # ties among axes too
    neighbours, similarities = retrieval_neighbours(train_x, test_x, k, center=False, chunk_size=4)
    expected_neighbours, expected_similarities = dense_neighbours(train_x, test_x, k, center=False)
    np.testing.assert_array_equal(neighbours, expected_neighbours)
    np.testing.assert_allclose(similarities, expected_similarities, rtol=1e-6)
    assert chunk_rows == [4, 4, 1]
    for row, similarity in zip(neighbours, similarities):
        for first, second in zip(range(k - 1), range(1, k)):  # equal similarities: ascending train index
            assert similarity[first] > similarity[second] or row[first] < row[second]


def test_retrieval_neighbours_chunks_hold_about_chunk_similarities_by_default(chunk_rows, monkeypatch):
    from seco_lab.evaluation import retrieval

    monkeypatch.setattr(retrieval, "CHUNK_SIMILARITIES", 3 * 10 + 2)  # 3 test rows of 10 train similarities
    rng = np.random.default_rng(9)
    train_x, test_x = rng.normal(size=(10, 4)), rng.normal(size=(8, 4))
    neighbours, _ = retrieval_neighbours(train_x, test_x, 4)
    np.testing.assert_array_equal(neighbours, dense_neighbours(train_x, test_x, 4)[0])
    assert chunk_rows == [3, 3, 2]


@pytest.mark.parametrize(("k", "chunk_size", "message"), [
    (0, None, "k must be >= 1, got 0"), (-2, None, "k must be >= 1, got -2"), (1, 0, "chunk_size must be >= 1, got 0"),
])
def test_retrieval_neighbours_need_a_positive_k_and_chunk_size(k, chunk_size, message):
    with pytest.raises(ValueError, match=re.escape(f"retrieval_neighbours: {message}")):
        retrieval_neighbours(np.eye(3), np.eye(3), k, chunk_size=chunk_size)


@pytest.mark.parametrize("ks", [[], [0, 5], [-1]])
def test_retrieval_needs_positive_ks(ks):
    train_x, train_y = separable(0, per_class=2)
    expected = f"retrieval: ks must hold at least one k, each >= 1, got {sorted(ks)}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        retrieval_protocol(train_x, train_y, train_x, train_y, ks=ks)


def test_recall_at_k_hand_values():
    ranked = np.array([[1, 0, 0], [2, 2, 1], [0, 0, 0]])
    recalls = recall_at_k(ranked, np.array([0, 1, 1]), [1, 2, 3])
    assert recalls == {1: 0.0, 2: pytest.approx(100 / 3), 3: pytest.approx(200 / 3)}


def test_metrics_hand_values():
    assert top1_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 75.0
    assert majority_class_accuracy(np.array([1, 1, 0]), np.array([1, 0, 1, 1])) == 75.0
    np.testing.assert_array_equal(confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2), [[1, 0], [1, 1]])


def test_confusion_matrix_refuses_classes_outside_its_rows():
    with pytest.raises(ValueError, match=r"confusion_matrix: labels must be classes >= 0, got -1 to 1"):
        confusion_matrix(np.array([0, -1, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"confusion_matrix: predictions must be classes >= 0, below "
                                         r"num_classes=2, got -1 to 0"):
        confusion_matrix(np.array([0, 1]), np.array([0, -1]), 2)
    with pytest.raises(ValueError, match=r"confusion_matrix: labels must be classes >= 0, below num_classes=2, "
                                         r"got 0 to 2"):
        confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match=r"confusion_matrix: labels \(3,\) and predictions \(2,\) differ in shape"):
        confusion_matrix(np.array([0, 1, 1]), np.array([0, 1]))


def test_chance_is_a_uniform_guess_among_the_classes_with_training_videos():
    # three classes are learned, the test split holds two of them: a uniform guess is right 1 time in 3
    assert chance_accuracy(np.array([0, 1, 2, 2]), np.array([0, 0, 1])) == pytest.approx(100 / 3)
    # a test video of a class never trained on cannot be guessed: 2 of 4 test videos can, each 1 time in 2
    assert chance_accuracy(np.array([0, 1]), np.array([0, 1, 2, 2])) == pytest.approx(25.0)
    train, test = np.array([0, 1, 2, 2]), np.array([0, 0, 1, 5])
    guesses = np.random.default_rng(0).choice(np.unique(train), size=(20000, len(test)))  # uniform among learned
    assert np.mean(guesses == test) * 100 == pytest.approx(chance_accuracy(train, test), abs=1.0)


def group_coded(seed, classes=4, groups_per_class=6, per_group=5, noise_dims=8):
    """Each group holds videos of one class and is coded by its own one-hot feature; nothing else
    carries the class. Seen groups are predictable, unseen groups are at chance."""
    rng = np.random.default_rng(seed)
    num_groups = classes * groups_per_class
    groups = np.repeat(np.arange(num_groups), per_group)
    labels = groups % classes
    features = np.concatenate([3.0 * np.eye(num_groups)[groups],
                               rng.normal(size=(len(groups), noise_dims))], axis=1)
    return features, labels, groups


def test_svm_c_cross_validation_keeps_groups_within_one_fold():
    features, labels, groups = group_coded(0)
    _, mixed = choose_svm_c(features, labels)
    _, grouped = choose_svm_c(features, labels, groups)
    assert max(mixed.values()) > 90.0, "videos of a seen group are recognised"
    assert max(grouped.values()) < CHANCE + 15, "a fold's groups are never seen in training"


def test_svm_c_is_the_best_cross_validated_and_the_smaller_on_ties():
    train_x, train_y = separable(0)
    test_x, test_y = separable(1)
    C, scores = choose_svm_c(train_x, train_y)
    assert set(scores) == set(SVM_C_GRID)
    assert scores[C] == max(scores.values())
    assert C == min(c for c, score in scores.items() if score == scores[C])
    result = linear_svm_protocol(train_x, train_y, test_x, test_y, C="cv")
    assert result["C"] == C and result["cv_top1"] == scores and result["top1"] == 100.0


def test_a_c_chosen_at_the_edge_of_the_grid_over_its_neighbour_is_named_in_a_warning():
    """Feature 0 is the label plus large noise that feature 1 repeats: only the difference of the two
    (a weakly regularised SVM) separates the classes; a strongly regularised one leans on feature 0."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 60)
    noise = rng.normal(0.0, 3.0, len(labels))
    features = np.stack([labels + noise, noise, rng.normal(size=len(labels))], axis=1)
    with pytest.warns(UserWarning, match=r"chose C=0.01, the largest of the grid \(0.0001, 0.01\), over C=0.0001"):
        C, scores = choose_svm_c(features, labels, grid=(1e-4, 1e-2))
    assert C == 1e-2 and scores[1e-2] > scores[1e-4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C, scores = choose_svm_c(features, labels, grid=(1e-4, 1e-2, 1.0, 100.0))
    assert C == 1.0 and scores[1.0] == scores[100.0] == 100.0, "an interior C, or an edge tied with its neighbour"


@pytest.mark.parametrize("C", ["auto", 0.0, -1.0])
def test_linear_svm_rejects_a_bad_c(C):
    train_x, train_y = separable(0)
    with pytest.raises(ValueError, match="positive number or 'cv'"):
        linear_svm_protocol(train_x, train_y, train_x, train_y, C=C)


def test_svm_c_cross_validation_needs_two_videos_per_class_and_names_the_classes_with_fewer():
    features = np.zeros((6, 3))
    with pytest.raises(ValueError, match=r"at least 2 train videos.*label 2: 1, label 4: 1$"):
        choose_svm_c(features, np.array([0, 0, 1, 1, 2, 4]))
    with pytest.raises(ValueError, match=r"at least 2 train videos.*Diving: 1, YoYo: 1$"):
        linear_svm_protocol(features, np.array([0, 0, 1, 1, 2, 4]), features, np.array([0, 1, 2, 4, 0, 1]), C="cv",
                            class_names=["Archery", "Bowling", "Diving", "Fencing", "YoYo"])



def test_svm_c_cross_validation_by_group_needs_two_groups_per_class_and_names_the_classes_with_one():
    """A fold that held out a class's only group would be fitted without that class: with two
    classes liblinear refuses, with more the class's held-out videos all count as errors."""
    features = np.random.default_rng(0).normal(size=(9, 3))
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    groups = np.array(["g01", "g02", "g03", "g04", "g05", "g06", "g09", "g09", "g09"])
    with pytest.raises(ValueError, match=r"every class needs train videos from at least 2 groups; these have one: "
                                         r"Cc \(all in g09\)\. Give C as a number instead"):
        choose_svm_c(features, labels, groups, class_names=["Aa", "Bb", "Cc"])
    with pytest.raises(ValueError, match=r"these have one: label 0 \(all in 1\.0\), label 1 \(all in 1\.0\)"):
        choose_svm_c(np.zeros((6, 3)), np.array([0, 0, 0, 1, 1, 1]), groups=np.ones(6))


def test_every_cross_validation_fold_is_fitted_on_every_class(monkeypatch):
    """Classes with two groups each and three folds wanted: two folds, each fitted on videos of
    every class."""
    from seco_lab.evaluation import linear_svm

    features, labels, groups = group_coded(0, groups_per_class=2)
    splits = []
    chosen_folds = linear_svm._folds_fitted_on_every_class

    def recorded(*args, **kwargs):
        splits.extend(chosen_folds(*args, **kwargs))
        return splits

    monkeypatch.setattr(linear_svm, "_folds_fitted_on_every_class", recorded)
    choose_svm_c(features, labels, groups)
    assert len(splits) == 2
    assert all(set(labels[fit_rows]) == set(labels) for fit_rows, _ in splits)


FROZEN_PROTOCOLS = {"knn": lambda *arrays, **options: knn_protocol(*arrays, **options),
                    "retrieval": lambda *arrays, **options: retrieval_protocol(*arrays),
                    "linear": lambda *arrays, **options: linear_protocol(*arrays, epochs=1, **options)}


@pytest.mark.parametrize("protocol", FROZEN_PROTOCOLS)
def test_frozen_protocols_name_the_array_that_does_not_fit(protocol):
    run = FROZEN_PROTOCOLS[protocol]
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    train_y, test_y = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 2])
    with pytest.raises(ValueError, match=rf"{protocol}: train features have width 4 but test features 5"):
        run(train_x, train_y, rng.normal(size=(3, 5)), test_y)
    with pytest.raises(ValueError, match=rf"{protocol}: test labels \(2,\) must give one label per row"):
        run(train_x, train_y, test_x, test_y[:2])
    with pytest.raises(ValueError, match=rf"{protocol}: train labels must be integers >= 0, got int64 from -1"):
        run(train_x, train_y - 1, test_x, test_y)
    with pytest.raises(ValueError, match=rf"{protocol}: train labels \(0,\) must give one label per row"):
        run(train_x[:0], train_y[:0], test_x, test_y)
    if protocol != "retrieval":
        with pytest.raises(ValueError, match=rf"{protocol}: test labels must be integers >= 0, below num_classes=2"):
            run(train_x, train_y % 2, test_x, test_y, num_classes=2)


@pytest.mark.parametrize("protocol", FROZEN_PROTOCOLS)
@pytest.mark.parametrize("value,named", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
@pytest.mark.parametrize("split", ["train", "test"])
def test_frozen_protocols_refuse_features_that_are_not_finite(protocol, value, named, split):
    train_x, train_y = separable(0, per_class=2)
    test_x, test_y = separable(1, per_class=2)
    (train_x if split == "train" else test_x)[1, 2] = value
    with pytest.raises(ValueError, match=rf"Input {protocol} {split} features contains {named}"):
        FROZEN_PROTOCOLS[protocol](train_x, train_y, test_x, test_y)
