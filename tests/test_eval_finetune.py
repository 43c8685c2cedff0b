"""Fine-tuning: beats the frozen linear protocol where random features are weak; partial BN; multi-view test."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from seco_lab.evaluation.finetune import (
    TensorItems, VideoClassifier, freeze_batchnorm, predict_views, segment_positions, train_classifier,
)
from seco_lab.evaluation.features import EvaluationError
from seco_lab.evaluation.linear import linear_protocol


pytestmark = pytest.mark.usefixtures("single_thread")


SEGMENTS = 2


def hidden_pixel_problem(n, seed):
    """Videos (n, K, 1, 4, 8): noise everywhere, the class is the sign of one pixel in every segment."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    videos = torch.randn(n, SEGMENTS, 1, 4, 8, generator=generator)
    videos[:, :, 0, 0, 0] = (labels.float() * 2 - 1).view(-1, 1) * 1.5
    return videos, labels


def random_trunk(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(32, 4), nn.BatchNorm1d(4), nn.ReLU())


def frozen_features(trunk, videos):
    trunk.eval()
    with torch.no_grad():
        frames = videos.reshape(-1, *videos.shape[2:])  # (n * K, 1, 4, 8)
        return trunk(frames).reshape(len(videos), SEGMENTS, -1).mean(1).numpy()  # (n, 4)


def test_finetuning_beats_linear_probe_on_weak_random_features():
    gains, tuned_scores = [], []
    for seed in range(3):
        train_x, train_y = hidden_pixel_problem(256, seed)
        test_x, test_y = hidden_pixel_problem(128, 100 + seed)
        trunk = random_trunk(seed)
        probe = linear_protocol(frozen_features(trunk, train_x), train_y.numpy(), frozen_features(trunk, test_x),
                                test_y.numpy(), num_classes=2, epochs=30)
        model = VideoClassifier(copy.deepcopy(trunk), "2d", 4, 2, dropout=0.0)
        losses = train_classifier(model, TensorItems(train_x, train_y), epochs=15, lr=1e-2, batch_size=32, seed=seed)
        logits, labels = predict_views(model, TensorItems(test_x.unsqueeze(1), test_y, key="views"))
        tuned = 100.0 * np.mean(logits.argmax(1) == labels)
        assert losses[-1] < losses[0]
        gains.append(tuned - probe["top1"])
        tuned_scores.append(tuned)
    assert np.mean(tuned_scores) > 85.0
    assert np.mean(gains) > 15.0


def test_partial_bn_freezes_all_but_the_first():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
    classifier = VideoClassifier(model, "2d", 2, 2, dropout=0.0)
    before_second = (model[4].running_mean.clone(), model[4].weight.detach().clone())
    before_first = model[1].running_mean.clone()
    inputs, labels = torch.randn(16, 1, 1, 8, 8) + 2.0, torch.randint(0, 2, (16,))
    train_classifier(classifier, TensorItems(inputs, labels), epochs=2, lr=0.1, batch_size=8, partial_bn=True)
    assert torch.equal(model[4].running_mean, before_second[0])
    assert torch.equal(model[4].weight, before_second[1])
    assert not torch.equal(model[1].running_mean, before_first)
    assert model[1].weight.requires_grad and not model[4].weight.requires_grad
    frozen = freeze_batchnorm(copy.deepcopy(model), except_first=False)
    assert len(frozen) == 2


def test_classifier_shapes_2d_and_3d():
    frames = VideoClassifier(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), "2d", 5, 3)
    assert frames(torch.randn(4, 7, 3, 2, 2)).shape == (4, 3)
    clips = VideoClassifier(nn.Sequential(nn.Flatten(), nn.Linear(24, 5)), "3d", 5, 3)
    assert clips(torch.randn(4, 3, 2, 2, 2)).shape == (4, 3)
    with pytest.raises(Exception, match="kind"):
        VideoClassifier(nn.Identity(), "4d", 5, 3)


def test_predict_views_averages_logits():
    model = VideoClassifier(nn.Flatten(), "3d", 2, 2, dropout=0.0)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.eye(2))
        model.classifier.bias.zero_()
    views = torch.tensor([[[3.0, 0.0], [0.0, 1.0], [0.0, 1.0]]]).view(1, 3, 2, 1, 1, 1)  # (M, V, C, T, H, W)
    logits, _ = predict_views(model, TensorItems(views, torch.tensor([0]), key="views"))
    np.testing.assert_allclose(logits, [[1.0, 2 / 3]], rtol=1e-6)


def test_predict_views_averages_softmax_when_asked_and_can_choose_another_class():
    """One confident view against two mild ones: the mean logit picks class 0, the mean
    probability class 1 (DualVar's test averages the softmax)."""
    model = VideoClassifier(nn.Flatten(), "3d", 2, 2, dropout=0.0)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.eye(2))
        model.classifier.bias.zero_()
    views = torch.tensor([[[10.0, 0.0], [0.0, 3.0], [0.0, 3.0]]]).view(1, 3, 2, 1, 1, 1)  # (M, V, C, T, H, W)
    items = TensorItems(views, torch.tensor([1]), key="views")
    logits, _ = predict_views(model, items)
    probabilities, _ = predict_views(model, items, average="softmax")
    expected = sum(torch.tensor(row).softmax(dim=0) for row in ([10.0, 0.0], [0.0, 3.0], [0.0, 3.0])) / 3
    np.testing.assert_allclose(probabilities, [expected.numpy()], rtol=1e-6)
    assert logits.argmax(axis=1).tolist() == [0] and probabilities.argmax(axis=1).tolist() == [1]
    with pytest.raises(EvaluationError, match="average 'mean' is not one of logits, softmax"):
        predict_views(model, items, average="mean")


def test_segment_positions_cover_each_span():
    clips = segment_positions(num_frames=20, segments=4, num_clips=2)
    np.testing.assert_array_equal(clips[0], [1, 6, 11, 16])
    np.testing.assert_array_equal(clips[1], [3, 8, 13, 18])
