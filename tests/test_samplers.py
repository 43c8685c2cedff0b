"""Frame-index samplers against the papers' rules, with statistical tests at fixed seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from seco_lab import samplers
from seco_lab.samplers import (
    DualVarClipSampler,
    SeCoTripletSampler,
    TemporalIntervalSampler,
    calibrate,
    cvrl_clip_pair,
    dualvar_clips,
    evenly_spaced_frames,
    interval_gap,
    interval_gap_density,
    interval_gap_pmf,
    random_clip_indices,
    seco_frame_triplet,
    segment_permutation,
    shuffle_segments,
    tsn_segment_indices,
    uniform_clip_indices,
    uniform_clip_starts,
)

MIN_P_VALUE = 1e-3  # goodness-of-fit threshold at a fixed seed


def chi_square_p(counts: np.ndarray, probabilities: np.ndarray) -> float:
    expected = probabilities / probabilities.sum() * counts.sum()
    return float(stats.chisquare(counts, expected).pvalue)


def binomial_p(successes: int, trials: int, prob: float) -> float:
    return float(stats.binomtest(successes, trials, prob).pvalue)


# ------------------------------------------------------------------ SeCo


@pytest.mark.parametrize("num_frames", [10, 11, 40])
def test_seco_triplet_follows_the_half_rule(num_frames: int) -> None:
    rng = np.random.default_rng(0)
    half = num_frames // 2
    draws = [seco_frame_triplet(num_frames, rng) for _ in range(4000)]
    triplets = np.stack([t for t, _ in draws])
    orders = np.array([o for _, o in draws])
    assert triplets.dtype == np.int64 and triplets.shape == (4000, 3)
    assert binomial_p(int(orders.sum()), len(orders), 0.5) > MIN_P_VALUE
    anchors, firsts, seconds = triplets.T
    assert np.all(firsts <= seconds)
    forward = orders == 0
    assert np.all(anchors[forward] < half) and np.all(firsts[forward] >= half)
    assert np.all(anchors[~forward] >= half) and np.all(seconds[~forward] < half)
    assert np.all(seconds < num_frames) and np.all(firsts >= 0)
    # anchor uniform in its half; b and c (pooled, so the sort does not matter) uniform in the other
    first_half = np.arange(half)
    second_half = np.arange(half, num_frames)
    for selection, anchor_range, pair_range in ((forward, first_half, second_half), (~forward, second_half, first_half)):
        anchor_counts = np.bincount(anchors[selection], minlength=num_frames)[anchor_range]
        assert chi_square_p(anchor_counts, np.ones(len(anchor_range))) > MIN_P_VALUE
        pooled = np.concatenate([firsts[selection], seconds[selection]])
        pair_counts = np.bincount(pooled, minlength=num_frames)[pair_range]
        assert chi_square_p(pair_counts, np.ones(len(pair_range))) > MIN_P_VALUE
        # b and c independent: P(b == c) = 1 / (size of their half)
        ties = int(np.sum(firsts[selection] == seconds[selection]))
        assert binomial_p(ties, int(selection.sum()), 1 / len(pair_range)) > MIN_P_VALUE


def test_seco_triplet_short_videos() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        triplet, _ = seco_frame_triplet(1, rng)
        assert triplet.tolist() == [0, 0, 0]
        triplet, order = seco_frame_triplet(2, rng)
        assert triplet.tolist() == ([0, 1, 1] if order == 0 else [1, 0, 0])
        triplet, order = seco_frame_triplet(3, rng)
        if order == 0:
            assert triplet[0] == 0 and set(triplet[1:]) <= {1, 2} and triplet[1] <= triplet[2]
        else:
            assert triplet[0] in (1, 2) and triplet[1:].tolist() == [0, 0]
    with pytest.raises(ValueError):
        seco_frame_triplet(0, rng)


def test_seco_sampler_wrapper_is_reproducible() -> None:
    sampler = SeCoTripletSampler()
    first = sampler(30, np.random.default_rng(5))
    second = sampler(30, np.random.default_rng(5))
    assert np.array_equal(first[0], second[0]) and first[1] == second[1]


# ------------------------------------------------------------------ CVRL temporal interval

GAP_CASES = [
    ("decreasing", 1.0),
    ("decreasing", 2.0),
    ("decreasing", 0.5),
    ("uniform", 1.0),
    ("increasing", 1.0),
    ("increasing", 2.0),
]


@pytest.mark.parametrize(("distribution", "power"), GAP_CASES)
def test_gap_density_is_normalised_and_pmf_matches_it(distribution: str, power: float) -> None:
    max_offset = 20
    grid = np.linspace(0, max_offset, 20001)
    density = interval_gap_density(grid, max_offset, power, distribution)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-4)
    pmf = interval_gap_pmf(max_offset, power, distribution)
    assert pmf.shape == (max_offset,) and pmf.sum() == pytest.approx(1.0)
    assert np.all(pmf >= 0)
    for k in range(max_offset):  # each integer gap's probability is the density's mass on [k, k+1)
        inside = (grid >= k) & (grid <= k + 1)
        assert pmf[k] == pytest.approx(np.trapezoid(density[inside], grid[inside]), abs=1e-4)
    assert interval_gap_density(-1.0, max_offset, power, distribution) == 0.0
    assert interval_gap_density(max_offset + 1.0, max_offset, power, distribution) == 0.0


def test_gap_density_shapes() -> None:
    grid = np.linspace(0, 10, 11)
    decreasing = interval_gap_density(grid, 10, 1.0, "decreasing")
    assert np.all(np.diff(decreasing) < 0) and decreasing[-1] == 0.0
    assert decreasing[0] == pytest.approx(2 / 10)  # (p+1)/(p M) at d = 0
    increasing = interval_gap_density(grid, 10, 1.0, "increasing")
    assert np.allclose(increasing, decreasing[::-1])
    assert np.allclose(interval_gap_density(grid, 10, 3.0, "uniform"), 0.1)


@pytest.mark.parametrize(("distribution", "power"), GAP_CASES)
def test_sampled_gaps_follow_their_distribution(distribution: str, power: float) -> None:
    max_offset = 20
    rng = np.random.default_rng(2)
    gaps = np.array([interval_gap(max_offset, rng, power, distribution) for _ in range(20000)])
    assert gaps.min() >= 0 and gaps.max() <= max_offset - 1
    counts = np.bincount(gaps, minlength=max_offset)
    assert chi_square_p(counts, interval_gap_pmf(max_offset, power, distribution)) > MIN_P_VALUE


def test_gap_test_can_tell_distributions_apart() -> None:
    rng = np.random.default_rng(3)
    gaps = np.array([interval_gap(20, rng, 1.0, "decreasing") for _ in range(20000)])
    counts = np.bincount(gaps, minlength=20)
    assert chi_square_p(counts, interval_gap_pmf(20, 1.0, "uniform")) < 1e-6
    assert chi_square_p(counts, interval_gap_pmf(20, 2.0, "decreasing")) < 1e-6


def test_numeric_inverse_matches_closed_form_and_cdf() -> None:
    for u in np.linspace(0, 1, 11):
        closed = 1 - np.sqrt(1 - u)
        assert samplers._decreasing_inverse_cdf(u, 1.0 + 1e-12) == pytest.approx(closed, abs=1e-6)
        for power in (0.5, 2.0, 3.0):
            t = samplers._decreasing_inverse_cdf(u, power)
            assert samplers._decreasing_cdf(t, power) == pytest.approx(u, abs=1e-9)


def test_gap_of_a_single_start_is_zero_and_bad_args_raise() -> None:
    rng = np.random.default_rng(0)
    assert all(interval_gap(1, rng) == 0 for _ in range(20))
    with pytest.raises(ValueError, match="gap distribution"):
        interval_gap(10, rng, distribution="bimodal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="power"):
        interval_gap(10, rng, power=0.0)
    with pytest.raises(ValueError):
        interval_gap(0, rng)


def test_cvrl_pair_gap_order_and_clip_shape() -> None:
    num_frames, clip_frames, stride = 40, 8, 2
    max_offset = num_frames - (clip_frames - 1) * stride  # 26
    rng = np.random.default_rng(4)
    pairs = [cvrl_clip_pair(num_frames, clip_frames, stride, rng) for _ in range(20000)]
    starts = np.array([(a[0], b[0]) for a, b in pairs])
    for first, second in pairs[:100]:
        assert first.dtype == np.int64 and first.shape == (clip_frames,)
        assert np.all(np.diff(first) == stride) and np.all(np.diff(second) == stride)
    assert starts.min() >= 0 and starts.max() <= max_offset - 1
    gaps = np.abs(starts[:, 1] - starts[:, 0])
    counts = np.bincount(gaps, minlength=max_offset)
    assert chi_square_p(counts, interval_gap_pmf(max_offset)) > MIN_P_VALUE
    # the two clips are swapped at random: the first one is the later one half the time
    moved = gaps > 0
    later_first = int(np.sum(starts[moved, 0] > starts[moved, 1]))
    assert binomial_p(later_first, int(moved.sum()), 0.5) > MIN_P_VALUE
    # given the gap, the earlier start is uniform over the starts that fit
    small_gap = gaps == 3
    earlier = starts[small_gap].min(axis=1)
    earlier_counts = np.bincount(earlier, minlength=max_offset - 3)
    assert len(earlier_counts) == max_offset - 3
    assert chi_square_p(earlier_counts, np.ones(max_offset - 3)) > MIN_P_VALUE


def test_cvrl_pair_short_video_wraps_around() -> None:
    num_frames, clip_frames, stride = 10, 8, 2  # a clip spans 15 frames
    rng = np.random.default_rng(5)
    starts = []
    for _ in range(2000):
        first, second = cvrl_clip_pair(num_frames, clip_frames, stride, rng)
        for clip in (first, second):
            assert clip.shape == (clip_frames,)
            assert np.all((clip >= 0) & (clip < num_frames))
            assert np.all(np.diff(clip) % num_frames == stride)
        starts += [first[0], second[0]]
    assert chi_square_p(np.bincount(starts, minlength=num_frames), np.ones(num_frames)) > MIN_P_VALUE


def test_cvrl_pair_exact_fit_gives_identical_clips() -> None:
    rng = np.random.default_rng(6)
    first, second = cvrl_clip_pair(15, 8, 2, rng)  # exactly one valid start
    assert np.array_equal(first, np.arange(0, 15, 2)) and np.array_equal(first, second)


def test_temporal_interval_sampler_wrapper() -> None:
    sampler = TemporalIntervalSampler(clip_frames=4, stride=3, power=2.0, distribution="uniform")
    direct = cvrl_clip_pair(50, 4, 3, np.random.default_rng(7), power=2.0, distribution="uniform")
    wrapped = sampler(50, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(direct, wrapped))
    with pytest.raises(ValueError):
        TemporalIntervalSampler(clip_frames=4, distribution="sideways")  # type: ignore[arg-type]


# ------------------------------------------------------------------ DualVar


def test_dualvar_clips_positions_and_reversal() -> None:
    num_frames, clip_frames, stride = 60, 8, 4
    max_offset = num_frames - (clip_frames - 1) * stride  # 32
    rng = np.random.default_rng(8)
    draws = [dualvar_clips(num_frames, clip_frames, stride, rng) for _ in range(6000)]
    flags = np.array([r for _, _, r in draws])
    assert binomial_p(int(flags.sum()), len(flags), 0.5) > MIN_P_VALUE
    starts = []
    for first, second, is_reversed in draws:
        step = -stride if is_reversed else stride
        assert np.all(np.diff(first) == step) and np.all(np.diff(second) == step)
        starts.append((first.min(), second.min()))
    starts = np.array(starts)
    assert starts.max() <= max_offset - 1
    for column in starts.T:  # each clip independently uniform over the valid starts
        assert chi_square_p(np.bincount(column, minlength=max_offset), np.ones(max_offset)) > MIN_P_VALUE
    same = int(np.sum(starts[:, 0] == starts[:, 1]))
    assert binomial_p(same, len(starts), 1 / max_offset) > MIN_P_VALUE


def test_dualvar_reverse_prob_extremes_and_wrapper() -> None:
    rng = np.random.default_rng(9)
    assert not any(dualvar_clips(30, 8, 2, rng, reverse_prob=0.0)[2] for _ in range(200))
    assert all(dualvar_clips(30, 8, 2, rng, reverse_prob=1.0)[2] for _ in range(200))
    with pytest.raises(ValueError):
        dualvar_clips(30, 8, 2, rng, reverse_prob=1.5)
    first, second, _ = dualvar_clips(5, 8, 2, rng)  # short video wraps
    assert np.all(first < 5) and np.all(second < 5)
    sampler = DualVarClipSampler(clip_frames=8, stride=2, reverse_prob=0.3)
    direct = dualvar_clips(40, 8, 2, np.random.default_rng(3), reverse_prob=0.3)
    wrapped = sampler(40, np.random.default_rng(3))
    assert np.array_equal(direct[0], wrapped[0]) and np.array_equal(direct[1], wrapped[1])
    assert direct[2] == wrapped[2]


@pytest.mark.parametrize("num_segments", [2, 3, 4, 5])
def test_derangement_never_leaves_a_segment_in_place(num_segments: int) -> None:
    rng = np.random.default_rng(10)
    perms = np.stack([segment_permutation(num_segments, rng) for _ in range(3000)])
    assert perms.dtype == np.int64
    assert np.all(np.sort(perms, axis=1) == np.arange(num_segments))
    assert not np.any(perms == np.arange(num_segments))
    if num_segments == 3:  # the two 3-cycles, equally often
        cycle = np.all(perms == np.array([1, 2, 0]), axis=1)
        assert binomial_p(int(cycle.sum()), len(perms), 0.5) > MIN_P_VALUE


def test_plain_permutation_is_identity_half_the_time_for_two_segments() -> None:
    rng = np.random.default_rng(11)
    identity = sum(
        np.array_equal(segment_permutation(2, rng, derangement=False), [0, 1]) for _ in range(4000)
    )
    assert binomial_p(int(identity), 4000, 0.5) > MIN_P_VALUE
    with pytest.raises(ValueError, match="derangement"):
        segment_permutation(1, rng)
    assert segment_permutation(1, rng, derangement=False).tolist() == [0]


@pytest.mark.parametrize(("layout", "time_dim"), [("CTHW", 1), ("TCHW", 0)])
def test_calibration_inverts_shuffling(layout: str, time_dim: int) -> None:
    num_frames, num_segments = 12, 4
    frame_values = torch.arange(num_frames, dtype=torch.float32)
    clip = frame_values.view(1, num_frames, 1, 1).expand(3, num_frames, 5, 5)  # (C, T, H, W)
    if layout == "TCHW":
        clip = clip.transpose(0, 1)  # (T, C, H, W)

    def segment_means(video: torch.Tensor) -> torch.Tensor:  # (S, 1): one "embedding" per slot
        per_frame = video.mean(dim=[d for d in range(4) if d != time_dim])  # (T,)
        return per_frame.view(num_segments, -1).mean(dim=1, keepdim=True)

    rng = np.random.default_rng(12)
    for _ in range(20):
        perm = segment_permutation(num_segments, rng)
        shuffled = shuffle_segments(clip, perm, time_dim)
        assert shuffled.shape == clip.shape
        assert not torch.equal(shuffled, clip)
        calibrated = calibrate(segment_means(shuffled), perm, segment_dim=0)
        assert torch.equal(calibrated, segment_means(clip))
        assert torch.equal(shuffle_segments(shuffled, np.argsort(perm), time_dim), clip)


def test_shuffle_moves_whole_segments() -> None:
    clip = torch.arange(6).view(6, 1, 1, 1)  # (T, C, H, W)
    assert shuffle_segments(clip, np.array([1, 0]), 0).flatten().tolist() == [3, 4, 5, 0, 1, 2]
    assert shuffle_segments(clip, np.array([2, 0, 1]), 0).flatten().tolist() == [4, 5, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="permutation"):
        shuffle_segments(clip, np.array([0, 0]), 0)


@pytest.mark.parametrize(("shape", "time_dim", "num_segments"), [((6, 3, 8, 4, 4), 2, 2), ((7, 9, 2), 1, 3),
                                                                 ((5, 2, 10, 3), -2, 4)])
def test_batched_shuffle_matches_row_by_row(shape: tuple[int, ...], time_dim: int, num_segments: int) -> None:
    clips = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    rng = np.random.default_rng(14)
    mixed = np.stack([rng.permutation(num_segments) for _ in range(shape[0])])  # (N, S), some rows alike
    same = np.tile(segment_permutation(num_segments, rng), (shape[0], 1))
    for perms in (mixed, same, torch.as_tensor(mixed)):
        batched = shuffle_segments(clips, perms, time_dim)
        assert batched.shape == clips.shape
        for row in range(shape[0]):
            assert torch.equal(batched[row], shuffle_segments(clips[row], np.asarray(perms[row]), time_dim % len(shape) - 1))
    assert len({tuple(row) for row in mixed.tolist()}) > 1
    with pytest.raises(ValueError, match="batched perm"):
        shuffle_segments(clips, mixed[:-1], time_dim)
    with pytest.raises(ValueError, match="batched perm"):
        shuffle_segments(clips, mixed, 0)
    with pytest.raises(ValueError, match="permutation"):
        shuffle_segments(clips, np.concatenate([mixed[:-1], np.zeros((1, num_segments), dtype=np.int64)]), time_dim)


def test_batched_calibration_matches_row_by_row() -> None:
    rng = np.random.default_rng(13)
    series = torch.randn(5, 3, 4)  # (N, S, D)
    perms = np.stack([segment_permutation(3, rng) for _ in range(5)])  # (N, S)
    batched = calibrate(series, perms)
    for row in range(5):
        assert torch.equal(batched[row], calibrate(series[row], perms[row]))
        for slot in range(3):
            assert torch.equal(batched[row, perms[row, slot]], series[row, slot])
    with pytest.raises(ValueError):
        calibrate(series, np.array([0, 1]))
    for not_a_permutation in (np.array([0, 0, 1]), np.array([0, 5, 1]), np.concatenate([perms[:4], [[2, 2, 0]]])):
        with pytest.raises(ValueError, match=r"perm must be a permutation of 0..2"):
            calibrate(series, not_a_permutation)


# ------------------------------------------------------------------ evaluation


def test_tsn_centres_and_random_frames_stay_in_their_segment() -> None:
    assert tsn_segment_indices(30, 3).tolist() == [5, 15, 25]
    rng = np.random.default_rng(14)
    draws = np.stack([tsn_segment_indices(30, 3, rng) for _ in range(3000)])
    for segment in range(3):
        column = draws[:, segment]
        assert column.min() >= 10 * segment and column.max() <= 10 * segment + 9
        counts = np.bincount(column - 10 * segment, minlength=10)
        assert chi_square_p(counts, np.ones(10)) > MIN_P_VALUE
    short = tsn_segment_indices(3, 7)
    assert np.all(np.diff(short) >= 0) and short.max() <= 2 and set(short.tolist()) == {0, 1, 2}
    assert np.all(tsn_segment_indices(3, 7, rng) <= 2)


def test_evenly_spaced_frames() -> None:
    assert evenly_spaced_frames(30, 30).tolist() == list(range(30))
    assert evenly_spaced_frames(100, 4).tolist() == [12, 37, 62, 87]
    frames = evenly_spaced_frames(7, 30)
    assert len(frames) == 30 and frames.max() == 6 and np.all(np.diff(frames) >= 0)


def test_uniform_clips_are_evenly_spaced_and_cover_the_video() -> None:
    clips = uniform_clip_indices(100, 8, 2, 5)  # valid starts 0..85
    assert len(clips) == 5
    assert [int(c[0]) for c in clips] == [0, 21, 42, 64, 85]
    assert all(np.array_equal(c, c[0] + 2 * np.arange(8)) for c in clips)
    assert clips[-1][-1] == 99
    assert uniform_clip_starts(100, 8, 2, 1).tolist() == [42]
    short = uniform_clip_indices(6, 8, 1, 3)
    assert all(np.array_equal(c, np.arange(8) % 6) for c in short)


def test_index_arrays_are_int64_everywhere() -> None:
    rng = np.random.default_rng(15)
    arrays = [
        seco_frame_triplet(9, rng)[0], *cvrl_clip_pair(30, 4, 2, rng), *dualvar_clips(30, 4, 2, rng)[:2],
        segment_permutation(3, rng), tsn_segment_indices(20, 4, rng), evenly_spaced_frames(20, 4),
        *uniform_clip_indices(20, 4, 2, 3),
    ]
    assert all(a.dtype == np.int64 for a in arrays)


@pytest.mark.parametrize(("num_frames", "clip_frames", "stride"), list(itertools.product([1, 7, 16, 64], [1, 4, 16], [1, 3])))
def test_all_clip_samplers_stay_inside_the_video(num_frames: int, clip_frames: int, stride: int) -> None:
    rng = np.random.default_rng(16)
    for _ in range(20):
        clips = [*cvrl_clip_pair(num_frames, clip_frames, stride, rng), *dualvar_clips(num_frames, clip_frames, stride, rng)[:2]]
        clips += uniform_clip_indices(num_frames, clip_frames, stride, 3)
        for clip in clips:
            assert clip.shape == (clip_frames,) and clip.min() >= 0 and clip.max() < num_frames


def test_bad_sampler_arguments_are_named_when_given() -> None:
    with pytest.raises(ValueError, match="stride must be a positive integer, got 0"):
        TemporalIntervalSampler(8, 0)
    with pytest.raises(ValueError, match="clip_frames must be a positive integer"):
        DualVarClipSampler(0)
    with pytest.raises(ValueError, match=r"reverse_prob must be in \[0, 1\], got 2.0"):
        DualVarClipSampler(4, reverse_prob=2.0)
    with pytest.raises(ValueError, match=r"n \(frames to take\) must be a positive integer, got 0"):
        evenly_spaced_frames(10, 0)
    for draw in (lambda rng: seco_frame_triplet(10, rng), lambda rng: cvrl_clip_pair(30, 8, 1, rng),
                 lambda rng: dualvar_clips(30, 8, 1, rng), lambda rng: segment_permutation(3, rng),
                 lambda rng: random_clip_indices(30, 8, 1, rng), lambda rng: interval_gap(10, rng)):
        for not_a_generator in (None, 0, np.random.RandomState(0)):
            with pytest.raises(TypeError, match="rng must be a numpy Generator"):
                draw(not_a_generator)
