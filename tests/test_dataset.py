"""VideoDataset: deterministic per (seed, epoch, index) whatever the worker count."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seco_lab.video.dataset import VideoDataset, VideoSource
from seco_lab.video.index import VideoIndex
from seco_lab.video.layouts import discover
from tests._video_fixtures import make_video


class RandomClipViews:
    """ViewMaker: two random 3-frame clips, a torch-random flip of the second, and the start frames."""

    def __call__(self, source: VideoSource, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        starts = rng.integers(0, source.num_frames - 3, size=2)
        first = source.read(np.arange(3) + starts[0])
        second = source.read(np.arange(3) + starts[1])
        if torch.rand(()) < 0.5:
            second = second.flip(-1)
        return {"view1": first, "view2": second, "starts": torch.as_tensor(starts), "noise": torch.randn(4)}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for class_name in ("a", "b"):
        for i in range(4):
            make_video(root / class_name / f"{class_name}{i}.mp4", num_frames=12, seed=i + 10 * (class_name == "b"))
    spec = discover(root)
    return spec, VideoIndex.build(spec, progress=False)


def _batches(dataset, num_workers, epoch):
    dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=3, shuffle=False, num_workers=num_workers)
    return list(loader)


def _equal(batches_a, batches_b):
    return len(batches_a) == len(batches_b) and all(
        a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) for a, b in zip(batches_a, batches_b)
    )


def test_items_carry_views_label_and_index(indexed):
    spec, index = indexed
    dataset = VideoDataset(spec.records, index, RandomClipViews(), size=16, seed=0)
    item = dataset[5]
    assert item["view1"].shape == (3, 3, 16, 16) and item["view1"].dtype == torch.uint8
    assert item["label"].item() == spec.records[5].label and item["index"].item() == 5
    assert len(dataset) == 8


def test_zero_and_two_workers_give_identical_batches(indexed):
    spec, index = indexed
    dataset = VideoDataset(spec.records, index, RandomClipViews(), size=16, seed=7)
    single = _batches(dataset, num_workers=0, epoch=1)
    parallel = _batches(dataset, num_workers=2, epoch=1)
    assert _equal(single, parallel)


def test_epochs_and_seeds_change_items_but_repeat_exactly(indexed):
    spec, index = indexed
    dataset = VideoDataset(spec.records, index, RandomClipViews(), size=16, seed=7)
    epoch0 = _batches(dataset, 0, epoch=0)
    epoch1 = _batches(dataset, 0, epoch=1)
    assert not _equal(epoch0, epoch1)
    assert _equal(epoch0, _batches(dataset, 0, epoch=0))
    other_seed = VideoDataset(spec.records, index, RandomClipViews(), size=16, seed=8)
    assert not _equal(epoch0, _batches(other_seed, 0, epoch=0))
    dataset.set_epoch(3)
    assert all(torch.equal(dataset[2][k], dataset[(3, 2)][k]) for k in dataset[2])


def test_global_torch_rng_is_untouched(indexed):
    spec, index = indexed
    dataset = VideoDataset(spec.records, index, RandomClipViews(), size=16)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dataset[0]
    assert torch.equal(torch.rand(3), expected)


def test_constructor_and_view_maker_errors(indexed):
    spec, index = indexed
    with pytest.raises(ValueError, match="3 entries for 8 records"):
        VideoDataset(spec.records, [index[r] for r in spec.records[:3]], RandomClipViews(), size=16)
    with pytest.raises(ValueError, match="reserved"):
        VideoDataset(spec.records, index, lambda source, rng: {"label": torch.zeros(())}, size=16)[0]
    with pytest.raises(IndexError, match="out of range"):
        VideoDataset(spec.records, index, RandomClipViews(), size=16)[8]
