"""The decoded-frame store returns exactly what decoding returns, and is rebuilt when a video changes."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from seco_lab.video.dataset import VideoDataset
from seco_lab.video import frame_store
from seco_lab.video.frame_store import FrameStore, FrameStoreSpaceError
from seco_lab.video.io import probe_video, read_frames, write_video


def _videos(folder: Path, count: int = 3, frames: int = 10) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"clip{i}.mp4"
        write_video(path, rng.integers(0, 255, (frames + i, 32, 48, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_store_reads_equal_decoded_frames(tmp_path):
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    for path, count in zip(paths, counts):
        indices = [count - 1, 0, 3, 3]
        assert torch.equal(store.read(path, indices), read_frames(path, indices, 24))


def test_store_reads_videos_of_different_frame_sizes(tmp_path):
    """Real collections mix frame sizes (HMDB51: 320x240, 352x240, 176x144 ...); each video's
    frames are read back at their own size, wherever they sit in the file."""
    rng = np.random.default_rng(1)
    paths = []
    for i, (height, width, frames) in enumerate([(32, 48, 9), (40, 40, 6), (24, 50, 11), (30, 44, 5)]):
        paths.append(tmp_path / f"size{i}.mp4")
        write_video(paths[-1], rng.integers(0, 255, (frames, height, width, 3), dtype=np.uint8))
    counts = [probe_video(p).num_frames for p in paths]
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    for path, count in zip(paths, counts):
        indices = list(range(count))[::-1]
        assert torch.equal(store.read(path, indices), read_frames(path, indices, 24)), path.name


def test_stores_of_different_video_sets_never_share_a_file(tmp_path):
    """Two runs on different splits of one dataset (maybe at the same time) each keep their store."""
    paths = _videos(tmp_path, count=4)
    counts = [probe_video(p).num_frames for p in paths]
    first = FrameStore.build(paths[:3], counts[:3], size=24, folder=tmp_path, progress=False)
    second = FrameStore.build(paths[1:], counts[1:], size=24, folder=tmp_path, progress=False)
    assert first.data_file != second.data_file
    for store, chosen in ((first, paths[:3]), (second, paths[1:])):
        for path in chosen:
            count = probe_video(path).num_frames
            assert torch.equal(store.read(path, range(count)), read_frames(path, range(count), 24))


def test_a_build_removes_what_stopped_builds_of_its_store_left_but_not_a_live_or_recent_one(tmp_path):
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    wanted = {str(path): (None, count) for path, count in zip(paths, counts)}
    data_file, index_file = frame_store._store_files(tmp_path, 24, wanted)
    dead = 2**22 + 12345  # above the kernel's largest process id: no such process
    long_ago = os.stat(paths[0]).st_mtime - 2 * frame_store.ABANDONED_AFTER_S
    abandoned = [data_file.with_name(f"{data_file.name}.tmp-{dead}"), index_file.with_name(f"{index_file.name}.tmp-{dead}")]
    recent = data_file.with_name(f"{data_file.name}.tmp-{dead + 1}")
    running = data_file.with_name(f"{data_file.name}.tmp-1")  # pid 1 always runs
    for path in abandoned + [recent, running]:
        path.write_bytes(b"partial")
    for path in abandoned + [running]:
        os.utime(path, (long_ago, long_ago))
    FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    assert not any(path.exists() for path in abandoned)
    assert recent.exists() and running.exists()  # changed lately, or its process still runs


def test_an_interrupted_build_leaves_no_partial_store(tmp_path, monkeypatch):
    """Ctrl-C while decoding (KeyboardInterrupt after the first video) deletes the temporary file:
    it would hold up to the whole store's size and no later run writes to it again."""
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    decoded = []

    def read_then_interrupt(path, indices, size):
        if decoded:
            raise KeyboardInterrupt
        decoded.append(path)
        return read_frames(path, indices, size)

    monkeypatch.setattr(frame_store, "read_frames", read_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False, processes=1)
    assert decoded == [str(paths[0])], "the interrupt must come after a video was written"
    assert not list(tmp_path.glob(".seco_lab_frames_*")), "nothing may be left behind"
    monkeypatch.setattr(frame_store, "read_frames", read_frames)
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    assert torch.equal(store.read(paths[2], [0, 1]), read_frames(paths[2], [0, 1], 24))


