"""Losses against slow, loop-based references (plain python floats, math.exp / math.log)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seco_lab.losses import (
    InfoNCELoss,
    IntraFrameLoss,
    NTXentLoss,
    OrderLoss,
    ShuffleRankLoss,
    TemporalCoherentLoss,
)

TEMPERATURES = [0.07, 0.1, 0.5]


def unit_vectors(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=torch.float64), dim=-1)


def dot(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v))


def cross_entropy_first(logits: list[float]) -> float:
    """-log softmax(logits)[0], computed with a max shift."""
    top = max(logits)
    return -(logits[0] - top) + math.log(sum(math.exp(x - top) for x in logits))


def cross_entropy_at(logits: list[float], target: int) -> float:
    top = max(logits)
    return -(logits[target] - top) + math.log(sum(math.exp(x - top) for x in logits))


def softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# ------------------------------------------------------------------------------------------- InfoNCE
def reference_info_nce(query, positives, queue, temperature) -> float:
    q, k = query.tolist(), positives.tolist()
    rows = []
    for b in range(len(q)):
        if queue is not None:
            negatives = queue.tolist()
        else:
            negatives = [k[other][p] for other in range(len(q)) if other != b for p in range(len(k[other]))]
        for p in range(len(k[b])):
            logits = [dot(q[b], k[b][p]) / temperature] + [dot(q[b], n) / temperature for n in negatives]
            rows.append(cross_entropy_first(logits))
    return sum(rows) / len(rows)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("batch,num_pos,dim,queue_size", [(1, 1, 4, 5), (3, 3, 8, 7), (4, 2, 16, 1), (5, 3, 6, None)])
def test_info_nce_matches_reference(batch, num_pos, dim, queue_size, temperature):
    query = unit_vectors(batch, dim, seed=1)
    positives = unit_vectors(batch, num_pos, dim, seed=2)
    queue = None if queue_size is None else unit_vectors(queue_size, dim, seed=3)
    loss = InfoNCELoss(temperature)(query, positives, queue)
    assert loss.item() == pytest.approx(reference_info_nce(query, positives, queue, temperature), rel=1e-9)


def test_info_nce_accepts_single_positive():
    query, key, queue = unit_vectors(4, 8, seed=1), unit_vectors(4, 8, seed=2), unit_vectors(6, 8, seed=3)
    loss_2d = InfoNCELoss(0.1)(query, key, queue)
    loss_3d = InfoNCELoss(0.1)(query, key.unsqueeze(1), queue)
    assert loss_2d.item() == pytest.approx(loss_3d.item())


def test_info_nce_does_not_normalise():
    query, key, queue = unit_vectors(4, 8, seed=1), unit_vectors(4, 8, seed=2), unit_vectors(6, 8, seed=3)
    loss = InfoNCELoss(0.1)
    assert loss(2 * query, key, queue).item() != pytest.approx(loss(query, key, queue).item())


# ------------------------------------------------------------------------------------------- intra-frame
def reference_intra_frame(query, positive, negatives, temperature) -> float:
    q, k1, kn = query.tolist(), positive.tolist(), negatives.tolist()
    rows = []
    for b in range(len(q)):
        for negative in kn[b]:
            rows.append(cross_entropy_first([dot(q[b], k1[b]) / temperature, dot(q[b], negative) / temperature]))
    return sum(rows) / len(rows)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("batch,num_neg,dim", [(1, 1, 3), (4, 2, 8), (6, 5, 16)])
def test_intra_frame_matches_reference(batch, num_neg, dim, temperature):
    query, positive = unit_vectors(batch, dim, seed=4), unit_vectors(batch, dim, seed=5)
    negatives = unit_vectors(batch, num_neg, dim, seed=6)
    loss = IntraFrameLoss(temperature)(query, positive, negatives)
    assert loss.item() == pytest.approx(reference_intra_frame(query, positive, negatives, temperature), rel=1e-9)


# ------------------------------------------------------------------------------------------- order
def test_order_loss_matches_reference_and_accuracy():
    torch.manual_seed(0)
    order_loss = OrderLoss(embed_dim=8).double()
    q, kb, kc = unit_vectors(5, 8, seed=7), unit_vectors(5, 8, seed=8), unit_vectors(5, 8, seed=9)
    labels = torch.tensor([0, 1, 1, 0, 1])
    weight, bias = order_loss.classifier.weight.tolist(), order_loss.classifier.bias.tolist()
    rows, correct = [], 0
    for b in range(5):
        features = q[b].tolist() + kb[b].tolist() + kc[b].tolist()
        logits = [dot(weight[c], features) + bias[c] for c in range(2)]
        rows.append(cross_entropy_at(logits, int(labels[b])))
        correct += int(max(range(2), key=lambda c: logits[c]) == int(labels[b]))
    assert order_loss(q, kb, kc, labels).item() == pytest.approx(sum(rows) / 5, rel=1e-9)
    assert order_loss.accuracy(q, kb, kc, labels).item() == pytest.approx(correct / 5)
    assert order_loss.logits(q, kb, kc).shape == (5, 2)


def test_order_loss_with_a_hidden_layer_matches_reference():
    torch.manual_seed(0)
    order_loss = OrderLoss(embed_dim=4, hidden_dim=6).double()
    q, kb, kc = unit_vectors(3, 4, seed=1), unit_vectors(3, 4, seed=2), unit_vectors(3, 4, seed=3)
    labels = torch.tensor([1, 0, 1])
    first, _, second = order_loss.classifier
    rows = []
    for b in range(3):
        features = q[b].tolist() + kb[b].tolist() + kc[b].tolist()
        hidden = [max(0.0, dot(first.weight[h].tolist(), features) + first.bias[h].item()) for h in range(6)]
        logits = [dot(second.weight[c].tolist(), hidden) + second.bias[c].item() for c in range(2)]
        rows.append(cross_entropy_at(logits, int(labels[b])))
    assert order_loss(q, kb, kc, labels).item() == pytest.approx(sum(rows) / 3, rel=1e-9)


def test_order_loss_is_sensitive_to_argument_order():
    torch.manual_seed(0)
    order_loss = OrderLoss(embed_dim=8).double()
    q, kb, kc = unit_vectors(5, 8, seed=7), unit_vectors(5, 8, seed=8), unit_vectors(5, 8, seed=9)
    labels = torch.zeros(5, dtype=torch.long)
    assert order_loss(q, kb, kc, labels).item() != pytest.approx(order_loss(q, kc, kb, labels).item())


# ------------------------------------------------------------------------------------------- NT-Xent
def reference_ntxent_per_anchor(z1, z2, temperature) -> tuple[list[float], list[float]]:
    """Loop-based NT-Xent; returns the per-anchor losses of both directions."""
    a = [[x / math.sqrt(dot(row, row)) for x in row] for row in z1.tolist()]
    b = [[x / math.sqrt(dot(row, row)) for x in row] for row in z2.tolist()]
    directions = []
    for anchors, others in ((a, b), (b, a)):
        losses = []
        for i in range(len(anchors)):
            logits = [dot(anchors[i], others[i]) / temperature]
            logits += [dot(anchors[i], others[k]) / temperature for k in range(len(others)) if k != i]
            logits += [dot(anchors[i], anchors[k]) / temperature for k in range(len(anchors)) if k != i]
            losses.append(cross_entropy_first(logits))
        directions.append(losses)
    return directions[0], directions[1]


def full_matrix_ntxent(z1, z2, temperature) -> torch.Tensor:
    """Independent formula: CE over the 2B x 2B cosine-similarity matrix with the diagonal masked (mean over 2B)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    similarity = z @ z.t() / temperature
    similarity.fill_diagonal_(float("-inf"))
    batch = z1.shape[0]
    targets = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)])
    return F.cross_entropy(similarity, targets)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("batch,dim", [(2, 3), (5, 8), (8, 16)])
