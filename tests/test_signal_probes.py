"""SeCo's signal probes: the same-frame and same-video questions, checked against plain loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seco_lab.evaluation.signals import same_frame_accuracy, same_video_recall


def _same_frame_by_loops(views: torch.Tensor) -> float:
    hits = 0
    for video in views.tolist():
        a1, a2, b, c = video
        dot = lambda u, v: sum(x * y for x, y in zip(u, v))  # noqa: E731
        hits += dot(a1, a2) > max(dot(a1, b), dot(a1, c))
    return 100.0 * hits / len(views)


def _same_video_by_loops(views: torch.Tensor) -> float:
    rows = views.tolist()
    hits = 0
    for anchor_video, video in enumerate(rows):
        anchor = video[0]
        best, owner = None, None
        for frame in (2, 3):  # first every video's b, then every video's c: the first best wins
            for other_video, other in enumerate(rows):
                similarity = sum(x * y for x, y in zip(anchor, other[frame]))
                if best is None or similarity > best:
                    best, owner = similarity, other_video
        hits += owner == anchor_video
    return 100.0 * hits / len(rows)


@pytest.mark.parametrize("videos,dim", [(2, 3), (5, 8), (17, 4), (40, 16)])
@pytest.mark.parametrize("seed", [0, 1])
def test_probes_match_plain_loops(videos, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    anchors = torch.randn(videos, 1, dim, generator=generator)
    noise = torch.randn(videos, 3, dim, generator=generator)
    scale = torch.tensor([0.3, 1.0, 1.5]).view(1, 3, 1)  # a2 near a1, b and c further: neither probe saturates
    views = F.normalize(torch.cat([anchors, anchors + scale * noise], dim=1), dim=-1).double()  # (N, 4, D)
    assert same_frame_accuracy(views) == pytest.approx(_same_frame_by_loops(views))
    assert same_video_recall(views) == pytest.approx(_same_video_by_loops(views))


def test_probes_tell_a_faithful_encoder_from_a_confused_one():
    generator = torch.Generator().manual_seed(0)
    scenes = F.normalize(torch.randn(30, 1, 32, generator=generator), dim=-1)
    faithful = F.normalize(scenes + 0.05 * torch.randn(30, 4, 32, generator=generator), dim=-1)
    faithful[:, 1] = F.normalize(faithful[:, 0] + 0.001 * torch.randn(30, 32, generator=generator), dim=-1)
    assert same_frame_accuracy(faithful) == 100.0 and same_video_recall(faithful) == 100.0
    confused = faithful[:, [0, 2, 1, 3]]  # a2 and b swapped: another frame looks like the anchor's own view
    assert same_frame_accuracy(confused) == 0.0 and same_video_recall(confused) == 100.0
    shuffled = faithful.clone()
    shuffled[:, 2:] = faithful[torch.roll(torch.arange(30), 1), 2:]  # b and c from the next video
    assert same_video_recall(shuffled) == 0.0