def test_reusing_a_store_removes_what_stopped_builds_of_it_left(tmp_path):
    """A killed build of a store that another run has finished since is cleaned up by the runs that
    reuse the store, not only by those that build it."""
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    built = store.data_file.stat().st_mtime_ns
    dead = 2**22 + 12345  # above the kernel's largest process id: no such process
    long_ago = os.stat(paths[0]).st_mtime - 2 * frame_store.ABANDONED_AFTER_S
    abandoned = store.data_file.with_name(f"{store.data_file.name}.tmp-{dead}")
    recent = store.data_file.with_name(f"{store.data_file.name}.tmp-{dead + 1}")
    for path in (abandoned, recent):
        path.write_bytes(b"partial")
    os.utime(abandoned, (long_ago, long_ago))
    reused = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    assert reused.data_file == store.data_file and store.data_file.stat().st_mtime_ns == built, "the store is reused"
    assert not abandoned.exists()
    assert recent.exists(), "a temporary changed lately may belong to a build on another machine"


def test_a_build_says_where_its_store_goes_how_large_it_is_and_how_to_do_without_it(tmp_path, capsys):
    """The store is about four times the compressed videos: before writing it, a line names its file,
    its size, --no-frame-cache and the command that deletes it; a run that reuses it says nothing, and
    neither does a build without progress output."""
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=True,
                             frame_sizes=[(32, 48)] * len(paths))
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("caching the decoded frames")]
    assert len(notes) == 1
    note = notes[0]
    assert note.startswith("caching the decoded frames of 3 videos in ")
    assert str(store.data_file) in note and f"({store.data_file.stat().st_size / 2**30:.2f} GiB," in note
    assert "--no-frame-cache" in note and f"python -m seco_lab data cache {tmp_path} --remove" in note
    assert "3.00 GiB" in frame_store._writing_note(store.data_file, 3, 3 * 2**30)
    FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=True, frame_sizes=[(32, 48)] * len(paths))
    assert "caching the decoded frames of" not in capsys.readouterr().err
    FrameStore.build(paths, counts, size=32, folder=tmp_path, progress=False, frame_sizes=[(32, 48)] * len(paths))
    assert capsys.readouterr().err == ""


def test_a_subset_of_the_videos_of_a_store_is_read_from_it(tmp_path):
    """A run on a subset (--max-videos-per-class) or a split whose videos an existing store of the same
    frame size holds, unchanged, reads them from that store instead of writing another one."""
    paths = _videos(tmp_path, count=5)
    counts = [probe_video(p).num_frames for p in paths]
    whole = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    files = sorted(tmp_path.glob(".seco_lab_frames_*"))
    subset = FrameStore.build(paths[3:0:-1], counts[3:0:-1], size=24, folder=tmp_path, progress=False)
    assert subset.data_file == whole.data_file and sorted(tmp_path.glob(".seco_lab_frames_*")) == files
    assert set(subset.entries) == {str(path) for path in paths[1:4]}
    for path, count in zip(paths[1:4], counts[1:4]):
        assert torch.equal(subset.read(path, range(count)), read_frames(path, range(count), 24))
    assert [store.videos for store in frame_store.cached_stores(tmp_path)] == [5]

    other_size = FrameStore.build(paths[1:3], counts[1:3], size=16, folder=tmp_path, progress=False)
    assert other_size.data_file != whole.data_file, "a store of another frame size holds other frames"
    write_video(paths[0], np.zeros((7, 32, 48, 3), dtype=np.uint8))  # outside the subset
    unchanged_subset = FrameStore.build(paths[1:4], counts[1:4], size=24, folder=tmp_path, progress=False)
    assert unchanged_subset.data_file == whole.data_file
    write_video(paths[2], np.zeros((6, 32, 48, 3), dtype=np.uint8))  # inside it: the larger store is out of date
    counts[2] = probe_video(paths[2]).num_frames
    rebuilt = FrameStore.build(paths[1:4], counts[1:4], size=24, folder=tmp_path, progress=False)
    assert rebuilt.data_file != whole.data_file
    assert torch.equal(rebuilt.read(paths[2], range(counts[2])), read_frames(paths[2], range(counts[2]), 24))
    smaller = FrameStore.build(paths[2:4], counts[2:4], size=24, folder=tmp_path, progress=False)
    assert smaller.data_file == rebuilt.data_file, "the smallest store holding every video is read"
    assert sorted(store.videos for store in frame_store.cached_stores(tmp_path)) == [2, 3, 5]