def test_ntxent_matches_reference(batch, dim, temperature):
    z1 = torch.randn(batch, dim, generator=torch.Generator().manual_seed(10), dtype=torch.float64) * 3
    z2 = torch.randn(batch, dim, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    forward_losses, backward_losses = reference_ntxent_per_anchor(z1, z2, temperature)
    expected_sum = sum(forward_losses) / batch + sum(backward_losses) / batch
    assert NTXentLoss(temperature)(z1, z2).item() == pytest.approx(expected_sum, rel=1e-9)
    mean_loss = NTXentLoss(temperature, reduction="mean")(z1, z2)
    assert mean_loss.item() == pytest.approx(expected_sum / 2, rel=1e-9)
    assert mean_loss.item() == pytest.approx(full_matrix_ntxent(z1, z2, temperature).item(), rel=1e-9)
    per_anchor = NTXentLoss(temperature, reduction="none")(z1, z2)
    assert per_anchor.tolist() == pytest.approx(forward_losses + backward_losses, rel=1e-9)


def test_ntxent_with_gather_equals_global_batch_slice():
    """Two simulated ranks: each rank's per-anchor losses are its rows of the global-batch loss."""
    world, local_batch, dim = 2, 3, 8
    z1 = torch.randn(world * local_batch, dim, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    z2 = torch.randn(world * local_batch, dim, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    global_losses = NTXentLoss(0.1, reduction="none")(z1, z2).view(2, world * local_batch)  # (direction, 2*3)
    for rank in range(world):
        rows = slice(rank * local_batch, (rank + 1) * local_batch)
        global_views = [F.normalize(z1, dim=1), F.normalize(z2, dim=1)]  # gathered in call order: z1, then z2

        def gather(local, rank=rank, global_views=global_views):
            parts = list(global_views.pop(0).split(local_batch))
            assert torch.allclose(parts[rank], local)
            parts[rank] = local
            return torch.cat(parts)

        local_losses = NTXentLoss(0.1, reduction="none", gather=gather, rank=rank)(z1[rows], z2[rows])
        expected = torch.cat([global_losses[0, rows], global_losses[1, rows]])
        assert local_losses.tolist() == pytest.approx(expected.tolist(), rel=1e-9)


def test_ntxent_wrong_rank_changes_loss_and_bad_rank_raises():
    z1, z2 = unit_vectors(4, 8, seed=14), unit_vectors(4, 8, seed=15)

    def gather_twice(local):
        return torch.cat([local, local.flip(0)])

    loss_rank0 = NTXentLoss(0.1, gather=gather_twice, rank=0)(z1, z2)
    loss_rank1 = NTXentLoss(0.1, gather=gather_twice, rank=1)(z1, z2)
    assert loss_rank0.item() != pytest.approx(loss_rank1.item())
    with pytest.raises(ValueError, match="rank 2 out of range"):
        NTXentLoss(0.1, gather=gather_twice, rank=2)(z1, z2)


# ------------------------------------------------------------------------------------------- temporal coherent
def reference_temporal_coherent(series0, series1, temperature) -> float:
    """Loop reference: sim = mean over segment pairs of dot products; NT-Xent mean over 2B anchors."""
    s0, s1 = series0.tolist(), series1.tolist()
    batch, segments = len(s0), len(s0[0])

    def sim(a, b) -> float:
        return sum(dot(a[i], b[j]) for i in range(segments) for j in range(segments)) / segments**2

    losses = []
    for anchors, others in ((s0, s1), (s1, s0)):
        for i in range(batch):
            logits = [sim(anchors[i], others[i]) / temperature]
            logits += [sim(anchors[i], others[k]) / temperature for k in range(batch) if k != i]
            logits += [sim(anchors[i], anchors[k]) / temperature for k in range(batch) if k != i]
            losses.append(cross_entropy_first(logits))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("batch,segments,dim", [(2, 1, 4), (4, 2, 8), (5, 3, 6)])
def test_temporal_coherent_matches_reference(batch, segments, dim, temperature):
    series0, series1 = unit_vectors(batch, segments, dim, seed=16), unit_vectors(batch, segments, dim, seed=17)
    loss = TemporalCoherentLoss(temperature)(series0, series1)
    assert loss.item() == pytest.approx(reference_temporal_coherent(series0, series1, temperature), rel=1e-9)


# ------------------------------------------------------------------------------------------- shuffle-rank
def reference_shuffle_rank(unshuffled, shuffled, theta) -> float:
    u, c = unshuffled.tolist(), shuffled.tolist()
    terms = []
    for b in range(len(u)):
        segments = len(u[b])
        vectors = u[b] + c[b]
        for anchor in range(2 * segments):
            positive = anchor + segments if anchor < segments else anchor - segments
            for negative in range(2 * segments):
                if negative in (anchor, positive):
                    continue
                margin = dot(vectors[anchor], vectors[negative]) - dot(vectors[anchor], vectors[positive])
                terms.append(softplus(margin / theta))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("theta", [0.05, 0.2, 1.0])
@pytest.mark.parametrize("batch,segments,dim", [(1, 2, 4), (3, 2, 8), (4, 4, 16)])
def test_shuffle_rank_matches_reference(batch, segments, dim, theta):
    unshuffled, shuffled = unit_vectors(batch, segments, dim, seed=18), unit_vectors(batch, segments, dim, seed=19)
    loss = ShuffleRankLoss(theta)(unshuffled, shuffled)
    assert loss.item() == pytest.approx(reference_shuffle_rank(unshuffled, shuffled, theta), rel=1e-9)


def test_shuffle_rank_small_when_positions_match():
    unshuffled = unit_vectors(3, 4, 32, seed=20)
    aligned = ShuffleRankLoss(0.05)(unshuffled, unshuffled)
    swapped = ShuffleRankLoss(0.05)(unshuffled, unshuffled.flip(1))
    assert aligned.item() < 0.01 < swapped.item()


# ------------------------------------------------------------------------------------------- gradients
def gradient_cases():
    torch.manual_seed(0)
    yield "info_nce", InfoNCELoss(0.1), (torch.randn(4, 8), torch.randn(4, 3, 8), F.normalize(torch.randn(10, 8), dim=1))
    yield "intra", IntraFrameLoss(0.1), (torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 2, 8))
    yield "order", OrderLoss(8), (torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8), torch.tensor([0, 1, 0, 1]))
    yield "ntxent", NTXentLoss(0.1), (torch.randn(4, 8), torch.randn(4, 8))
    yield "tc", TemporalCoherentLoss(0.07), (torch.randn(4, 2, 8), torch.randn(4, 2, 8))
    yield "sr", ShuffleRankLoss(0.05), (torch.randn(4, 2, 8) * 0.3, torch.randn(4, 2, 8) * 0.3)


@pytest.mark.parametrize("name,loss_module,inputs", list(gradient_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_gradients_finite_and_nonzero(name, loss_module, inputs):
    inputs = [x.clone().requires_grad_(True) if x.is_floating_point() else x for x in inputs]
    loss = loss_module(*inputs)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for x in inputs:
        if x.is_floating_point():
            assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, name


def test_ntxent_gradient_flows_through_gather():
    z1 = torch.randn(3, 8, requires_grad=True)
    z2 = torch.randn(3, 8, requires_grad=True)
    remote = torch.randn(3, 8)

    def gather(local):
        return torch.cat([local, F.normalize(remote, dim=1)])

    NTXentLoss(0.1, gather=gather, rank=0)(z1, z2).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def meta_device_cases():
    def meta(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, device="meta")

    yield "info_nce_queue", InfoNCELoss(0.1), (meta(4, 8), meta(4, 3, 8), meta(10, 8)), ()
    yield "info_nce_batch_negatives", InfoNCELoss(0.1), (meta(4, 8), meta(4, 3, 8)), ()
    yield "intra", IntraFrameLoss(0.1), (meta(4, 8), meta(4, 8), meta(4, 2, 8)), ()
    yield "order", OrderLoss(8).to("meta"), (meta(4, 8), meta(4, 8), meta(4, 8),
                                            torch.empty(4, dtype=torch.long, device="meta")), ()
    yield "ntxent", NTXentLoss(0.1), (meta(4, 8), meta(4, 8)), ()
    yield "ntxent_none", NTXentLoss(0.1, reduction="none"), (meta(4, 8), meta(4, 8)), (8,)
    yield "tc", TemporalCoherentLoss(0.07), (meta(4, 2, 8), meta(4, 2, 8)), ()
    yield "sr", ShuffleRankLoss(0.05), (meta(4, 3, 8), meta(4, 3, 8)), ()


@pytest.mark.parametrize("name,loss_module,inputs,shape", list(meta_device_cases()),
                         ids=[case[0] for case in meta_device_cases()])
def test_every_loss_runs_on_the_meta_device(name, loss_module, inputs, shape):
    """Shape-only runs (meta tensors, no data) go through every loss: nothing depends on the values."""
    loss = loss_module(*inputs)
    assert loss.device.type == "meta" and loss.shape == shape, name


# ------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: InfoNCELoss(0.1)(torch.randn(4, 8), torch.randn(3, 2, 8), None), ValueError, "batch size of query"),
        (lambda: InfoNCELoss(0.1)(torch.randn(4, 8), torch.randn(4, 2, 7), None), ValueError, "embedding dim"),
        (lambda: InfoNCELoss(0.1)(torch.randn(4, 8), torch.randn(4, 8), torch.randn(5, 6)), ValueError, "queue"),
        (lambda: InfoNCELoss(0.1)(torch.randn(1, 8), torch.randn(1, 8), None), ValueError, ">= 2 videos"),
        (lambda: InfoNCELoss(0.1)(torch.ones(4, 8, dtype=torch.long), torch.randn(4, 8)), TypeError, "floating point"),
        (lambda: InfoNCELoss(0.1)([[1.0]], torch.randn(4, 8)), TypeError, "torch.Tensor"),
        (lambda: InfoNCELoss(0.0), ValueError, "temperature must be > 0"),
        (lambda: IntraFrameLoss(0.1)(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)), ValueError, "3 dims"),
        (lambda: IntraFrameLoss(0.1)(torch.randn(4, 8), torch.randn(3, 8), torch.randn(4, 2, 8)), ValueError, "positive shape"),
        (lambda: OrderLoss(8)(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 6), torch.zeros(4, dtype=torch.long)), ValueError, "k_c"),
        (lambda: OrderLoss(8)(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8), torch.zeros(4)), ValueError, "int64"),
        (lambda: OrderLoss(8)(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8), torch.full((4,), 2)), ValueError, r"\[0, 1\]"),
        (lambda: OrderLoss(0), ValueError, "embed_dim must be >= 1"),
        (lambda: OrderLoss(8, num_classes=1), ValueError, "num_classes >= 2"),
        (lambda: NTXentLoss(0.1)(torch.randn(4, 8), torch.randn(5, 8)), ValueError, "z2 shape"),
        (lambda: NTXentLoss(0.1)(torch.randn(1, 8), torch.randn(1, 8)), ValueError, "at least 2"),
        (lambda: NTXentLoss(0.1, reduction="sum"), ValueError, "reduction"),
        (lambda: NTXentLoss(0.1, gather=lambda x: x[:2], rank=0)(torch.randn(4, 8), torch.randn(4, 8)), ValueError, "gather returned"),
        (lambda: TemporalCoherentLoss(0.07)(torch.randn(4, 8), torch.randn(4, 8)), ValueError, "3 dims"),
        (lambda: TemporalCoherentLoss(0.07)(torch.randn(1, 2, 8), torch.randn(1, 2, 8)), ValueError,
         "TemporalCoherentLoss: needs at least 2"),
        (lambda: TemporalCoherentLoss(0.07, reduction="sum"), ValueError, "TemporalCoherentLoss: reduction"),
        (lambda: TemporalCoherentLoss(0.07)(torch.randn(4, 2, 8), torch.randn(4, 3, 8)), ValueError, "series_v1 shape"),
        (lambda: ShuffleRankLoss(0.05)(torch.randn(4, 1, 8), torch.randn(4, 1, 8)), ValueError, "S >= 2"),
        (lambda: ShuffleRankLoss(0.05)(torch.randn(4, 2, 8), torch.randn(4, 2, 7)), ValueError, "calibrated_shuffled shape"),
        (lambda: ShuffleRankLoss(-1.0), ValueError, "theta must be > 0"),
        (lambda: InfoNCELoss("0.1"), TypeError, "InfoNCELoss: temperature must be a number, got '0.1'"),
        (lambda: InfoNCELoss(0.1)(torch.randn(4, 8).half(), torch.randn(4, 3, 8), torch.randn(16, 8)), TypeError,
         "InfoNCELoss: positives is torch.float32 but query is torch.float16"),
        (lambda: InfoNCELoss(0.1)(torch.randn(4, 8), torch.randn(4, 3, 8), torch.randn(16, 8).double()), TypeError,
         "InfoNCELoss: queue is torch.float64 but query is torch.float32"),
        (lambda: IntraFrameLoss(0.1)(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 2, 8).bfloat16()), TypeError,
         "IntraFrameLoss: negatives is torch.bfloat16"),
        (lambda: OrderLoss(8)(torch.randn(4, 8), torch.randn(4, 8).half(), torch.randn(4, 8),
                              torch.zeros(4, dtype=torch.long)), TypeError, "OrderLoss: k_b is torch.float16"),
        (lambda: NTXentLoss(0.1)(torch.randn(4, 8), torch.randn(4, 8).half()), TypeError, "NTXentLoss: z2 is"),
        (lambda: TemporalCoherentLoss(0.07)(torch.randn(4, 2, 8), torch.randn(4, 2, 8).half()), TypeError,
         "TemporalCoherentLoss: series_v1 is"),
        (lambda: ShuffleRankLoss(0.05)(torch.randn(4, 2, 8), torch.randn(4, 2, 8).half()), TypeError,
         "ShuffleRankLoss: calibrated_shuffled is"),
    ],
)
def test_argument_validation(call, error, message):
    with pytest.raises(error, match=message):
        call()
