"""VideoIndex: cached per file by size and mtime, cache location, summary, load_dataset."""

import json
import os
import re
import unicodedata
import warnings
from pathlib import Path

import pytest

from seco_lab.video import index as index_module
from seco_lab.video.index import CACHE_FILE_NAME, MIN_USABLE_FRAMES, DataProblemWarning, VideoIndex, load_dataset
from seco_lab.video.io import VideoInfo
from seco_lab.video.layouts import discover
from tests._video_fixtures import make_video


@pytest.fixture
def folders_root(tmp_path):
    root = tmp_path / "data"
    for class_name in ("a", "b"):
        for i in range(3):
            make_video(root / class_name / f"{class_name}{i}.mp4", num_frames=8 + i, seed=i)
    return root


@pytest.fixture
def probe_counter(monkeypatch):
    calls = []
    original = index_module.probe_video_with_note

    def counting(path):
        calls.append(path.name)
        return original(path)

    monkeypatch.setattr(index_module, "probe_video_with_note", counting)
    monkeypatch.setattr(index_module, "default_processes", lambda num_calls: 1)  # counted in this process
    return calls


def test_index_records_frame_counts_and_caches_next_to_data(folders_root, probe_counter):
    spec = discover(folders_root)
    index = VideoIndex.build(spec, progress=False)
    assert index.cache_file == folders_root / CACHE_FILE_NAME and index.cache_file.exists()
    assert index[folders_root / "a" / "a2.mp4"] == VideoInfo(num_frames=10, fps=25.0, width=32, height=32)
    assert len(probe_counter) == 6 and not index.problems
    cached = json.loads(index.cache_file.read_text())
    assert cached["videos"]["b/b1.mp4"]["info"]["num_frames"] == 9
    probe_counter.clear()
    again = VideoIndex.build(spec, progress=False)
    assert probe_counter == [] and again.infos == index.infos


def test_videos_probed_in_several_processes_give_the_same_index(folders_root, tmp_path, monkeypatch):
    """Probing decodes every frame of every video (minutes for UCF101): it runs in other processes,
    and the index, its problems and its cache are those of probing here."""
    (folders_root / "a" / "broken.mp4").write_bytes(b"not a video")
    (folders_root / "b" / "empty.mp4").touch()
    here = VideoIndex.build(discover(folders_root), cache_dir=tmp_path / "here", progress=False, processes=1,
                            warn=False)
    caller = os.getpid()
    probe = index_module.probe_video_with_note

    def probe_elsewhere(path):
        assert os.getpid() != caller, "probed in the calling process"
        return probe(path)

    monkeypatch.setattr(index_module, "probe_video_with_note", probe_elsewhere)
    with pytest.warns(DataProblemWarning):
        elsewhere = VideoIndex.build(discover(folders_root), cache_dir=tmp_path / "elsewhere", progress=False,
                                     processes=3)
    assert elsewhere.infos == here.infos and len(elsewhere.infos) == 6
    assert elsewhere.problems == here.problems and len(elsewhere.problems) == 2
    assert json.loads(elsewhere.cache_file.read_text()) == json.loads(here.cache_file.read_text())


@pytest.mark.parametrize("processes", [1, 2])
def test_the_indexing_bar_ends_full(folders_root, tmp_path, capsys, processes):
    (folders_root / "a" / "broken.mp4").write_bytes(b"not a video")
    with pytest.warns(DataProblemWarning):
        VideoIndex.build(discover(folders_root), cache_dir=tmp_path, progress=True, processes=processes)
    bar = capsys.readouterr().err
    assert "7/7" in bar, bar  # the bar closed after the last video (it stopped at 6/7)


def test_changed_file_is_probed_again_alone(folders_root, probe_counter):
    spec = discover(folders_root)
    VideoIndex.build(spec, progress=False)
    probe_counter.clear()
    changed = folders_root / "b" / "b0.mp4"
    make_video(changed, num_frames=20)
    os.utime(changed, ns=(1, 1))
    index = VideoIndex.build(spec, progress=False)
    assert probe_counter == ["b0.mp4"]
    assert index[changed].num_frames == 20