def test_store_is_not_built_when_the_disk_has_no_room(tmp_path, monkeypatch):
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    sizes = [(32, 48)] * len(paths)
    monkeypatch.setattr(frame_store, "RESERVE_BYTES", 1 << 60)
    with pytest.raises(FrameStoreSpaceError, match=f"needs 0.0 GiB on the disk of {tmp_path}"):
        FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False, frame_sizes=sizes)
    assert not list(tmp_path.glob(".seco_lab_frames_*")), "nothing may be left behind"


def test_a_disk_filling_up_while_caching_leaves_no_partial_store(tmp_path, monkeypatch):
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    decoded = []

    def read_until_the_disk_is_full(path, indices, size):
        if decoded:
            raise OSError(28, "No space left on device")
        decoded.append(path)
        return read_frames(path, indices, size)

    monkeypatch.setattr(frame_store, "read_frames", read_until_the_disk_is_full)
    with pytest.raises(FrameStoreSpaceError, match="filled up while caching"):
        FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False, processes=1)
    assert not list(tmp_path.glob(".seco_lab_frames_*"))


def test_a_store_decoded_in_several_processes_equals_one_decoded_here(tmp_path, monkeypatch):
    """The build decodes videos and searches their camera steps (most of its time: about 20 minutes
    for UCF101's split 1 on one core) in other processes; the file and index are the same."""
    paths = _videos(tmp_path, count=7)
    paths.insert(3, tmp_path / "broken.mp4")
    paths[3].write_bytes(b"not a video")
    counts = [probe_video(p).num_frames if p.name != "broken.mp4" else 5 for p in paths]
    for folder in ("here", "elsewhere"):
        (tmp_path / folder).mkdir()
    here = FrameStore.build(paths, counts, size=24, folder=tmp_path / "here", progress=False, processes=1)
    caller = os.getpid()

    def read_elsewhere(path, indices, size):
        assert os.getpid() != caller, "decoded in the calling process"
        return read_frames(path, indices, size)

    monkeypatch.setattr(frame_store, "read_frames", read_elsewhere)
    elsewhere = FrameStore.build(paths, counts, size=24, folder=tmp_path / "elsewhere", progress=False, processes=3)
    assert elsewhere.data_file.read_bytes() == here.data_file.read_bytes()
    assert json.loads(elsewhere.data_file.with_suffix(".json").read_text()) == \
        json.loads(here.data_file.with_suffix(".json").read_text())
    assert paths[3] not in elsewhere and paths[4] in elsewhere


def test_a_video_failing_in_another_process_stops_the_build_and_leaves_nothing(tmp_path, monkeypatch):
    paths = _videos(tmp_path, count=6)
    counts = [probe_video(p).num_frames for p in paths]

    def fail_on_the_fourth(path, indices, size):
        if Path(path) == paths[3]:
            raise RuntimeError(f"decoder crashed on {Path(path).name}")
        return read_frames(path, indices, size)

    monkeypatch.setattr(frame_store, "read_frames", fail_on_the_fourth)
    with pytest.raises(RuntimeError, match="clip3.mp4"):
        FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False, processes=2)
    assert not list(tmp_path.glob(".seco_lab_frames_*"))


def test_store_rejects_frame_indices_outside_the_video(tmp_path):
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    for bad in ([counts[1]], [-1], [0, counts[1] + 5]):
        with pytest.raises(IndexError, match="clip1.mp4"):
            store.read(paths[1], bad)
    assert store.read(paths[1], []).shape[0] == 0


def test_store_is_reused_and_rebuilt_when_a_video_changes(tmp_path):
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    data_file = store.data_file
    first_mtime = data_file.stat().st_mtime_ns
    FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    assert data_file.stat().st_mtime_ns == first_mtime, "an up-to-date store must be reused"
    write_video(paths[1], np.zeros((7, 32, 48, 3), dtype=np.uint8))
    counts[1] = probe_video(paths[1]).num_frames
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    assert torch.equal(store.read(paths[1], [0]), read_frames(paths[1], [0], 24))


