"""Layout discovery: UCF101, HMDB51, Kinetics, plain folders; auto-detection and layout errors."""

import csv
import shutil
import warnings
from pathlib import Path

import pytest

from seco_lab.video.layouts import LAYOUTS, LayoutError, detect_layout, discover, folder_split_of
from tests._video_fixtures import make_hmdb51, make_ucf101, make_video


def test_ucf101_split_lists_classes_groups_and_extension_mismatch(tmp_path):
    make_ucf101(tmp_path, suffix=".mp4", list_suffix=".avi")  # lists say .avi, files are .mp4
    spec = discover(tmp_path)
    assert spec.layout == "ucf101"
    assert spec.classes == ["ApplyEyeMakeup", "HandstandPushups"]
    train, test = spec.split("train"), spec.split("test")
    assert (len(train), len(test)) == (8, 4)
    assert not spec.problems
    assert {r.group for r in train} == {"g01", "g02"} and {r.group for r in test} == {"g03"}
    handstand = [r for r in spec.records if r.class_name == "HandstandPushups"]
    assert all(r.label == 1 and r.path.suffix == ".mp4" and r.path.exists() for r in handstand)
    assert all(r.path.parent.name == r.class_name for r in spec.records)


def test_ucf101_missing_entries_are_problems_and_unknown_split_is_an_error(tmp_path):
    make_ucf101(tmp_path)
    (tmp_path / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi").unlink()
    spec = discover(tmp_path, layout="ucf101", split=2)
    assert len(spec.split("train")) == 7
    # shown where the class's videos are, under the extra UCF-101/ level the list's entry does not name
    assert [p.path for p in spec.problems] == [tmp_path / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi"]
    assert "trainlist02.txt" in spec.problems[0].reason
    with pytest.raises(LayoutError, match=r"split 3.*trainlist01\.txt"):
        discover(tmp_path, layout="ucf101", split=3)


def test_hmdb51_tags_select_train_test_and_skip_unused(tmp_path):
    make_hmdb51(tmp_path)
    (tmp_path / "wave" / "Clip_wave_[2]_u_nm_np1_fr_med_2.avi").unlink()
    spec = discover(tmp_path)
    assert spec.layout == "hmdb51"
    assert spec.classes == ["brush_hair", "wave"]
    assert len(spec.split("train")) == 3 and len(spec.split("test")) == 2
    assert not any("[0]" in r.path.name for r in spec.records)  # tag 0 = unused
    assert [p.path.name for p in spec.problems] == ["Clip_wave_[2]_u_nm_np1_fr_med_2.avi"]
    assert all(r.label == spec.classes.index(r.class_name) for r in spec.records)


def _kinetics_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        writer.writerows(rows)


@pytest.mark.parametrize("storage", ["split/label", "label", "flat"])
def test_kinetics_csv_finds_clips_wherever_stored(tmp_path, storage):
    rows = [("air drumming", "abc_DEF-123", 5, 15, "train"), ("air drumming", "zzz", 0, 10, "val"),
            ("abseiling", "q1", 30, 40, "train"), ("abseiling", "q2", 1, 11, "test")]
    _kinetics_csv(tmp_path / "kinetics_annotations.csv", rows)
    for seed, (label, youtube_id, start, end, split) in enumerate(rows):
        folder = {"split/label": tmp_path / ("val" if split == "val" else split) / label,
                  "label": tmp_path / label, "flat": tmp_path / "videos"}[storage]
        make_video(folder / f"{youtube_id}_{start:06d}_{end:06d}.mp4", seed=seed)
    spec = discover(tmp_path)
    assert spec.layout == "kinetics"
    assert spec.classes == ["abseiling", "air drumming"]
    assert sorted((r.class_name, r.split) for r in spec.records) == [
        ("abseiling", "test"), ("abseiling", "train"), ("air drumming", "test"), ("air drumming", "train")]
    assert not spec.problems


def test_kinetics_missing_clip_is_a_problem(tmp_path):
    _kinetics_csv(tmp_path / "train.csv", [("a", "x", 0, 10, "train"), ("a", "y", 0, 10, "train")])
    make_video(tmp_path / "train" / "a" / "x_000000_000010.mp4")
    spec = discover(tmp_path, layout="kinetics")
    assert len(spec.records) == 1
    assert [p.path.name for p in spec.problems] == ["y_000000_000010.mp4"]


def test_folders_hash_split_is_deterministic_and_about_70_30(tmp_path):
    names = [f"video_{i}.mp4" for i in range(2000)]
    train_share = sum(folder_split_of(name) == "train" for name in names) / len(names)
    assert 0.66 < train_share < 0.74
    assert [folder_split_of(n) for n in names[:50]] == [folder_split_of(n.replace(".mp4", ".avi")) for n in names[:50]]
    assert [folder_split_of(n, 1) for n in names[:50]] != [folder_split_of(n, 2) for n in names[:50]]
    for class_name in ("cats", "dogs"):
        for i in range(4):
            make_video(tmp_path / class_name / f"{class_name}{i}.mkv", seed=i)
    spec = discover(tmp_path)
    assert spec.layout == "folders" and spec.classes == ["cats", "dogs"]
    assert len(spec.records) == 8
    assert all(r.split == folder_split_of(r.path.name) for r in spec.records)
    assert discover(tmp_path).records == spec.records


def test_folders_with_train_and_val_directories_use_them_as_split(tmp_path):
    make_video(tmp_path / "train" / "cats" / "a.mp4")
    make_video(tmp_path / "train" / "dogs" / "b.mp4")
    make_video(tmp_path / "val" / "dogs" / "c.webm")
    spec = discover(tmp_path)
    assert spec.layout == "folders" and spec.classes == ["cats", "dogs"]
    assert [(r.path.name, r.split, r.label) for r in spec.records] == [
        ("a.mp4", "train", 0), ("b.mp4", "train", 1), ("c.webm", "test", 1)]


def test_auto_detection_picks_each_layout(tmp_path):
    make_ucf101(tmp_path / "ucf", groups=2, clips=1)
    make_hmdb51(tmp_path / "hmdb", per_class=3)
    make_video(tmp_path / "folders" / "a" / "x.mp4")
    assert detect_layout(tmp_path / "ucf") == "ucf101"
    assert detect_layout(tmp_path / "hmdb") == "hmdb51"
    assert detect_layout(tmp_path / "folders") == "folders"


def test_wrong_layout_errors_name_the_understood_layouts_and_what_was_found(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(LayoutError) as error:
        discover(tmp_path)
    message = str(error.value)
    assert all(name in message for name in LAYOUTS)
    assert "1 .txt" in message and "empty_folder" in message
    make_hmdb51(tmp_path / "hmdb", per_class=3)
    with pytest.raises(LayoutError, match=r"not a ucf101 layout[\s\S]*hmdb51"):
        discover(tmp_path / "hmdb", layout="ucf101")
    with pytest.raises(LayoutError, match="unknown layout 'imagenet'"):
        discover(tmp_path, layout="imagenet")
    with pytest.raises(LayoutError, match="does not exist"):
        discover(tmp_path / "nowhere")


def test_annotations_naming_no_existing_video_are_a_layout_error(tmp_path):
    make_ucf101(tmp_path, groups=2, clips=1)
    for video in (tmp_path / "UCF-101").rglob("*.avi"):
        video.unlink()
    with pytest.raises(LayoutError, match="none of its 4 annotated entries"):
        discover(tmp_path)


def test_kinetics_without_split_column_uses_csv_name_and_bare_youtube_ids(tmp_path):
    with open(tmp_path / "validate.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "youtube_id", "time_start", "time_end"])
        writer.writerow(["bowling", "id_with_underscore", "3.0", "13.0"])
    make_video(tmp_path / "bowling" / "id_with_underscore.webm")
    spec = discover(tmp_path)
    assert [(r.path.name, r.split, r.class_name) for r in spec.records] == [("id_with_underscore.webm", "test", "bowling")]


def test_annotation_files_saved_with_a_byte_order_mark_read_the_same(tmp_path):
    """Excel and pandas' utf-8-sig write a BOM before the header; the first column is still "label"."""
    rows = [("abseiling", "q1", 30, 40, "train"), ("abseiling", "q2", 1, 11, "validate")]
    for folder in ("plain", "bom"):
        (tmp_path / folder).mkdir()
    _kinetics_csv(tmp_path / "plain" / "train.csv", rows)
    text = (tmp_path / "plain" / "train.csv").read_text()
    (tmp_path / "bom" / "train.csv").write_text(text.replace("\n", "\r\n"), encoding="utf-8-sig")
    for root in (tmp_path / "plain", tmp_path / "bom"):
        for seed, (label, youtube_id, start, end, _) in enumerate(rows):
            make_video(root / label / f"{youtube_id}_{start:06d}_{end:06d}.mp4", seed=seed)
    plain, bom = discover(tmp_path / "plain"), discover(tmp_path / "bom")
    assert [(r.path.name, r.split) for r in bom.records] == [(r.path.name, r.split) for r in plain.records]
    assert len(bom.records) == 2 and not bom.problems

    ucf = make_ucf101(tmp_path / "ucf")
    class_index = ucf / "ucfTrainTestlist" / "classInd.txt"
    class_index.write_text(class_index.read_text(), encoding="utf-8-sig")
    assert discover(ucf).classes == ["ApplyEyeMakeup", "HandstandPushups"]


def test_file_names_that_are_not_utf8_are_indexed(tmp_path):
    """Old archives extract names in Latin-1; Python sees them with surrogate escapes."""
    import os

    latin1 = os.fsdecode(b"r\xe9cette")
    for name in [latin1] + [f"clip{i}" for i in range(5)]:
        make_video(tmp_path / "cooking" / f"{name}.mp4", seed=len(name))
        make_video(tmp_path / "juggling" / f"{name}.mp4", seed=len(name) + 1)
    spec = discover(tmp_path, layout="folders")
    assert sum(r.path.stem == latin1 for r in spec.records) == 2
    assert folder_split_of(f"{latin1}.mp4") in ("train", "test")


def test_symlinked_folders_are_followed_but_never_back_up_into_a_loop(tmp_path):
    import os

    for name in ("a", "b"):
        for clip in range(3):
            make_video(tmp_path / "data" / name / f"{name}{clip}.mp4", seed=clip)
    make_video(tmp_path / "elsewhere" / "extra.mp4")
    os.symlink("..", tmp_path / "data" / "a" / "up")  # a loop back to the root
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "b" / "linked")  # a real folder elsewhere
    os.symlink(tmp_path / "data" / "b", tmp_path / "data" / "b" / "self")  # the class folder again
    spec = discover(tmp_path / "data", layout="folders")
    assert sorted(r.path.name for r in spec.records) == ["a0.mp4", "a1.mp4", "a2.mp4", "b0.mp4", "b1.mp4",
                                                          "b2.mp4", "extra.mp4"]
    assert {r.path.name: r.class_name for r in spec.records}["extra.mp4"] == "b"


def test_broken_symbolic_links_to_folders_are_named_problems(tmp_path):
    """A linked class folder whose target is gone drops a whole class: the link is named, as is a
    broken link to a folder inside a class; in an annotated layout too."""
    import os
    import shutil

    for name in ("a", "b"):
        for clip in range(3):
            make_video(tmp_path / "data" / name / f"{name}{clip}.mp4", seed=clip)
    os.symlink(tmp_path / "gone" / "c", tmp_path / "data" / "c")
    os.symlink(tmp_path / "gone" / "more", tmp_path / "data" / "b" / "more")
    spec = discover(tmp_path / "data", layout="folders")
    assert spec.classes == ["a", "b"]
    assert {problem.path.relative_to(tmp_path / "data").as_posix(): problem.reason for problem in spec.problems} == {
        "c": f"broken symbolic link (to {tmp_path / 'gone' / 'c'}): its target does not exist",
        "b/more": f"broken symbolic link (to {tmp_path / 'gone' / 'more'}): its target does not exist"}
    ucf = make_ucf101(tmp_path / "ucf")
    linked = ucf / "UCF-101" / "HandstandPushups"
    shutil.rmtree(linked)
    os.symlink(tmp_path / "gone" / "HandstandPushups", linked)
    reasons = [problem.reason for problem in discover(ucf).problems]
    assert f"broken symbolic link (to {tmp_path / 'gone' / 'HandstandPushups'}): its target does not exist" in reasons
    assert sum("listed in" in reason for reason in reasons) == 6


def test_a_folder_that_cannot_be_listed_is_a_named_problem(tmp_path, monkeypatch):
    """A class folder without read permission (simulated: the tests may run as root, who reads anyway)."""
    import errno
    import os

    ucf = make_ucf101(tmp_path / "ucf")
    unreadable = ucf / "UCF-101" / "ApplyEyeMakeup"
    scandir = os.scandir

    def guarded_scandir(path="."):
        if Path(path) == unreadable:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    problems = discover(ucf).problems
    assert [(problem.path, problem.reason) for problem in problems if "listed in" not in problem.reason] == [
        (unreadable, "cannot list the folder (Permission denied): its videos are not found")]
    assert sum("listed in" in problem.reason for problem in problems) == 6


def test_folders_of_ucf101_named_clips_keep_each_group_on_one_side(tmp_path):
    """Without the split lists, clips of one UCF101 group (same actors and scene) must not be
    split between train and test: that would leak the scene into the test score."""
    names = [f"v_Archery_g{group:02d}_c{clip:02d}.avi" for group in range(1, 26) for clip in range(1, 6)]
    sides = {}
    for name in names:
        sides.setdefault(name[:13], set()).add(folder_split_of(name))
    assert all(len(side) == 1 for side in sides.values())
    assert {side.pop() for side in sides.values()} == {"train", "test"}
    for clip in range(1, 3):
        for group in range(1, 5):
            make_video(tmp_path / "UCF-101" / "Archery" / f"v_Archery_g{group:02d}_c{clip:02d}.avi", seed=group)
    with pytest.warns(UserWarning, match="no ucfTrainTestlist"), pytest.warns(UserWarning, match="found one class"):
        spec = discover(tmp_path / "UCF-101")
    assert spec.layout == "folders"
    assert sorted({r.group for r in spec.records}) == ["g01", "g02", "g03", "g04"]


def test_kinetics_classes_without_any_downloaded_clip_are_left_out(tmp_path):
    """Kinetics downloads are always partial; a label none of whose clips exists is not a class."""
    _kinetics_csv(tmp_path / "train.csv", [("a", "x", 0, 10, "train"), ("b", "y", 0, 10, "train"),
                                           ("c", "z", 0, 10, "train"), ("c", "w", 0, 10, "validate")])
    make_video(tmp_path / "train" / "a" / "x_000000_000010.mp4")
    make_video(tmp_path / "train" / "c" / "w_000000_000010.mp4", seed=1)
    spec = discover(tmp_path, layout="kinetics")
    assert spec.classes == ["a", "c"]
    assert [(r.class_name, r.label) for r in spec.records] == [("a", 0), ("c", 1)]
    assert sorted(p.path.name for p in spec.problems) == ["y_000000_000010.mp4", "z_000000_000010.mp4"]


@pytest.mark.parametrize("folders, hint", [
    (["UCF-101/ApplyEyeMakeup", "UCF-101/YoYo"], "UCF-101 holds 2 folders of videos (ApplyEyeMakeup, YoYo, ...): point at"),
    (["videos/train/a", "videos/train/b", "videos/val/a", "videos/val/b"],
     "videos holds train and test (or val) folders: point at"),
    (["train/a", "train/b"], "train/ looks like a train split, but there is no test or val folder beside it"),
    (["clips"], "found one class, 'clips'"),
])
def test_a_folders_layout_with_one_class_says_where_the_classes_are(tmp_path, folders, hint):
    for folder in folders:
        for name in ("one.mp4", "two.mp4"):
            (tmp_path / folder).mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / name).write_bytes(b"")
    with pytest.warns(UserWarning, match="found one class") as caught:
        spec = discover(tmp_path)
    assert len(spec.classes) == 1
    assert hint in str(caught[0].message)


def test_a_folders_layout_with_classes_gives_no_one_class_note(tmp_path, recwarn):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "one.mp4").write_bytes(b"")
    assert discover(tmp_path).classes == ["a", "b"]
    assert not [w for w in recwarn if "one class" in str(w.message)]


def test_a_folder_link_back_to_the_root_or_above_is_not_followed_in_any_layout(tmp_path):
    """``ln -s .. ROOT/up`` would add a class "up" holding the dataset again, and would make a CSV
    beside the dataset look like its Kinetics annotation."""
    import os

    data = tmp_path / "data"
    for name in ("a", "b"):
        for clip in range(2):
            make_video(data / name / f"{name}{clip}.mp4", num_frames=2, seed=clip)
    _kinetics_csv(tmp_path / "other.csv", [("a", "q1", 0, 10, "train")])
    make_video(tmp_path / "other" / "q1_000000_000010.mp4", num_frames=2)
    os.symlink("..", data / "up")
    os.symlink("../b", data / "a" / "to_b")  # another class folder: its videos would be labelled a too
    for layout in ("folders", "auto"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # auto detection must not even consider other.csv
            spec = discover(data, layout=layout)
        assert spec.layout == "folders" and spec.classes == ["a", "b"]
        assert sorted((r.path.name, r.class_name) for r in spec.records) == [
            ("a0.mp4", "a"), ("a1.mp4", "a"), ("b0.mp4", "b"), ("b1.mp4", "b")]
        assert [(problem.path, problem.reason) for problem in spec.problems] == [
            (data / "up", "symbolic link to a folder (to ..) that leads back to the dataset root or above it: "
                          "not followed, so its videos are not read twice"),
            (data / "a" / "to_b", "symbolic link to a folder (to ../b) that leads to a folder that is read already: "
                                  "not followed, so its videos are not read twice")]
    ucf = make_ucf101(tmp_path / "ucf", groups=2, clips=1)
    os.symlink("..", ucf / "up")
    spec = discover(ucf)
    assert len(spec.records) == 4
    assert [problem.path for problem in spec.problems] == [ucf / "up"]


def test_an_unrelated_csv_with_kinetics_columns_does_not_hide_class_folders(tmp_path):
    for class_name in ("cats", "dogs"):
        for clip in range(2):
            make_video(tmp_path / class_name / f"{class_name}{clip}.mp4", num_frames=2, seed=clip)
    _kinetics_csv(tmp_path / "metadata.csv", [("cats", "xyz", 0, 10, "train")])
    with pytest.warns(UserWarning, match=r"none of the 1 entries of metadata\.csv \(Kinetics' columns .*\) names a "
                                         r"video .* read as class folders; pass --layout kinetics"):
        spec = discover(tmp_path)
    assert spec.layout == "folders" and spec.classes == ["cats", "dogs"]
    with pytest.raises(LayoutError, match="looks like a kinetics layout but none of its 1 annotated entries"):
        discover(tmp_path, layout="kinetics")


def test_hmdb51_class_folder_without_its_split_file_is_a_named_problem(tmp_path):
    make_hmdb51(tmp_path, classes=("brush_hair", "dive", "wave"), per_class=3)
    (tmp_path / "testTrainMulti_7030_splits" / "dive_test_split1.txt").unlink()
    spec = discover(tmp_path)
    assert spec.classes == ["brush_hair", "wave"]
    assert [(problem.path, problem.reason) for problem in spec.problems] == [
        (tmp_path / "dive", f"folder of videos without a split file: no dive_test_split1.txt in "
                            f"{tmp_path / 'testTrainMulti_7030_splits'}, so its 3 video(s) are not used")]


def test_ucf101_video_in_both_train_and_test_lists_is_kept_in_train_and_named(tmp_path):
    make_ucf101(tmp_path, groups=2, clips=1)
    test_list = tmp_path / "ucfTrainTestlist" / "testlist01.txt"
    test_list.write_text(test_list.read_text() + "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    spec = discover(tmp_path)
    video = tmp_path / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi"
    assert [record.split for record in spec.records if record.path == video] == ["train"]
    assert (len(spec.split("train")), len(spec.split("test"))) == (2, 2)
    assert [(problem.path, problem.reason, problem.skipped) for problem in spec.problems] == [
        (video, "listed more than once: in trainlist01.txt (line 1) as 'ApplyEyeMakeup' in train, and in "
                "testlist01.txt (line 3) as 'ApplyEyeMakeup' in test; kept once, as 'ApplyEyeMakeup' in train (a "
                "test video seen in training inflates the test score)", False)]


@pytest.mark.parametrize("listed_again", ["same file, tag 2", "other class's file, tag 2", "other class's file, tag 1"])
def test_hmdb51_video_listed_twice_is_kept_once_and_named(tmp_path, listed_again):
    """A clip of wave listed again: in wave's own file as a test video, or in brush_hair's file
    (read first) as a test or a train video. It stays once, in train; a second train listing
    under another class loses to the first line read."""
    make_hmdb51(tmp_path, classes=("brush_hair", "wave"), per_class=4)
    split_dir = tmp_path / "testTrainMulti_7030_splits"
    name = "Clip_wave_[1]_u_nm_np1_fr_med_1.avi"  # tag 1 on line 2 of wave_test_split1.txt
    file_name, tag = {"same file, tag 2": ("wave_test_split1.txt", 2),
                      "other class's file, tag 2": ("brush_hair_test_split1.txt", 2),
                      "other class's file, tag 1": ("brush_hair_test_split1.txt", 1)}[listed_again]
    with (split_dir / file_name).open("a") as handle:
        handle.write(f"{name} {tag}\n")
    spec = discover(tmp_path)
    video = tmp_path / "wave" / name
    kept = [(record.class_name, record.split) for record in spec.records if record.path == video]
    assert (len(spec.split("train")), len(spec.split("test"))) == (4, 2)
    wave_line, again_line = "wave_test_split1.txt (line 2)", f"{file_name} (line 5)"
    again_class = "wave" if file_name.startswith("wave") else "brush_hair"
    again_split = "train" if tag == 1 else "test"
    if again_split == "train":  # brush_hair's file is read first: its line is kept
        assert kept == [("brush_hair", "train")]
        expected = (f"listed more than once: in {again_line} as 'brush_hair' in train, and in {wave_line} as "
                    "'wave' in train; kept once, as 'brush_hair' in train")
    else:
        assert kept == [("wave", "train")]
        expected = (f"listed more than once: in {wave_line} as 'wave' in train, and in {again_line} as "
                    f"{again_class!r} in test; kept once, as 'wave' in train (a test video seen in training inflates "
                    "the test score)")
    assert [(problem.path, problem.reason, problem.skipped) for problem in spec.problems] == [(video, expected, False)]


def test_ucf101_videos_no_list_names_are_named_by_folder_or_one_by_one(tmp_path):
    make_ucf101(tmp_path, groups=2, clips=1)
    surfing = [make_video(tmp_path / "UCF-101" / "Surfing" / f"v_Surfing_g0{group}_c01.avi", num_frames=2)
               for group in (1, 2)]
    extra = make_video(tmp_path / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g03_c01.avi", num_frames=2)
    spec = discover(tmp_path)
    assert spec.classes == ["ApplyEyeMakeup", "HandstandPushups"] and len(spec.records) == 4
    assert all(record.path not in (*surfing, extra) for record in spec.records)
    assert [(problem.path, problem.reason, problem.skipped) for problem in spec.problems] == [
        (extra, "not listed: no line of trainlist01.txt or testlist01.txt names it, so it is not used", True),
        (surfing[0].parent, "folder of videos not listed: Surfing is not a class of classInd.txt and no line of "
                            "trainlist01.txt or testlist01.txt names its 2 video(s), so they are not used", True)]


def test_hmdb51_video_in_a_class_folder_no_line_names_is_named(tmp_path):
    make_hmdb51(tmp_path, classes=("brush_hair", "wave"), per_class=3)
    extra = make_video(tmp_path / "wave" / "Clip_wave_new.avi", num_frames=2)
    spec = discover(tmp_path)
    assert len(spec.records) == 4 and extra not in [record.path for record in spec.records]
    assert [(problem.path, problem.reason) for problem in spec.problems] == [
        (extra, "not listed: no line of the <class>_test_split1.txt files names it, so it is not used")]


def test_folders_videos_outside_a_class_folder_are_named_per_folder(tmp_path):
    for class_name in ("cats", "dogs"):
        make_video(tmp_path / class_name / f"{class_name}.mp4", num_frames=2)
    stray = [make_video(tmp_path / f"stray{number}.mp4", num_frames=2) for number in range(4)]
    spec = discover(tmp_path)
    assert spec.classes == ["cats", "dogs"] and len(spec.records) == 2
    assert [(problem.path, problem.reason, problem.skipped) for problem in spec.problems] == [
        (tmp_path, "videos outside a class folder: 4 video(s) directly in this folder (stray0.mp4, stray1.mp4, "
                   "stray2.mp4, ...) are not used; the folders layout takes a video's class from the folder "
                   f"holding it, {tmp_path}/<class>/<video>", True)]
    assert all(path.exists() for path in stray)


def test_folders_with_split_folders_name_videos_outside_class_folders(tmp_path):
    for split_name in ("train", "val"):
        for class_name in ("cats", "dogs"):
            make_video(tmp_path / split_name / class_name / f"{split_name}_{class_name}.mp4", num_frames=2)
    make_video(tmp_path / "loose.mp4", num_frames=2)
    make_video(tmp_path / "val" / "unlabelled.mp4", num_frames=2)
    spec = discover(tmp_path)
    assert (len(spec.split("train")), len(spec.split("test"))) == (2, 2)
    assert [(problem.path, problem.reason.split(";")[1]) for problem in spec.problems] == [
        (tmp_path, f" the folders layout takes a video's class from the folder holding it, "
                   f"{tmp_path}/<train|test>/<class>/<video>"),
        (tmp_path / "val", f" the folders layout takes a video's class from the folder holding it, "
                           f"{tmp_path / 'val'}/<class>/<video>")]
    assert [problem.reason.split(";")[0] for problem in spec.problems] == [
        "videos outside a class folder: 1 video(s) directly in this folder (loose.mp4) are not used",
        "videos outside a class folder: 1 video(s) directly in this folder (unlabelled.mp4) are not used"]


def test_ucf101_label_numbers_that_disagree_with_the_class_or_name_none_are_named(tmp_path):
    make_ucf101(tmp_path, groups=2, clips=1)
    make_video(tmp_path / "UCF-101" / "Diving" / "v_Diving_g01_c01.avi", num_frames=2)
    train_list = tmp_path / "ucfTrainTestlist" / "trainlist01.txt"
    train_list.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 3\n"  # no class 3 in classInd.txt
                          "HandstandPushups/v_HandStandPushups_g01_c01.avi 1\n"  # 1 is ApplyEyeMakeup
                          "Diving/v_Diving_g01_c01.avi 2\n")  # no class Diving: 2 is HandstandPushups
    spec = discover(tmp_path)
    assert [(r.path.name, r.class_name) for r in spec.split("train")] == [
        ("v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup"), ("v_HandStandPushups_g01_c01.avi", "HandstandPushups"),
        ("v_Diving_g01_c01.avi", "HandstandPushups")]
    assert [(problem.path, problem.reason) for problem in spec.problems] == [
        (train_list, "line 1: 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi': label number 3 is not in classInd.txt "
                     "(1-2): labelled ApplyEyeMakeup, the class of its folder"),
        (train_list, "line 2: 'HandstandPushups/v_HandStandPushups_g01_c01.avi': its folder names class "
                     "HandstandPushups but its label number 1 is ApplyEyeMakeup in classInd.txt: labelled "
                     "HandstandPushups, the class of its folder"),
        (train_list, "line 3: 'Diving/v_Diving_g01_c01.avi': its folder names class Diving, which is not in "
                     "classInd.txt: labelled HandstandPushups, the class of its label number 2")]


def test_kinetics_clip_listed_twice_is_kept_once_and_named(tmp_path):
    """In train and in val it stays in train (read after val here); under two labels the first row wins."""
    _kinetics_csv(tmp_path / "kinetics_val.csv", [("a", "x", 0, 10, "val"), ("a", "z", 0, 10, "val")])
    _kinetics_csv(tmp_path / "train.csv", [("a", "x", 0, 10, "train"), ("a", "y", 0, 10, "train"),
                                           ("b", "y", 0, 10, "train")])
    for seed, youtube_id in enumerate("xyz"):
        make_video(tmp_path / "a" / f"{youtube_id}_000000_000010.mp4", num_frames=2, seed=seed)
    spec = discover(tmp_path)
    assert spec.classes == ["a"]
    assert [(r.path.stem, r.class_name, r.split) for r in spec.records] == [
        ("x_000000_000010", "a", "train"), ("z_000000_000010", "a", "test"), ("y_000000_000010", "a", "train")]
    assert [(problem.path.stem, problem.reason, problem.skipped) for problem in spec.problems] == [
        ("x_000000_000010", "listed more than once: in train.csv (line 2) as 'a' in train, and in kinetics_val.csv "
                            "(line 2) as 'a' in test; kept once, as 'a' in train (a test video seen in training "
                            "inflates the test score)", False),
        ("y_000000_000010", "listed more than once: in train.csv (line 3) as 'a' in train, and in train.csv "
                            "(line 4) as 'b' in train; kept once, as 'a' in train", False)]


def test_kinetics_clips_no_row_names_are_named_and_unlabelled_rows_count_as_listed(tmp_path):
    _kinetics_csv(tmp_path / "train.csv", [("a", "x", 0, 10, "train"), ("b", "y", 0, 10, "val")])
    _kinetics_csv(tmp_path / "test.csv", [("", "hidden", 0, 10, "test")])  # a hidden test set: no label
    for seed, (folder, youtube_id) in enumerate([("a", "x"), ("b", "y"), ("a", "stray"), ("test", "hidden"),
                                                 ("extra", "e1"), ("extra", "e2")]):
        make_video(tmp_path / folder / f"{youtube_id}_000000_000010.mp4", num_frames=2, seed=seed)
    spec = discover(tmp_path)
    assert [(record.path.stem, record.split) for record in spec.records] == [
        ("x_000000_000010", "train"), ("y_000000_000010", "test")]
    assert [(problem.path, problem.reason) for problem in spec.problems] == [
        (tmp_path / "a" / "stray_000000_000010.mp4",
         "not listed: no line of test.csv or train.csv names it, so it is not used"),
        (tmp_path / "extra", "folder of videos not listed: no row of test.csv or train.csv names its 2 video(s), so "
                             "they are not used")]


def test_a_split_number_given_for_kinetics_says_its_csvs_decide(tmp_path):
    _kinetics_csv(tmp_path / "train.csv", [("a", "x", 0, 10, "train"), ("a", "y", 0, 10, "val")])
    for seed, youtube_id in enumerate("xy"):
        make_video(tmp_path / "a" / f"{youtube_id}_000000_000010.mp4", num_frames=2, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(discover(tmp_path, split=1).records) == 2
    with pytest.warns(UserWarning, match="split 2 asked for, but a kinetics layout has one split"):
        spec = discover(tmp_path, split=2)
    assert [(record.path.stem, record.split) for record in spec.records] == [
        ("x_000000_000010", "train"), ("y_000000_000010", "test")]


def test_hmdb51_entries_match_files_named_in_another_unicode_normalisation(tmp_path):
    """A copy through macOS (or some unzip tools) stores names decomposed (NFD): ``e`` plus a
    combining accent, while the split lists keep them composed (NFC). On screen they are the same."""
    import unicodedata

    split_dir = tmp_path / "testTrainMulti_7030_splits"
    split_dir.mkdir()
    names = {"kiss": ["Amélie_kiss_u_cm_np2_fr_med_0.avi", "Amélie_kiss_u_cm_np2_fr_med_1.avi"],
             "wave": ["Réunion_wave_u_cm_np1_fr_goo_0.avi", "plain_wave_u_cm_np1_fr_goo_1.avi"]}
    for class_name, videos in names.items():
        for video in videos:
            (tmp_path / class_name).mkdir(exist_ok=True)
            (tmp_path / class_name / unicodedata.normalize("NFD", video)).write_bytes(b"")
        lines = [f"{unicodedata.normalize('NFC', video)} {tag} " for video, tag in zip(videos, "12")]
        lines[0] = lines[0].upper().replace(".AVI 1 ", ".avi 1 ")  # case differs too: still the same file
        (split_dir / f"{class_name}_test_split1.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = discover(tmp_path)
    assert not spec.problems
    assert sorted((r.class_name, r.split, r.path.name) for r in spec.records) == sorted(
        (class_name, split, unicodedata.normalize("NFD", video))
        for class_name, videos in names.items() for video, split in zip(videos, ("train", "test")))


def test_lists_and_file_names_in_the_same_latin1_bytes_match(tmp_path):
    """An old archive: its split lists and its file names hold the same Latin-1 bytes, which are not UTF-8."""
    import os

    hmdb = tmp_path / "hmdb"
    (hmdb / "testTrainMulti_7030_splits").mkdir(parents=True)
    for class_name in ("kiss", "wave"):
        stems = [b"Am\xe9lie_" + class_name.encode() + b"_0", b"na\xefve_" + class_name.encode() + b"_1"]
        for stem in stems:
            (hmdb / class_name).mkdir(exist_ok=True)
            (hmdb / class_name / os.fsdecode(stem + b".avi")).write_bytes(b"")
        (hmdb / "testTrainMulti_7030_splits" / f"{class_name}_test_split1.txt").write_bytes(
            b"".join(stem + b".avi " + tag + b"\n" for stem, tag in zip(stems, (b"1", b"2"))))
    spec = discover(hmdb)
    assert not spec.problems
    assert sorted(r.path.name for r in spec.split("train")) == [os.fsdecode(b"Am\xe9lie_kiss_0.avi"),
                                                                 os.fsdecode(b"Am\xe9lie_wave_0.avi")]

    kinetics = tmp_path / "kinetics"
    kinetics.mkdir()
    label = b"caf\xe9 au lait"
    (kinetics / "train.csv").write_bytes(b"label,youtube_id,time_start,time_end,split\n" + label +
                                         b",x,0,10,train\n" + label + b",y,0,10,val\nplain,z,0,10,train\n")
    for folder, youtube_id in ((label, b"x"), (label, b"y"), (b"plain", b"z")):
        (kinetics / os.fsdecode(folder)).mkdir(exist_ok=True)
        (kinetics / os.fsdecode(folder) / os.fsdecode(youtube_id + b"_000000_000010.mp4")).write_bytes(b"")
    spec = discover(kinetics)
    assert spec.classes == sorted([os.fsdecode(label), "plain"]) and not spec.problems
    assert all(record.path.parent.name == record.class_name for record in spec.records)


def test_folders_layout_names_the_split_folders_it_reads_as_one(tmp_path):
    """train/, val/ and test/: this package has two splits, so val and test are read together as test."""
    for folder in ("train/a", "train/b", "val/a", "test/b"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / f"{folder.replace('/', '_')}.mp4").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"test/ and val/ are read together as the test split"):
        spec = discover(tmp_path)
    assert [(r.path.name, r.split) for r in spec.records] == [
        ("train_a.mp4", "train"), ("train_b.mp4", "train"), ("val_a.mp4", "test"), ("test_b.mp4", "test")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # train/ and val/ alone: nothing merged, nothing to say
        shutil.rmtree(tmp_path / "test")
        assert len(discover(tmp_path).split("test")) == 1