def test_read_only_root_caches_in_home_cache(folders_root, tmp_path, monkeypatch, probe_counter):
    monkeypatch.setattr(index_module, "_root_is_writable", lambda root: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = discover(folders_root)
    index = VideoIndex.build(spec, progress=False)
    assert index.cache_file.parent == tmp_path / "cache" / "seco_lab"
    assert not (folders_root / CACHE_FILE_NAME).exists()
    probe_counter.clear()
    VideoIndex.build(spec, progress=False)
    assert probe_counter == []
    explicit = VideoIndex.build(spec, cache_dir=tmp_path / "elsewhere", progress=False)
    assert explicit.cache_file.parent == tmp_path / "elsewhere"


def test_an_index_no_folder_can_keep_is_built_with_one_notice(folders_root, tmp_path, monkeypatch):
    """A read-only dataset and a user cache folder that cannot be made (a file stands in its way)."""
    monkeypatch.setattr(index_module, "_root_is_writable", lambda root: False)
    (tmp_path / "home").write_text("a file, not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / "cache"))
    spec = discover(folders_root)
    with pytest.warns(UserWarning, match=r"index of .*data cannot be kept .*every load probes its videos again"):
        index = VideoIndex.build(spec, progress=False)
    assert len(index.infos) == 6 and index.cache_file is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VideoIndex.build(spec, progress=False)  # the notice is shown once per process
    assert sorted(path.name for path in folders_root.iterdir()) == ["a", "b"]
    printed_by = re.escape(f"full list in VideoIndex.problems, or printed by "
                           f"`python -m seco_lab data check {folders_root}`")
    with pytest.warns(DataProblemWarning, match=printed_by):
        VideoIndex.build(spec, progress=False, min_frames=9)  # a0 and b0 are too short: not listed in any file


def test_a_writable_index_in_a_read_only_dataset_folder_is_not_chosen(folders_root, tmp_path, monkeypatch):
    """The index file writable but not its folder (simulated: the tests may run as root, who writes anyway)."""
    VideoIndex.build(discover(folders_root), progress=False)
    system_access = os.access

    def access(path, mode, **options):  # the dataset folder reads as not writable
        return system_access(path, mode, **options) and not (mode & os.W_OK and Path(path) == folders_root)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(index_module, "_root_is_writable", lambda root: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    index = VideoIndex.build(discover(folders_root), progress=False)
    assert index.cache_file.parent == tmp_path / "cache" / "seco_lab"


def test_corrupt_cache_is_rebuilt(folders_root):
    spec = discover(folders_root)
    (folders_root / CACHE_FILE_NAME).write_text("{not json")
    index = VideoIndex.build(spec, progress=False)
    assert len(index.infos) == 6
    assert json.loads((folders_root / CACHE_FILE_NAME).read_text())["version"] == index_module.CACHE_VERSION


def test_summary_and_load_dataset(folders_root):
    with pytest.warns(DataProblemWarning, match="2 file"):
        spec, index = load_dataset(folders_root, min_frames=9, progress=False)
    assert len(spec.records) == 4  # a0 and b0 have 8 frames
    assert all(index[r].num_frames >= 9 for r in spec.records)
    text = index.summary(discover(folders_root))
    assert "layout: folders, 2 classes, 6 listed videos found, 4 usable" in text
    assert "frames per video: min 9, median 9.5, max 10" in text
    assert "32x32 (4)" in text
    assert "a0.mp4: too short: 8 decodable frame(s), need at least 9" in text


def test_load_dataset_keeps_by_default_the_videos_training_and_evaluation_can_use(folders_root):
    """Two decodable frames (MIN_USABLE_FRAMES), as pretraining, evaluation and the notebooks ask."""
    make_video(folders_root / "a" / "still.mp4", num_frames=1, seed=9)
    with pytest.warns(DataProblemWarning, match="1 file"):
        spec, index = load_dataset(folders_root, progress=False)
    assert MIN_USABLE_FRAMES == 2 and len(spec.records) == 6
    assert "still.mp4" not in {Path(record.path).name for record in spec.records}


def test_cache_file_gets_the_usual_permissions_of_new_files(folders_root):
    """A dataset folder is often shared: the index must be readable by whoever else uses it."""
    previous = os.umask(0o022)
    try:
        index = VideoIndex.build(discover(folders_root), progress=False)
    finally:
        os.umask(previous)
    assert index.cache_file.stat().st_mode & 0o777 == 0o644


def test_a_dangling_symlink_is_not_probed_again_on_every_load(folders_root, probe_counter):
    (folders_root / "a" / "moved.mp4").symlink_to(folders_root / "gone.mp4")
    spec = discover(folders_root)
    first = VideoIndex.build(spec, progress=False, warn=False)
    assert any("broken symbolic link" in problem.reason for problem in first.problems)
    cache_mtime = first.cache_file.stat().st_mtime_ns
    again = VideoIndex.build(spec, progress=False, warn=False)
    assert [p.reason for p in again.problems] == [p.reason for p in first.problems]
    assert again.cache_file.stat().st_mtime_ns == cache_mtime, "nothing changed: the cache must not be rewritten"


def test_an_index_write_that_fails_midway_leaves_no_partial_file(folders_root, monkeypatch):
    def disk_full(payload, stream):
        stream.write("{\"version\": ")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_module.json, "dump", disk_full)
    with pytest.warns(UserWarning, match="No space left on device"):
        VideoIndex.build(discover(folders_root), progress=False)
    assert not (folders_root / CACHE_FILE_NAME).exists()
    assert [p.name for p in folders_root.iterdir() if p.name.startswith(".seco_lab_index")] == []


def _many_listed_files(root: Path, count: int):
    """A dataset spec of ``count`` empty files (their probing is faked)."""
    from seco_lab.video.layouts import DatasetSpec, VideoRecord

    root.mkdir()
    records = []
    for number in range(count):
        path = root / f"v{number}.mp4"
        path.touch()
        records.append(VideoRecord(path, 0, "a", "train"))
    return DatasetSpec(root=root, layout="folders", classes=["a"], records=records)


def _fake_probing(monkeypatch, interrupt_after: int | None = None) -> list[str]:
    """Probing that returns a fixed VideoInfo at once (and raises KeyboardInterrupt after
    ``interrupt_after`` files); returns the names of the files probed."""
    probed = []

    def probe(path):
        if interrupt_after is not None and len(probed) == interrupt_after:
            raise KeyboardInterrupt
        probed.append(path.name)
        return VideoInfo(num_frames=10, fps=25.0, width=32, height=24), None

    monkeypatch.setattr(index_module, "probe_video_with_note", probe)
    monkeypatch.setattr(index_module, "default_processes", lambda num_calls: 1)  # counted in this process
    return probed


def test_the_index_saves_of_a_large_build_rewrite_a_number_of_entries_proportional_to_its_size(tmp_path, monkeypatch):
    """Every save rewrites the whole cache file: saving every SAVE_EVERY new entries rewrote about
    n^2 / (2 * SAVE_EVERY) entries (an hour of writing for Kinetics-400's 240k videos)."""
    count = 40 * index_module.SAVE_EVERY
    spec = _many_listed_files(tmp_path / "data", count)
    _fake_probing(monkeypatch)
    saved_sizes = []
    save = index_module._save_cache

    def counting_save(cache_file, root, entries):
        saved_sizes.append(len(entries))
        return save(cache_file, root, entries)

    monkeypatch.setattr(index_module, "_save_cache", counting_save)
    index = VideoIndex.build(spec, progress=False)
    assert len(index.infos) == count and saved_sizes[-1] == count
    assert sum(saved_sizes) <= 10 * count, f"{len(saved_sizes)} saves rewrote {sum(saved_sizes)} entries of {count}"
    assert saved_sizes[0] == index_module.SAVE_EVERY, "a small index is still saved every SAVE_EVERY entries"


def test_an_interrupted_index_build_keeps_most_of_its_work(tmp_path, monkeypatch):
    count = 24 * index_module.SAVE_EVERY
    done = 20 * index_module.SAVE_EVERY
    spec = _many_listed_files(tmp_path / "data", count)
    _fake_probing(monkeypatch, interrupt_after=done)
    with pytest.raises(KeyboardInterrupt):
        VideoIndex.build(spec, progress=False)
    probed_again = _fake_probing(monkeypatch)
    index = VideoIndex.build(spec, progress=False)
    assert len(index.infos) == count
    kept = count - len(probed_again)
    assert kept >= done * 5 / 6, f"only {kept} of the {done} files probed before Ctrl-C were kept"


def test_summary_names_classes_with_videos_in_one_split_only(tmp_path):
    """A class with no training video can never be predicted; one with no test video is never measured."""
    for folder in ("train/both", "test/both", "train/no_test", "test/no_train"):
        make_video(tmp_path / folder / f"{folder.replace('/', '_')}.mp4", num_frames=2)
    spec = discover(tmp_path)
    text = VideoIndex.build(spec, progress=False).summary(spec)
    assert ("classes without a training video (1; evaluation can never predict them, so their test videos all "
            "count as errors): no_train") in text
    assert "classes without a test video (1; evaluation does not measure them): no_test" in text


def test_summary_names_classes_without_any_usable_video(tmp_path):
    """An HMDB51 class whose videos are all missing (or unusable) still counts as a listed class."""
    from tests._video_fixtures import make_hmdb51

    root = make_hmdb51(tmp_path / "hmdb", classes=("brush_hair", "kiss", "wave"), per_class=3)
    for video in (root / "kiss").iterdir():
        video.unlink()
    spec = discover(root)
    text = VideoIndex.build(spec, progress=False, warn=False).summary(spec)
    assert re.search(r"^  kiss\s+0\s+0$", text, re.MULTILINE)
    assert ("classes without any usable video (1; evaluation can neither learn nor measure them, and leaves them "
            "out of its chance level): kiss") in text
    assert "classes without a training video" not in text and "classes without a test video" not in text


def test_summary_table_columns_line_up_with_class_names_printed_escaped(tmp_path):
    """A Latin-1 class folder name prints as caf\\udce9: the column is as wide as that, not as 'café'."""
    for class_name in (os.fsdecode(b"caf\xe9"), "plain"):
        for number in range(4):
            make_video(tmp_path / class_name / f"clip{number}.mp4", num_frames=2, seed=number)
    spec = discover(tmp_path)
    text = VideoIndex.build(spec, progress=False, warn=False).summary(spec)
    printed = text.encode("utf-8", errors="backslashreplace").decode("utf-8").splitlines()  # as the CLI prints it
    header = next(index for index, line in enumerate(printed) if line.lstrip().startswith("class "))
    rows = printed[header:header + 3]
    assert rows[1].startswith("  caf\\udce9  ") and rows[2].startswith("  plain      ")
    assert len({len(row) for row in rows}) == 1  # the counts are right-aligned: equal lengths, aligned columns


def test_summary_table_columns_line_up_with_wide_and_combining_characters(tmp_path):
    """A decomposed 'é' (e + accent, as a copy through macOS leaves it) takes one column and each
    CJK character two: the counts stand in the same columns on every row."""
    names = (unicodedata.normalize("NFD", "café dancing"), "跳舞 jump", "plain")
    for class_name in names:
        for number in range(4):
            make_video(tmp_path / class_name / f"clip{number}.mp4", num_frames=2, seed=number)
    spec = discover(tmp_path)
    text = VideoIndex.build(spec, progress=False, warn=False).summary(spec)
    lines = text.splitlines()
    header = next(index for index, line in enumerate(lines) if line.lstrip().startswith("class "))
    rows = lines[header:header + 4]

    def columns(line: str) -> int:  # a plain count of terminal columns, character by character
        return sum(0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) == "W" else 1
                   for char in line)

    assert len({columns(row) for row in rows}) == 1
    assert next(row for row in rows if "plain" in row).startswith("  plain" + " " * len("café dancing") + "  ")