def test_a_store_written_before_frames_were_turned_upright_is_rebuilt(tmp_path):
    """Version 2 stores hold a rotated phone video's frames as stored, not as shown; their index
    names version 2, and such a store must be decoded again instead of read."""
    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    index_file = store.data_file.with_suffix(".json")
    index = json.loads(index_file.read_text())
    index["version"] = 2
    index_file.write_text(json.dumps(index))
    store.data_file.write_bytes(bytes(store.data_file.stat().st_size))  # stale frames: all black
    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    assert torch.equal(store.read(paths[0], [0, 1]), read_frames(paths[0], [0, 1], 24))


def test_dataset_items_are_the_same_with_and_without_the_store(tmp_path):
    from seco_lab.video.io import VideoInfo
    from seco_lab.video.layouts import VideoRecord

    paths = _videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    records = [VideoRecord(p, 0, "a", "train") for p in paths]
    infos = [VideoInfo(n, 25.0, 48, 32) for n in counts]

    def view_maker(video, rng):
        return {"frames": video.read(rng.integers(0, video.num_frames, 4))}

    store = FrameStore.build(paths, counts, size=24, folder=tmp_path, progress=False)
    plain = VideoDataset(records, infos, view_maker, size=24, seed=3)
    cached = VideoDataset(records, infos, view_maker, size=24, seed=3, frame_store=store)
    for i in range(len(records)):
        assert torch.equal(plain[i]["frames"], cached[i]["frames"])


