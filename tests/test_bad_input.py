"""Bad input: empty, truncated, non-video, too-short and missing files; layout errors; bad files during training."""

import io
import os
import re
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from seco_lab.video.check import run_check
from seco_lab.video.dataset import VideoDataset
from seco_lab.video.index import DataProblemWarning, VideoIndex, load_dataset
from seco_lab.video.io import VideoDecodeError, probe_video, read_frames, write_video
from seco_lab.video.layouts import LAYOUTS, discover
from tests._video_fixtures import make_ucf101, make_video, smooth_frames

CLASS_DIR = "UCF-101/ApplyEyeMakeup"


def _truncate(path, keep_fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


@pytest.fixture
def damaged_ucf(tmp_path):
    """UCF101 tree with one empty, one non-video, one truncated, one too-short file and one missing entry."""
    root = make_ucf101(tmp_path / "ucf")
    (root / CLASS_DIR / "v_ApplyEyeMakeup_g01_c01.avi").write_bytes(b"")
    (root / CLASS_DIR / "v_ApplyEyeMakeup_g01_c02.avi").write_text("this is a text file, not a video\n" * 20)
    truncated = root / CLASS_DIR / "v_ApplyEyeMakeup_g02_c01.avi"
    write_video(truncated, smooth_frames(40), codec="mpeg4")
    _truncate(truncated, 0.6)
    make_video(root / CLASS_DIR / "v_ApplyEyeMakeup_g02_c02.avi", num_frames=3)
    with open(root / "ucfTrainTestlist" / "trainlist01.txt", "a") as handle:
        handle.write("ApplyEyeMakeup/v_ApplyEyeMakeup_g07_c01.avi 1\r\n")
    return root


def test_each_problem_file_is_named_with_its_reason_in_one_warning(damaged_ucf):
    spec = discover(damaged_ucf)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = VideoIndex.build(spec, progress=False, min_frames=8)
    data_warnings = [w for w in caught if issubclass(w.category, DataProblemWarning)]
    assert len(data_warnings) == 1
    message = str(data_warnings[0].message)
    assert "4 file(s) skipped, and 1 kept and used (damaged, or with a note on its listing)" in message
    breakdown = message.split("with a note on its listing) (", 1)[1].split(");", 1)[0]  # "2 reason, 1 reason, ..."
    assert sum(int(part.split()[0]) for part in breakdown.split(", ")) == 5, breakdown  # five kinds, none left out
    reasons = {problem.path.name: problem for problem in index.problems}
    assert set(reasons) == {"v_ApplyEyeMakeup_g01_c01.avi", "v_ApplyEyeMakeup_g01_c02.avi",
                            "v_ApplyEyeMakeup_g02_c01.avi", "v_ApplyEyeMakeup_g02_c02.avi",
                            "v_ApplyEyeMakeup_g07_c01.avi"}
    assert "empty" in reasons["v_ApplyEyeMakeup_g01_c01.avi"].reason
    assert "not a readable video" in reasons["v_ApplyEyeMakeup_g01_c02.avi"].reason
    assert "too short: 3 decodable frame(s)" in reasons["v_ApplyEyeMakeup_g02_c02.avi"].reason
    assert "trainlist01.txt but no such video" in reasons["v_ApplyEyeMakeup_g07_c01.avi"].reason
    truncated = reasons["v_ApplyEyeMakeup_g02_c01.avi"]
    assert not truncated.skipped and "truncated" in truncated.reason
    assert [p.skipped for p in index.problems].count(True) == 4
    problems_file = index.write_problems()
    listed = problems_file.read_text()
    assert all(name in listed for name in reasons)


def test_truncated_file_keeps_its_decodable_frames(tmp_path):
    path = tmp_path / "cut.avi"
    write_video(path, smooth_frames(40), codec="mpeg4")
    _truncate(path, 0.6)
    kept = probe_video(path).num_frames
    assert 1 <= kept < 40
    assert read_frames(path, [0, kept - 1]).shape == (2, 3, 32, 32)
    with pytest.raises(VideoDecodeError, match=f"{kept} decodable"):
        read_frames(path, [kept])


def test_a_file_whose_middle_frames_do_not_decode_gives_each_index_its_own_frame(tmp_path):
    """Frame i is the i-th frame that decodes. Seeking by timestamp would land 10 frames late past
    the damage (and fail on the last frames), so a file whose timestamps count more frames than
    decode is read from the start when its probed frame count is given."""
    path = tmp_path / "damaged.avi"
    write_video(path, smooth_frames(40, seed=1), codec="mpeg4")
    data = bytearray(path.read_bytes())
    middle, length = len(data) // 2, len(data) // 8
    data[middle:middle + length] = b"\xff" * length
    path.write_bytes(bytes(data))
    kept = probe_video(path).num_frames
    assert 1 <= kept < 40
    every = read_frames(path, range(kept))  # decoded in one pass from the first frame
    for index in range(kept):
        assert torch.equal(read_frames(path, [index], num_frames=kept)[0], every[index]), index
    assert read_frames(path, [kept - 1]).shape == (1, 3, 32, 32)  # without the count: no longer refused


def test_truncated_mp4_without_index_is_skipped(tmp_path):
    for name in ("good", "cut"):
        make_video(tmp_path / "cls" / f"{name}.mp4")
    _truncate(tmp_path / "cls" / "cut.mp4", 0.7)
    with pytest.warns(DataProblemWarning, match="cut.mp4"), pytest.warns(UserWarning, match="found one class"):
        spec, index = load_dataset(tmp_path, progress=False)
    assert [r.path.name for r in spec.records] == ["good.mp4"]
    assert [p.path.name for p in index.problems] == ["cut.mp4"]


def test_problems_are_remembered_by_the_cache(damaged_ucf):
    spec = discover(damaged_ucf)
    with pytest.warns(DataProblemWarning):
        first = VideoIndex.build(spec, progress=False, min_frames=8)
    with warnings.catch_warnings(record=True) as caught:  # shown once per process, whatever the filters say
        warnings.simplefilter("always")
        second = VideoIndex.build(spec, progress=False, min_frames=8)
    assert not [w for w in caught if issubclass(w.category, DataProblemWarning)]
    assert first.problems == second.problems and first.infos == second.infos
    with pytest.warns(DataProblemWarning, match="3 file"):  # another list of problems is news
        VideoIndex.build(spec, progress=False, min_frames=1)


def test_run_check_prints_summary_and_every_problem(damaged_ucf):
    out = io.StringIO()
    code = run_check(damaged_ucf, min_frames=8, progress=False, out=out)
    text = out.getvalue()
    assert code == 1
    assert "layout: ucf101, 2 classes, 12 listed videos found, 9 usable" in text
    assert "problems: 5" in text and "v_ApplyEyeMakeup_g02_c02.avi: too short" in text
    assert "4 file(s) skipped, and 1 kept and used (damaged, or with a note on its listing)" in text
    with pytest.warns(DataProblemWarning, match="4 file"):  # the check prints the list; loading still warns once
        load_dataset(damaged_ucf, min_frames=8, progress=False)


def test_run_check_names_a_missing_split_without_the_list_of_layouts(tmp_path):
    """The error about one file or folder is printed alone: the list of layouts (tracking among
    them) follows only the error of a folder that fits none."""
    make_ucf101(tmp_path, groups=2, clips=1)
    out = io.StringIO()
    assert run_check(tmp_path, split=4, progress=False, out=out) == 2
    assert out.getvalue() == (f"error: {tmp_path / 'ucfTrainTestlist'}: split 4 needs trainlist04.txt and "
                              "testlist04.txt; available: testlist01.txt, testlist02.txt, trainlist01.txt, "
                              "trainlist02.txt\n")


def test_run_check_on_a_wrong_layout_names_the_understood_layouts(tmp_path):
    (tmp_path / "readme.md").write_text("no videos here")
    out = io.StringIO()
    assert run_check(tmp_path, progress=False, out=out) == 2
    assert all(name in out.getvalue() for name in LAYOUTS) and "tracking (OTB)" in out.getvalue()
    out = io.StringIO()
    make_video(tmp_path / "cls" / "ok.mp4")
    assert run_check(tmp_path, layout="hmdb51", progress=False, out=out) == 2
    assert "not a hmdb51 layout" in out.getvalue()
    out = io.StringIO()
    assert run_check(tmp_path, progress=False, out=out) == 0
    assert "ok: every annotated video is usable" in out.getvalue()


def write_otb_sequence(folder, num_frames=4, size=32):
    """An OTB sequence folder: img/0001.jpg ... and a groundtruth_rect.txt of one box per frame."""
    from PIL import Image

    (folder / "img").mkdir(parents=True)
    for number in range(1, num_frames + 1):
        pixels = torch.full((size, size, 3), 40 * number % 256, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / "img" / f"{number:04d}.jpg")
    (folder / "groundtruth_rect.txt").write_text("".join(f"{number + 4},5,8,8\n" for number in range(num_frames)))


def test_run_check_reads_a_folder_of_tracking_sequences_and_names_each_problem(tmp_path):
    root = tmp_path / "otb"
    for name in ("Fine", "Header", "Truncated"):
        write_otb_sequence(root / name)
    (root / "Header" / "groundtruth_rect.txt").write_text("x,y,w,h\n1,1,8,8\n")
    _truncate(root / "Truncated" / "img" / "0003.jpg", 0.3)
    out = io.StringIO()
    assert run_check(root, progress=False, out=out) == 1
    text = out.getvalue()
    assert f"note: no video dataset in {root}; its tracking sequences were checked" in text
    assert f"tracking sequences (OTB layout) in {root}: 3, of which 1 can be tracked and scored (4 frames" in text
    assert re.search(r"problem: Header: .*Header.groundtruth_rect\.txt: line 1 is not numeric", text)
    assert re.search(r"problem: Truncated: .*Truncated.img.0003\.jpg", text)
    assert "2 tracking sequence(s) will be left out" in text
    shutil.rmtree(root / "Fine")
    out = io.StringIO()
    assert run_check(root, progress=False, out=out) == 2
    assert "error: no tracking sequence can be scored" in out.getvalue()


def test_run_check_checks_the_tracking_sequences_next_to_the_videos(tmp_path):
    root = make_ucf101(tmp_path / "ucf")
    write_otb_sequence(root / "tracking" / "Fine")
    out = io.StringIO()
    assert run_check(root, progress=False, out=out) == 0
    text = out.getvalue()
    assert "ok: every annotated video is usable" in text and "ok: every tracking sequence can be tracked" in text
    write_otb_sequence(root / "tracking" / "Short", num_frames=1)
    out = io.StringIO()
    assert run_check(root, progress=False, out=out) == 1
    assert "ok: every annotated video is usable" in out.getvalue()
    assert "problem: Short: 1 frame(s) paired with a box" in out.getvalue()


def test_checking_a_video_dataset_does_not_import_the_evaluation_protocols(tmp_path):
    """`data check` of a folder without tracking sequences must not spend seconds importing
    scikit-learn and the evaluation protocols; a folder with them still gets them checked (above)."""
    root = make_ucf101(tmp_path / "ucf")
    script = ("import io, sys\n"
              "from seco_lab.video.check import run_check\n"
              f"code = run_check({str(root)!r}, progress=False, out=io.StringIO())\n"
              "print(code, 'sklearn' in sys.modules, 'seco_lab.evaluation' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "False", "False"], "exit code, then whether each was imported"


class FirstFrames:
    """ViewMaker: the first two frames, plus a number from the torch RNG."""

    def __call__(self, source, rng):
        start = int(rng.integers(0, source.num_frames - 1))
        return {"clip": source.read([start, start + 1]), "noise": torch.rand(())}


def test_a_file_broken_after_indexing_gets_a_deterministic_replacement(tmp_path):
    for i in range(6):
        make_video(tmp_path / "cls" / f"v{i}.mp4", seed=i)
    with pytest.warns(UserWarning, match="found one class"):
        spec = discover(tmp_path)
    index = VideoIndex.build(spec, progress=False)
    records = spec.records
    broken = 2
    records[broken].path.write_bytes(b"\x00" * 500)
    log = tmp_path / "problems.log"
    first = VideoDataset(records, index, FirstFrames(), size=16, seed=3, problem_log=log)
    with pytest.warns(RuntimeWarning, match="v2.mp4"):
        item = first[broken]
    assert item["index"].item() != broken and item["clip"].shape == (2, 3, 16, 16)
    assert [p.path.name for p in first.problems] == ["v2.mp4"]
    assert "v2.mp4" in log.read_text()
    second = VideoDataset(records, index, FirstFrames(), size=16, seed=3)
    with pytest.warns(RuntimeWarning):
        again = second[broken]
    assert all(torch.equal(item[key], again[key]) for key in item)
    for i in range(len(records)):  # the whole epoch runs
        assert first[i]["clip"].dtype == torch.uint8


def test_view_maker_bugs_are_not_masked_as_bad_files(tmp_path):
    make_video(tmp_path / "cls" / "v.mp4")
    with pytest.warns(UserWarning, match="found one class"):
        spec = discover(tmp_path)
    index = VideoIndex.build(spec, progress=False)

    def reads_past_the_end(source, rng):
        return {"clip": source.read([source.num_frames])}

    dataset = VideoDataset(spec.records, index, reads_past_the_end, size=None)
    with pytest.raises(IndexError, match=r"\[0, 12\)"):
        dataset[0]
    assert dataset.problems == []


def test_check_names_undecodable_file_names_and_broken_links_without_crashing(tmp_path):
    """A Latin-1 file name (an old archive) and a dangling symlink are problems to list, not crashes."""
    root = tmp_path / "videos"
    for split in ("train", "test"):
        for name in ("a", "b"):
            make_video(root / split / name / "good.mp4")
    latin1 = root / "train" / "a" / os.fsdecode(b"vid\xe9o.mp4")
    latin1.write_bytes(b"")
    os.symlink(tmp_path / "gone.mp4", root / "train" / "b" / "moved.mp4")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict UTF-8 output, as on most terminals
    result = subprocess.run([sys.executable, "-m", "seco_lab", "data", "check", str(root)], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "vid\\udce9o.mp4: file is empty" in result.stdout
    assert f"moved.mp4: broken symbolic link (to {tmp_path / 'gone.mp4'}" in result.stdout
    problems = (root / ".seco_lab_index.problems.txt").read_text()
    assert "vid\\udce9o.mp4" in problems and "moved.mp4" in problems
    assert problems.startswith(f"# 2 problem(s) of the last index build of {root}: 6 video(s), kept with at least "
                               "2 decodable frame(s)\n")


def test_summary_of_a_loaded_dataset_counts_the_files_it_found_not_only_the_usable_ones(damaged_ucf):
    with pytest.warns(DataProblemWarning):
        spec, index = load_dataset(damaged_ucf, min_frames=8, progress=False)
    assert "12 listed videos found, 9 usable" in index.summary(spec)


def test_a_dataset_pointed_at_one_folder_too_high_is_named_by_check_and_refused_by_evaluation(tmp_path):
    from seco_lab.evaluation.features import EvaluationError
    from seco_lab.evaluation.runner import load_video_splits

    for class_name in ("Archery", "YoYo"):
        for number in range(4):
            make_video(tmp_path / "UCF-101" / class_name / f"clip{number}.mp4", num_frames=4, seed=number)
    out = io.StringIO()
    assert run_check(tmp_path, progress=False, out=out) == 0
    text = out.getvalue()
    assert "layout: folders, 1 classes" in text
    assert f"note: {tmp_path}: the folders layout found one class, 'UCF-101'" in text
    assert f"point at {tmp_path / 'UCF-101'} to use them as classes" in text
    with pytest.warns(UserWarning, match="found one class"), \
            pytest.raises(EvaluationError, match=r"need at least 2 classes with training videos; found 1 \(UCF-101\)"):
        load_video_splits(tmp_path)
    assert load_video_splits(tmp_path / "UCF-101").spec.classes == ["Archery", "YoYo"]


def test_a_video_in_a_codec_ffmpeg_cannot_decode_is_a_named_problem(tmp_path):
    """An AVI whose FourCC names a codec FFmpeg does not know opens with a video stream but no decoder."""
    for name in ("a/good", "b/good", "b/unknown_codec"):
        make_video(tmp_path / f"{name}.avi")
    unknown = tmp_path / "b" / "unknown_codec.avi"
    unknown.write_bytes(unknown.read_bytes().replace(b"FMP4", b"QQQQ"))
    with pytest.raises(VideoDecodeError, match=r"unknown_codec\.avi: no decoder for its video codec"):
        probe_video(unknown)
    output = io.StringIO()
    assert run_check(tmp_path, progress=False, out=output) == 1
    assert f"{unknown}: no decoder for its video codec" in output.getvalue()


def test_a_named_pipe_among_the_videos_is_named_as_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(VideoDecodeError, match="pipe.mp4: not a regular file"):
        probe_video(fifo)


def test_a_folders_split_without_test_videos_says_that_the_split_is_a_name_hash_and_how_to_change_it(tmp_path):
    """Class folders that reuse the same file names (v0..v5) land alike: split 1 puts all six in train."""
    from seco_lab.evaluation.features import EvaluationError
    from seco_lab.evaluation.runner import load_video_splits

    for class_name in ("a", "b", "c"):
        for number in range(6):
            make_video(tmp_path / "hashed" / class_name / f"v{number}.mp4", num_frames=2, seed=number)
    with pytest.raises(EvaluationError, match=re.escape(
            "found 18 train / 0 test: the folders layout puts each video in train or test by a hash of its file name, "
            "salted by the split number (1 here), and none landed in test (class folders that reuse the same file "
            "names land alike); split 2 (--split 2, for pretrain as for evaluate) hashes them another way, and train/ "
            "and test/ folders of class folders set the split yourself")):
        load_video_splits(tmp_path / "hashed")
    splits = load_video_splits(tmp_path / "hashed", split=2)
    assert (len(splits.train), len(splits.test)) == (15, 3)
    for class_name in ("a", "b"):  # a split given by folders: no hash to change
        make_video(tmp_path / "folders" / "train" / class_name / "v0.mp4", num_frames=2)
    (tmp_path / "folders" / "test").mkdir()
    with pytest.raises(EvaluationError, match=r"found 2 train / 0 test$"):
        load_video_splits(tmp_path / "folders")


def test_check_reads_an_old_archive_whose_lists_and_names_share_latin1_bytes_and_prints_them_escaped(tmp_path):
    """HMDB51 as an old archive extracts it: class, file and split-list names in Latin-1, not UTF-8."""
    root = tmp_path / "hmdb"
    (root / "testTrainMulti_7030_splits").mkdir(parents=True)
    for class_name in (b"caf\xe9", b"plain"):
        stems = [b"Am\xe9lie_" + class_name + b"_%d" % number for number in range(3)]
        for number, stem in enumerate(stems):
            make_video(root / os.fsdecode(class_name) / os.fsdecode(stem + b".avi"), num_frames=2, seed=number)
        (root / "testTrainMulti_7030_splits" / os.fsdecode(class_name + b"_test_split1.txt")).write_bytes(
            b"".join(stem + b".avi " + tag + b" \n" for stem, tag in zip(stems, (b"1", b"1", b"2"))))
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict UTF-8 output, as on most terminals
    result = subprocess.run([sys.executable, "-m", "seco_lab", "data", "check", str(root)], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "layout: hmdb51, 2 classes, 6 listed videos found, 6 usable" in result.stdout
    assert f"\n  {'class':<9}   train    test\n  caf\\udce9       2       1\n  {'plain':<9}       2       1\n" in result.stdout
