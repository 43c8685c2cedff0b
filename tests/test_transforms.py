"""Augmentation: functional ops, clip consistency, the CVRL view asymmetry, shapes and ranges."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision import tv_tensors
from torchvision.transforms import v2

from seco_lab.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ContiguousRandomResizedCrop,
    SeparableGaussianBlur,
    VideoTransform,
    background_erase,
    blur_kernel_size,
    cvrl_clip_augment,
    dualvar_clip_augment,
    eval_transform,
    frame_differences,
    paired_frame_differences,
    gaussian_blur,
    normalize,
    run_pipeline,
    seco_frame_augment,
    solarize,
    time_reverse,
    to_float01,
)
from seco_lab.transforms.functional import (
    estimate_translations,
    shift_frames,
    stabilize_clip,
    stabilize_pairs,
    translation_search_radius,
)

CROP = 24


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: thread hand-offs would cost more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_clip(frames: int = 6, height: int = 32, width: int = 40, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8, generator=generator)


def static_clip(frames: int = 6, seed: int = 0) -> torch.Tensor:
    """A clip whose frames are all identical: (T, 3, 32, 40) uint8."""
    return random_clip(1, seed=seed).expand(frames, -1, -1, -1).clone()


CLIP_RECIPES = {
    "cvrl_view1": lambda mode: cvrl_clip_augment(1, crop_size=CROP, mode=mode),
    "cvrl_view2": lambda mode: cvrl_clip_augment(2, crop_size=CROP, mode=mode),
    "dualvar": lambda mode: dualvar_clip_augment(crop_size=CROP, mode=mode),
}


# ------------------------------------------------------------------ functional


def test_to_float01_and_normalize() -> None:
    clip = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    pixels = to_float01(clip)
    assert pixels.dtype == torch.float32 and torch.allclose(pixels[0, :, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    assert torch.equal(to_float01(pixels), pixels)
    normalised = normalize(clip, mean=(0.0, 0.2, 0.5), std=(1.0, 0.5, 0.25))
    assert torch.allclose(normalised[1, :, 2, 2], torch.tensor([0.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="channels"):
        normalize(clip, mean=(0.5,), std=(0.5,))
    with pytest.raises(TypeError):
        to_float01(torch.zeros(2, 3, dtype=torch.int32))


def test_float_pixels_on_the_0_255_scale_are_refused_and_a_uint8_pipeline_output_is_scaled() -> None:
    clip = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    for use in (to_float01, frame_differences, cvrl_clip_augment(1, crop_size=32), VideoTransform(v2.CenterCrop(8))):
        with pytest.raises(ValueError, match="float pixels must be in \\[0, 1\\], got values up to 255"):
            use(clip.float().index_fill_(0, torch.tensor([0]), 255.0))
    cropped = VideoTransform(v2.CenterCrop(8))(clip)  # no ToDtype in the pipeline: still [0, 1] out
    assert cropped.dtype == torch.float32 and torch.equal(cropped, to_float01(v2.CenterCrop(8)(clip)))


def test_frame_differences_of_a_static_clip_are_zero() -> None:
    differences = frame_differences(static_clip(5))
    assert differences.shape == (4, 3, 32, 40) and differences.dtype == torch.float32
    assert torch.count_nonzero(differences) == 0


def test_frame_differences_measure_change() -> None:
    clip = torch.arange(4, dtype=torch.uint8).mul(50).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    differences = frame_differences(clip)
    assert torch.allclose(differences, torch.full((3, 3, 2, 2), 50 / 255))
    assert torch.allclose(frame_differences(time_reverse(clip)), -differences)
    with pytest.raises(ValueError, match="2 frames"):
        frame_differences(clip[:1])
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        frame_differences(clip[0])


def test_paired_frame_differences_subtract_each_pairs_first_frame_from_its_second() -> None:
    frames = torch.randint(0, 256, (6, 3, 4, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([(frames[2 * i + 1].float() - frames[2 * i].float()) / 255 for i in range(3)])
    torch.testing.assert_close(paired_frame_differences(frames), expected)
    torch.testing.assert_close(paired_frame_differences(frames.float() / 255), expected)
    with pytest.raises(ValueError, match=r"\(t, t \+ 1\) pairs, got 5 frames"):
        paired_frame_differences(frames[:5])


def textured_scene(size: int = 48, seed: int = 0) -> torch.Tensor:
    """A smooth random texture (3, size, size) float in [0, 1], with edges in every direction."""
    noise = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)[0]


def camera_view(scene: torch.Tensor, dy: int, dx: int, margin: int, size: int) -> torch.Tensor:
    """The (3, size, size) window of ``scene`` a camera shifted by (dy, dx) sees: what the scene
    shows at (y - dy, x - dx) appears at (y, x)."""
    return scene[:, margin - dy:margin - dy + size, margin - dx:margin - dx + size]


def shift_search_written_out(reference: torch.Tensor, moving: torch.Tensor, radius: int,
                             grid_step: int) -> list[tuple[int, int]]:
    """The shift of least absolute grey-level difference summed over every ``grid_step``-th row
    and column of the interior, by loops; ties to the smaller |dy| + |dx|, then the smaller (dy, dx)."""
    grey_reference = (reference.double() * (255 if reference.dtype == torch.uint8 else 1)).sum(dim=1)
    grey_moving = (moving.double() * (255 if moving.dtype == torch.uint8 else 1)).sum(dim=1)
    height, width = reference.shape[-2:]
    found = []
    for n in range(len(reference)):
        costs = []
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                cost = 0.0
                for y in range(radius, height - radius, grid_step):
                    for x in range(radius, width - radius, grid_step):
                        cost += abs(float(grey_moving[n, y + dy, x + dx]) - float(grey_reference[n, y, x]))
                costs.append((round(cost, 6), abs(dy) + abs(dx), (dy, dx)))
        found.append(min(costs)[2])
    return found


@pytest.mark.parametrize("frames,height,width,radius", [(1, 9, 9, 2), (3, 12, 10, 2), (2, 11, 14, 3), (2, 8, 8, 1)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("grid_step", [1, 2, 3])
def test_estimate_translations_matches_a_search_written_out(frames, height, width, radius, dtype, grid_step) -> None:
    generator = torch.Generator().manual_seed(frames * 100 + height)
    reference = torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8, generator=generator)
    moving = torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8, generator=generator)
    moving[0] = torch.roll(reference[0], (1, -1), (1, 2))  # one pair with a true shift
    if dtype == torch.float32:
        reference, moving = reference.float() / 255, moving.float() / 255
    found = estimate_translations(reference, moving, radius, grid_step)
    assert found.dtype == torch.long and found.shape == (frames, 2)
    assert [tuple(shift) for shift in found.tolist()] == shift_search_written_out(reference, moving, radius, grid_step)
    assert found[0].tolist() == [1, -1]
    with pytest.raises(ValueError, match="grid_step must be at least 1, got 0"):
        estimate_translations(reference, moving, radius, grid_step=0)


def test_estimate_translations_follows_the_background_not_a_moving_object() -> None:
    scene, size, margin = textured_scene(56), 40, 8
    shifts = [(0, 0), (1, 0), (-2, 1), (3, -3), (0, -1)]
    reference = torch.stack([camera_view(scene, 0, 0, margin, size)] * len(shifts))
    moving = torch.stack([camera_view(scene, dy, dx, margin, size) for dy, dx in shifts]).clone()
    moving[:, :, 14:26, 10:22] = 1.0  # a bright object, where the reference frames have texture
    found = estimate_translations(reference, moving)
    assert translation_search_radius(size, size) == 3
    assert [tuple(shift) for shift in found.tolist()] == shifts
    blank = torch.zeros(2, 3, size, size)
    assert estimate_translations(blank, blank).tolist() == [[0, 0], [0, 0]]  # nothing to align: no shift
    with pytest.raises(ValueError, match="differ in shape"):
        estimate_translations(reference, moving[:, :, :-1])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_shift_frames_moves_each_frame_back_with_edge_pixels_at_the_border(dtype: torch.dtype, channels_last: bool) -> None:
    frames = torch.randint(0, 256, (3, 2, 5, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    if dtype.is_floating_point:
        frames = frames.to(dtype) / 255
    if channels_last:
        frames = frames.contiguous(memory_format=torch.channels_last)
    shifts = torch.tensor([[0, 0], [2, -1], [-1, 3]])
    moved = shift_frames(frames, shifts)
    assert moved.dtype == dtype and moved.shape == frames.shape
    for n, (dy, dx) in enumerate(shifts.tolist()):
        for y in range(5):
            for x in range(6):
                source = frames[n, :, min(max(y + dy, 0), 4), min(max(x + dx, 0), 5)]
                assert torch.equal(moved[n, :, y, x], source)
    with pytest.raises(ValueError, match="2 shifts for 3 frames"):
        shift_frames(frames, shifts[:2])


def test_stabilized_pairs_and_clips_leave_only_what_moved_in_the_scene() -> None:
    scene, size, margin = textured_scene(56, seed=2), 40, 8
    camera = [(0, 0), (1, -1), (2, -1), (1, 1), (-1, 2), (-2, 2)]  # a shaking, drifting camera
    clip = torch.stack([camera_view(scene, dy, dx, margin, size) for dy, dx in camera])
    clip = (clip * 255).round().to(torch.uint8)  # (T, 3, H, W)
    interior = (slice(None), slice(None), slice(margin, size - margin), slice(margin, size - margin))
    assert frame_differences(clip)[interior].abs().amax() > 0.05  # the camera lights up every edge
    assert frame_differences(stabilize_clip(clip))[interior].abs().amax() == 0
    pairs = torch.stack([clip[:-1], clip[1:]], dim=1).reshape(-1, *clip.shape[1:])  # (t, t + 1) pairs
    stabilized = stabilize_pairs(pairs)
    assert stabilized.dtype == torch.uint8 and torch.equal(stabilized[0::2], pairs[0::2])
    assert paired_frame_differences(stabilized)[interior].abs().amax() == 0
    moving = clip.clone()
    moving[3, :, 16:22, 16:22] = 255  # an object appears in frame 3 only
    differences = frame_differences(stabilize_clip(moving))
    changed = {t for t in range(len(differences)) if differences[t][interior[1:]].abs().amax() > 0}
    assert changed == {2, 3}
    with pytest.raises(ValueError, match=r"\(t, t \+ 1\) pairs, got 5 frames"):
        stabilize_pairs(pairs[:5])
    assert torch.equal(stabilize_clip(clip[:1]), clip[:1])


def test_background_erase_mixes_one_frame_of_the_clip() -> None:
    clip = random_clip(5)
    erased = background_erase(clip, np.random.default_rng(0), alpha=1.0)
    assert erased.shape == clip.shape and erased.dtype == torch.uint8
    # with full weight every frame becomes the same frame, one of the clip's own
    assert all(torch.equal(erased[0], frame) for frame in erased)
    assert any(torch.equal(erased[0], frame) for frame in clip)
    assert torch.equal(background_erase(clip, np.random.default_rng(0), alpha=0.0), clip)
    # a static clip is unchanged: the added frame is the background itself
    still = static_clip(4)
    assert torch.equal(background_erase(still, np.random.default_rng(1)), still)
    floats = to_float01(clip)
    mixed = background_erase(floats, np.random.default_rng(2), alpha=(0.1, 0.3))
    assert mixed.dtype == torch.float32 and not torch.equal(mixed, floats)
    assert mixed.min() >= 0 and mixed.max() <= 1  # a convex combination of frames
    assert torch.equal(mixed, background_erase(floats, np.random.default_rng(2), alpha=(0.1, 0.3)))
    with pytest.raises(ValueError, match="alpha"):
        background_erase(clip, np.random.default_rng(0), alpha=1.5)


def test_background_erase_changes_the_static_part_only() -> None:
    """After erasing, frame differences equal (1 - w) times the original ones."""
    clip = to_float01(random_clip(4))
    erased = background_erase(clip, np.random.default_rng(3), alpha=0.25)
    assert torch.allclose(frame_differences(erased), 0.75 * frame_differences(clip), atol=1e-6)


def test_solarize() -> None:
    values = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    assert solarize(values).tolist() == [0, 127, 127, 0]
    floats = torch.tensor([0.0, 0.4, 0.5, 0.9])
    assert torch.allclose(solarize(floats), torch.tensor([0.0, 0.4, 0.5, 0.1]))
    assert torch.allclose(solarize(floats, threshold=0.3), torch.tensor([0.0, 0.6, 0.5, 0.1]))


@pytest.mark.parametrize(("shape", "kernel_size", "sigma"), [((2, 3, 17, 23), 5, 0.7), ((3, 9, 9), 3, 1.0), ((1, 3, 6, 5), 9, 2.0)])
def test_gaussian_blur_matches_torchvision(shape: tuple[int, ...], kernel_size: int, sigma: float) -> None:
    from torchvision.transforms.v2 import functional as tvf

    pixels = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    expected = tvf.gaussian_blur(pixels, [kernel_size, kernel_size], [sigma, sigma])
    assert torch.allclose(gaussian_blur(pixels, kernel_size, sigma), expected, atol=1e-5)
    constant = torch.full(shape, 0.25)
    assert torch.allclose(gaussian_blur(constant, kernel_size, sigma), constant)
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(pixels, 4, sigma)


def test_separable_blur_transform_draws_sigma_from_torch() -> None:
    blur = SeparableGaussianBlur(kernel_size=5, sigma=(0.5, 2.0))
    frame = impulse_clip()[:1].float()
    torch.manual_seed(0)
    first = blur(frame)
    torch.manual_seed(0)
    assert torch.equal(blur(frame), first)
    assert first.max() < frame.max() and first.sum() == pytest.approx(frame.sum().item(), rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize(("shape", "size", "scale"), [((9, 3, 64, 64), 56, (0.5, 1.0)), ((2, 3, 40, 53), 24, (0.2, 0.9)),
                                                      ((3, 31, 17), 40, (0.3, 1.0))])
def test_contiguous_random_resized_crop_equals_torchvision(dtype: torch.dtype, shape: tuple[int, ...], size: int,
                                                            scale: tuple[float, float]) -> None:
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1)).to(dtype)
    if dtype.is_floating_point:
        pixels /= 255.0
    ours = ContiguousRandomResizedCrop(size, scale=scale, ratio=(0.5, 2.0))
    theirs = v2.RandomResizedCrop(size, scale=scale, ratio=(0.5, 2.0))
    crops_seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        params = ours.make_params([pixels])
        crops_seen.add((params["top"], params["left"], params["height"], params["width"]))
        torch.manual_seed(seed)
        expected = theirs(pixels)
        torch.manual_seed(seed)
        result = run_pipeline(ours, pixels)
        assert result.shape == (*shape[:-2], size, size) and result.dtype == dtype
        assert torch.equal(result, expected)
    assert len(crops_seen) > 6  # the draws differ, so the equality covers many crops
    video = tv_tensors.Video(pixels if pixels.dim() == 4 else pixels[None])
    torch.manual_seed(0)
    wrapped = ours(video)
    torch.manual_seed(0)
    assert isinstance(wrapped, tv_tensors.Video) and torch.equal(wrapped, theirs(video))


def test_blur_kernel_is_odd_and_about_a_tenth_of_the_crop() -> None:
    assert blur_kernel_size(224) == 23
    assert blur_kernel_size(112) == 11
    assert blur_kernel_size(56) == 7
    assert blur_kernel_size(16) == 3
    assert all(blur_kernel_size(size) % 2 == 1 for size in range(8, 300))


# ------------------------------------------------------------------ recipes: shapes, ranges


@pytest.mark.parametrize("name", sorted(CLIP_RECIPES))
@pytest.mark.parametrize("mode", ["consistent", "per_frame"])
def test_clip_recipes_shape_dtype_range(name: str, mode: str) -> None:
    torch.manual_seed(0)
    output = CLIP_RECIPES[name](mode)(random_clip(6))
    assert output.shape == (6, 3, CROP, CROP) and output.dtype == torch.float32
    assert type(output) is torch.Tensor
    assert output.min() >= 0.0 and output.max() <= 1.0


def test_seco_augment_views_are_normalised_frames() -> None:
    torch.manual_seed(0)
    augment = seco_frame_augment(crop_size=CROP)
    frame = random_clip(1)
    view = augment(frame)
    assert view.shape == (1, 3, CROP, CROP) and view.dtype == torch.float32
    assert augment(frame[0]).shape == (3, CROP, CROP)
    lowest = (0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    highest = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    per_channel_min = view.amin(dim=(0, 2, 3)).numpy()
    per_channel_max = view.amax(dim=(0, 2, 3)).numpy()
    assert np.all(per_channel_min >= lowest - 1e-5) and np.all(per_channel_max <= highest + 1e-5)
    assert not torch.equal(augment(frame), augment(frame))  # independent draw per view
    unnormalised = seco_frame_augment(crop_size=CROP, mean=None, std=None)(frame)
    assert unnormalised.min() >= 0 and unnormalised.max() <= 1


def test_recipes_accept_float_input() -> None:
    torch.manual_seed(1)
    output = cvrl_clip_augment(1, crop_size=CROP)(to_float01(random_clip(3)))
    assert output.shape == (3, 3, CROP, CROP) and output.dtype == torch.float32


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="view"):
        cvrl_clip_augment(3)
    with pytest.raises(ValueError, match="mode"):
        dualvar_clip_augment(mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mean and std"):
        cvrl_clip_augment(1, mean=IMAGENET_MEAN)
    with pytest.raises(ValueError):
        cvrl_clip_augment(1, solarize_prob=2.0)
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        eval_transform(CROP)(torch.zeros(2, 2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError):
        eval_transform(CROP)(torch.zeros(2, 3, 8, 8, dtype=torch.int64))


# ------------------------------------------------------------------ consistency across frames


@pytest.mark.parametrize("name", sorted(CLIP_RECIPES))
def test_consistent_mode_applies_one_draw_to_every_frame(name: str) -> None:
    clip = static_clip(6)
    for seed in range(5):
        torch.manual_seed(seed)
        output = CLIP_RECIPES[name]("consistent")(clip)
        assert all(torch.equal(output[0], frame) for frame in output[1:])


@pytest.mark.parametrize("name", sorted(CLIP_RECIPES))
def test_per_frame_mode_draws_per_frame(name: str) -> None:
    clip = static_clip(6)
    for seed in range(5):
        torch.manual_seed(seed)
        output = CLIP_RECIPES[name]("per_frame")(clip)
        assert not all(torch.equal(output[0], frame) for frame in output[1:])


def test_seco_recipe_treats_a_multi_frame_input_as_one_view() -> None:
    torch.manual_seed(0)
    output = seco_frame_augment(crop_size=CROP)(static_clip(3))
    assert torch.equal(output[0], output[1]) and torch.equal(output[1], output[2])


ALL_RECIPES = {
    **{name: make("consistent") for name, make in CLIP_RECIPES.items()},
    "seco_paper": seco_frame_augment(crop_size=CROP),
    "seco_standard": seco_frame_augment(crop_size=CROP, scale=(0.5, 1.0), jitter=(0.4, 0.4, 0.4, 0.0),
                                        blur_prob=0.0, hflip=False, mean=None, std=None),
    "cvrl_solarize": cvrl_clip_augment(2, crop_size=CROP, solarize_prob=0.5),
    "eval": eval_transform(CROP),
}


@pytest.mark.parametrize("name", sorted(ALL_RECIPES))
def test_run_pipeline_equals_calling_the_pipeline(name: str) -> None:
    pipeline = ALL_RECIPES[name].pipeline
    for seed in range(40):
        clip = random_clip(1 + seed % 4, seed=seed)
        if seed % 3 == 0:
            clip = to_float01(clip)
        torch.manual_seed(seed)
        expected = pipeline(clip).as_subclass(torch.Tensor)
        next_draw = torch.rand(3)
        torch.manual_seed(seed)
        assert torch.equal(run_pipeline(pipeline, clip), expected), f"seed {seed}: different pixels"
        assert torch.equal(torch.rand(3), next_draw), f"seed {seed}: a different number of random draws"


def test_run_pipeline_calls_a_transform_with_its_own_forward() -> None:
    class Reverse(v2.Transform):
        def forward(self, clip: torch.Tensor) -> torch.Tensor:
            return clip.flip(0)

    clip = random_clip(3)
    assert torch.equal(run_pipeline(v2.Compose([Reverse()]), clip), clip.flip(0))


def test_draws_come_from_torch_global_generator() -> None:
    augment = cvrl_clip_augment(2, crop_size=CROP)
    clip = random_clip(4)
    torch.manual_seed(123)
    first = augment(clip)
    torch.manual_seed(123)
    second = augment(clip)
    torch.manual_seed(124)
    third = augment(clip)
    assert torch.equal(first, second) and not torch.equal(first, third)


def test_recipes_pickle() -> None:
    augment = cvrl_clip_augment(1, crop_size=CROP, mode="per_frame")
    restored = pickle.loads(pickle.dumps(augment))
    assert isinstance(restored, VideoTransform) and restored.mode == "per_frame"
    clip = random_clip(3)
    torch.manual_seed(5)
    expected = augment(clip)
    torch.manual_seed(5)
    assert torch.equal(restored(clip), expected)


# ------------------------------------------------------------------ CVRL view asymmetry


def white_clip() -> torch.Tensor:
    return torch.full((2, 3, 16, 16), 255, dtype=torch.uint8)  # solarises to black


def impulse_clip() -> torch.Tensor:
    clip = torch.zeros(2, 3, 17, 17, dtype=torch.uint8)
    clip[:, :, 8, 8] = 255  # any blur spreads the impulse
    return clip


def only(step: str, view: int, **overrides: object):
    """A CVRL view recipe with every random step off except ``step`` (crop kept as identity)."""
    settings: dict[str, object] = dict(
        crop_size=16, area=(1.0, 1.0), aspect=(1.0, 1.0), hflip=False, jitter_prob=0.0,
        grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0,
    )
    settings.pop(f"{step}_prob")
    settings.update(overrides)
    return cvrl_clip_augment(view, **settings)  # type: ignore[arg-type]


def test_view_1_never_solarises_view_2_one_time_in_five() -> None:
    torch.manual_seed(0)
    trials = 400
    view1, view2 = only("solarize", 1), only("solarize", 2)
    solarised_1 = sum(bool(view1(white_clip()).max() < 0.5) for _ in range(trials))
    solarised_2 = sum(bool(view2(white_clip()).max() < 0.5) for _ in range(trials))
    assert solarised_1 == 0
    assert stats.binomtest(solarised_2, trials, 0.2).pvalue > 1e-3
    assert solarised_2 > 0.1 * trials


def test_view_1_always_blurs_view_2_one_time_in_ten() -> None:
    torch.manual_seed(1)
    trials = 400
    clip = impulse_clip()
    view1 = only("blur", 1, crop_size=17, blur_sigma=(1.0, 2.0))
    view2 = only("blur", 2, crop_size=17, blur_sigma=(1.0, 2.0))
    no_blur = only("blur", 1, crop_size=17, blur_prob=0.0)
    assert torch.equal(no_blur(clip), to_float01(clip))  # everything else is the identity here
    blurred_1 = sum(bool(view1(clip).max() < 0.9) for _ in range(100))
    blurred_2 = sum(bool(view2(clip).max() < 0.9) for _ in range(trials))
    assert blurred_1 == 100
    assert stats.binomtest(blurred_2, trials, 0.1).pvalue > 1e-3
    assert blurred_2 < 0.2 * trials


def test_probabilities_can_be_overridden() -> None:
    torch.manual_seed(2)
    never = only("solarize", 2, solarize_prob=0.0)
    always = only("solarize", 1, solarize_prob=1.0)
    assert all(never(white_clip()).min() == 1.0 for _ in range(50))
    assert all(always(white_clip()).max() == 0.0 for _ in range(50))


def test_dualvar_has_no_grayscale() -> None:
    """A pure-red clip keeps a red-dominant colour in every draw (jitter hue is at most 0.1)."""
    clip = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    clip[:, 0] = 200
    augment = dualvar_clip_augment(crop_size=16, blur_prob=0.0)
    torch.manual_seed(3)
    for _ in range(100):
        output = augment(clip)
        channel_spread = output.amax(dim=1) - output.amin(dim=1)  # (T, H, W), 0 for gray pixels
        assert channel_spread.mean() > 0.05


# ------------------------------------------------------------------ evaluation transform


def test_eval_transform_is_a_deterministic_centre_crop() -> None:
    clip = random_clip(3, height=64, width=80)
    transform = eval_transform(56, mean=None, std=None)  # resize short side to 64: a no-op here
    output = transform(clip)
    assert output.shape == (3, 3, 56, 56) and output.dtype == torch.float32
    assert torch.allclose(output, to_float01(clip)[:, :, 4:60, 12:68])
    assert torch.equal(transform(clip), output)
    normalised = eval_transform(56)(clip)
    assert torch.allclose(normalised, normalize(output, IMAGENET_MEAN, IMAGENET_STD), atol=1e-6)


def test_eval_transform_resizes_the_short_side() -> None:
    clip = random_clip(2, height=128, width=160)
    output = eval_transform(56, mean=None, std=None)(clip)
    assert output.shape == (2, 3, 56, 56)
    with pytest.raises(ValueError, match="resize_size"):
        eval_transform(56, resize_size=40)


def test_blur_kernel_size_gives_the_sizes_its_docstring_names():
    examples = re.findall(r"(\d+) px at (\d+)", blur_kernel_size.__doc__)
    assert examples
    for kernel, crop in examples:
        assert blur_kernel_size(int(crop)) == int(kernel), f"{kernel} px at {crop}"