def test_the_caches_of_a_dataset_are_listed_and_removed_but_not_a_build_in_progress(tmp_path, monkeypatch, capsys):
    """Each subset / split / size keeps its own store: `data cache ROOT` lists them with their
    sizes and `--remove` deletes them, leaving the temporary file of a build still running."""
    from seco_lab.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "data"
    root.mkdir()
    paths = _videos(root)
    counts = [probe_video(p).num_frames for p in paths]
    FrameStore.build(paths, counts, size=24, folder=root, progress=False)
    read_only_copy = frame_store.user_cache_folder(root)  # where a read-only dataset's stores go
    read_only_copy.mkdir(parents=True)
    FrameStore.build(paths[:2], counts[:2], size=16, folder=read_only_copy, progress=False)
    (root / ".seco_lab_frames_24_0123456789ab.bin.tmp-999999999").write_bytes(b"x" * 100)  # a killed run's
    running = root / f".seco_lab_frames_24_0123456789ab.bin.tmp-{os.getpid()}"
    running.write_bytes(b"y" * 10)
    stores = frame_store.cached_stores(root)
    listed = {(store.size, store.videos, store.writer_pid) for store in stores}
    assert listed == {(24, 3, None), (16, 2, None), (24, None, 999999999), (24, None, os.getpid())}
    expected_total = sum(path.stat().st_size for store in stores for path in store.files)
    assert sum(store.num_bytes for store in stores) == expected_total

    assert main(["data", "cache", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3 videos" in out and "2 videos" in out and "left unfinished by a stopped run" in out
    assert "being written" in out and f"4 cache(s), {expected_total / 2**30:.2f} GiB" in out
    assert main(["data", "cache", str(root), "--remove"]) == 0
    assert "1 still being written, kept" in capsys.readouterr().out
    assert [store.files for store in frame_store.cached_stores(root)] == [(running,)]
    assert sorted(path.name for path in root.iterdir()) == sorted([path.name for path in paths] + [running.name])
    assert main(["data", "cache", str(tmp_path / "missing")]) == 2
    assert "missing: no such dataset folder" in capsys.readouterr().err


def _shaky_videos(folder: Path, count: int = 3, frames: int = 14, size: int = 64) -> list[Path]:
    """A faint scene of 4 px blocks filmed by a camera that shakes by up to 3 px per frame, with a
    strongly textured square crossing it: frames whose consecutive camera shifts are not all zero,
    and where the search from a frame to the next is not always the negative of the one back."""
    rng = np.random.default_rng(0)
    margin, side = 3 * frames, 20
    paths = []
    for i in range(count):
        blocks = rng.random(((size + 2 * margin) // 4 + 1, (size + 2 * margin) // 4 + 1, 3))
        scene = (0.3 * 255 * np.kron(blocks, np.ones((4, 4, 1)))).astype(np.uint8)
        square = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        offsets = np.cumsum(rng.integers(-3, 4, (frames, 2)), axis=0)  # (T, 2) camera position
        video = np.stack([scene[margin + dy:margin + dy + size, margin + dx:margin + dx + size] for dy, dx in offsets])
        for t in range(frames):
            video[t, 18:18 + side, 2 + 2 * t:2 + 2 * t + side] = square
        paths.append(folder / f"shaky{i}.mp4")
        write_video(paths[-1], video)
    return paths


def test_store_holds_the_camera_steps_of_its_frames_forth_and_back(tmp_path):
    from seco_lab.transforms.functional import estimate_translations

    paths = _shaky_videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    FrameStore.build(paths, counts, size=64, folder=tmp_path, progress=False)
    store = FrameStore.build(paths, counts, size=64, folder=tmp_path, progress=False)  # steps read back from the index
    asymmetric = 0
    for path, count in zip(paths, counts):
        frames = read_frames(path, range(count), 64)
        forward = estimate_translations(frames[:-1], frames[1:])
        backward = estimate_translations(frames[1:], frames[:-1])
        assert forward.abs().sum() > 0, "the shaking camera must give non-zero steps"
        asymmetric += int((backward != -forward).any(dim=1).sum())
        assert torch.equal(store.camera_steps(path, range(count - 1), range(1, count)), forward)
        assert torch.equal(store.camera_steps(path, range(1, count), range(count - 1)), backward)
        mixed = store.camera_steps(path, [4, 5, 2, 7], [5, 4, 2, 8])  # forward, back, itself, forward
        assert torch.equal(mixed, torch.stack([forward[4], backward[4], torch.zeros(2, dtype=torch.long), forward[7]]))
        assert store.camera_steps(path, [0, 3], [1, 5]) is None, "frames two apart are not stored"
        assert store.camera_steps(path, [count - 1], [count]) is None, "no frame after the last one"
    assert asymmetric > 0, "some steps back must differ from the negative step forth, or back is not tested"
    assert store.camera_steps(tmp_path / "unknown.mp4", [0], [1]) is None


@pytest.mark.parametrize("name,overrides,store_decides", [
    ("seco", {}, True),
    ("cvrl", {}, True),
    ("cvrl", {"cvrl": {"reverse_prob": 1.0}}, True),
    ("cvrl", {"cvrl": {"stride": 2}}, False),  # clip frames two apart: estimated while loading
    ("dualvar", {"dualvar": {"reverse_prob": 0.5}}, True),
    ("supervised", {}, True),
    ("supervised", {"supervised": {"backbone": "cvrl"}}, True),
])
def test_stabilized_views_are_the_same_with_the_stores_camera_steps(tmp_path, monkeypatch, name, overrides,
                                                                  store_decides):
    """The store's steps replace the search while loading and change no view; where it has no step
    (frames two apart) the search runs as before."""
    from seco_lab.methods import build_method
    from seco_lab.profiles import get_profile
    from seco_lab.transforms import functional
    from seco_lab.video.io import VideoInfo
    from seco_lab.video.layouts import VideoRecord

    config = get_profile("smoke")
    for section, values in overrides.items():
        config[section].update(values)
    config["data"]["num_classes"] = 1
    assert config[name if name != "supervised" else "seco"]["input_mode"] == "stabilized_differences"
    paths = _shaky_videos(tmp_path)
    counts = [probe_video(p).num_frames for p in paths]
    records = [VideoRecord(p, 0, "a", "train") for p in paths]
    infos = [VideoInfo(n, 25.0, 64, 64) for n in counts]
    views = build_method(name, config).view_maker()
    store = FrameStore.build(paths, counts, size=64, folder=tmp_path, progress=False)
    plain = VideoDataset(records, infos, views, size=64, seed=3)
    cached = VideoDataset(records, infos, views, size=64, seed=3, frame_store=store)
    expected = [plain[(epoch, i)] for epoch in range(3) for i in range(len(records))]
    if store_decides:
        def no_search(*args, **kwargs):
            raise AssertionError("the store's camera steps must be used")

        monkeypatch.setattr(functional, "estimate_translations", no_search)
    got = [cached[(epoch, i)] for epoch in range(3) for i in range(len(records))]
    for item_expected, item_got in zip(expected, got):
        assert item_expected.keys() == item_got.keys()
        for key in item_expected:
            assert torch.equal(item_expected[key], item_got[key]), key
