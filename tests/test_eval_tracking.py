"""OTB metrics against plain-loop references; the Siamese tracker on a synthetic moving square."""

import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seco_lab.evaluation.tracking import (
    PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS, SiameseTracker, TrackerConfig, TrackingDataError, TrackingSequence,
    crop_square, discover_tracking_sequences, otb_metrics, overlap_ratios, parse_otb_boxes, read_otb_sequence,
    tracking_protocol,
)


pytestmark = pytest.mark.usefixtures("single_thread")


def slow_iou(a, b):
    ax1, ay1, aw, ah = a
    bx1, by1, bw, bh = b
    iw = max(0.0, min(ax1 + aw, bx1 + bw) - max(ax1, bx1))
    ih = max(0.0, min(ay1 + ah, by1 + bh) - max(ay1, by1))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def slow_otb(pred, gt):
    errors, ious = [], []
    for p, g in zip(pred, gt):
        pc = (p[0] + p[2] / 2, p[1] + p[3] / 2)
        gc = (g[0] + g[2] / 2, g[1] + g[3] / 2)
        errors.append(((pc[0] - gc[0]) ** 2 + (pc[1] - gc[1]) ** 2) ** 0.5)
        ious.append(slow_iou(p, g))
    precision = [sum(e <= t for e in errors) / len(errors) for t in range(51)]
    success = [sum(o > t for o in ious) / len(ious) for t in [i * 0.05 for i in range(21)]]
    return precision, success


def test_iou_hand_values():
    boxes_a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    boxes_b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]], dtype=float)
    np.testing.assert_allclose(overlap_ratios(boxes_a, boxes_b), [1.0, 50 / 150, 0.0])


def test_otb_metrics_match_slow_reference():
    rng = np.random.default_rng(0)
    gt = np.column_stack([rng.uniform(0, 100, 40), rng.uniform(0, 100, 40), rng.uniform(5, 30, 40), rng.uniform(5, 30, 40)])
    pred = gt + rng.normal(0, 12, gt.shape)
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1
    metrics = otb_metrics(pred, gt)
    precision, success = slow_otb(pred, gt)
    np.testing.assert_allclose(metrics["precision_curve"], precision)
    np.testing.assert_allclose(metrics["success_curve"], success)
    assert metrics["precision"] == pytest.approx(precision[20])
    assert metrics["success_auc"] == pytest.approx(np.mean(success))
    assert len(PRECISION_THRESHOLDS) == 51 and len(SUCCESS_THRESHOLDS) == 21


def test_otb_metrics_skip_invalid_truth_and_perfect_track():
    gt = np.array([[1, 1, 10, 10], [2, 2, 0, 0], [3, 3, 10, 10]], dtype=float)
    metrics = otb_metrics(gt.copy(), gt)
    assert metrics["precision"] == 1.0
    assert metrics["success_auc"] == pytest.approx(20 / 21)  # IoU 1 is not > 1


def test_parse_otb_boxes_comma_whitespace_and_one_based():
    boxes = parse_otb_boxes("1,2,3,4\n5\t6 7 8\n\n")
    np.testing.assert_allclose(boxes, [[0, 1, 3, 4], [4, 5, 7, 8]])
    with pytest.raises(TrackingDataError, match="line 1"):
        parse_otb_boxes("1,2,3")


def test_crop_square_centre_and_mean_padding():
    image = torch.zeros(3, 20, 20)
    image[:, 8:12, 8:12] = 1.0
    crop = crop_square(image, (10.0, 10.0), [4.0], 4)
    assert torch.allclose(crop, torch.ones(1, 3, 4, 4))
    far = crop_square(image, (-50.0, -50.0), [4.0], 4)
    assert torch.allclose(far, torch.full_like(far, float(image.mean())))


def moving_square_sequence(num_frames=30, size=96, side=14, seed=0):
    rng = np.random.default_rng(seed)
    background = (rng.uniform(0, 1, (3, size, size)) * 0.6).astype(np.float32)
    background = F.avg_pool2d(torch.from_numpy(background)[None], 3, 1, 1)[0].numpy()
    pattern = np.zeros((3, side, side), dtype=np.float32)
    pattern[0] = 1.0
    pattern[1, :, : side // 2] = 1.0
    pattern[2, : side // 2] = 1.0
    frames, boxes = [], []
    for t in range(num_frames):
        x = 10 + 2.0 * t
        y = 40 + 25 * np.sin(t / 6)
        xi, yi = int(round(x)), int(round(y))
        frame = background.copy()
        frame[:, yi:yi + side, xi:xi + side] = pattern
        frames.append((frame.transpose(1, 2, 0) * 255).astype(np.uint8))
        boxes.append([xi, yi, side, side])
    return frames, np.array(boxes, dtype=float)


def edge_trunk(images):
    """Hand-made feature map: colour channels plus horizontal/vertical gradients, stride 2."""
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    dx = F.pad(dx, (0, 1, 0, 0))
    dy = F.pad(dy, (0, 0, 0, 1))
    features = torch.cat([images - images.mean(dim=(2, 3), keepdim=True), dx, dy], dim=1)
    return F.avg_pool2d(features, 2)


def test_tracker_follows_moving_square():
    frames, boxes = moving_square_sequence()
    tracker = SiameseTracker(edge_trunk, TrackerConfig(exemplar_size=32, instance_size=64, feature_norm="l2"))
    predicted = tracker.track(frames, boxes[0])
    metrics = otb_metrics(predicted, boxes)
    assert predicted.shape == boxes.shape
    assert metrics["precision"] > 0.9
    assert metrics["success_auc"] > 0.5


def test_static_tracker_fails_the_same_sequence():
    frames, boxes = moving_square_sequence()
    static = np.repeat(boxes[:1], len(boxes), axis=0)
    assert otb_metrics(static, boxes)["precision"] < 0.5


def otb_lines(boxes):
    """0-based (x, y, w, h) boxes as OTB ground-truth lines (1-based)."""
    return [f"{x + 1:g},{y + 1:g},{w:g},{h:g}" for x, y, w, h in boxes]


def write_frames(folder, frames, name="{:04d}.png", first_number=1):
    from PIL import Image

    (folder / "img").mkdir(parents=True)
    for number, frame in enumerate(frames, start=first_number):
        Image.fromarray(frame).save(folder / "img" / name.format(number))


def write_truth(folder, lines, name="groundtruth_rect.txt"):
    (folder / name).write_text("\n".join(lines) + "\n")


def write_sequence(folder, frames, boxes, first_number=1):
    """An OTB sequence folder: img/NNNN.png from ``first_number`` on, and its groundtruth_rect.txt."""
    write_frames(folder, frames, first_number=first_number)
    write_truth(folder, otb_lines(boxes))


def test_tracking_protocol_reads_otb_folders(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=8)
    write_sequence(tmp_path / "tracking" / "Square", frames, boxes)
    sequences = discover_tracking_sequences(tmp_path)
    assert [s.name for s in sequences] == ["Square"]
    np.testing.assert_allclose(sequences[0].boxes, boxes)
    result = tracking_protocol(edge_trunk, sequences, TrackerConfig(exemplar_size=32, instance_size=64))
    assert result["num_sequences"] == 1
    assert result["sequences"][0].boxes.shape == (8, 4)
    assert result["precision@20"] > 0.8


def test_a_folder_that_is_itself_one_sequence_is_read_as_that_sequence(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=5)
    write_sequence(tmp_path / "Square", frames, boxes)
    (sequence,) = discover_tracking_sequences(tmp_path / "Square")
    assert sequence.name == "Square" and len(sequence) == 5
    np.testing.assert_allclose(sequence.boxes, boxes)


def test_frames_named_without_zero_padding_are_paired_with_their_boxes_in_number_order(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=12)
    sequence = tmp_path / "Unpadded"
    write_frames(sequence, frames, name="{}.png")
    write_truth(sequence, otb_lines(boxes))
    read = read_otb_sequence(sequence)
    assert [path.name for path in read.frame_paths] == [f"{number}.png" for number in range(1, 13)]
    np.testing.assert_array_equal(read.frame(10), frames[10])


def test_a_folder_with_one_ground_truth_file_per_target_gives_one_sequence_per_target(tmp_path):
    """OTB's Jogging holds groundtruth_rect.1.txt and .2.txt; Human4 only .2.txt (and an empty
    groundtruth_rect1.txt)."""
    frames, boxes = moving_square_sequence(num_frames=6)
    second_boxes = boxes + [5, 3, 0, 0]
    for name, truths in (("Jogging", {1: boxes, 2: second_boxes}), ("Human4", {2: second_boxes})):
        sequence = tmp_path / "tracking" / name
        write_frames(sequence, frames)
        for target, target_boxes in truths.items():
            write_truth(sequence, otb_lines(target_boxes), name=f"groundtruth_rect.{target}.txt")
    (tmp_path / "tracking" / "Human4" / "groundtruth_rect1.txt").write_text("")
    sequences = discover_tracking_sequences(tmp_path)
    assert [sequence.name for sequence in sequences] == ["Human4-2", "Jogging-1", "Jogging-2"]
    np.testing.assert_allclose(sequences[1].boxes, boxes)
    np.testing.assert_allclose(sequences[2].boxes, second_boxes)
    np.testing.assert_allclose(sequences[0].boxes, second_boxes)
    assert len(sequences[0]) == 6


@pytest.mark.parametrize("first_line", ["0,0,0,0", "NaN,NaN,NaN,NaN"])
def test_a_sequence_whose_first_box_is_empty_is_named_with_the_problem(tmp_path, first_line):
    frames, boxes = moving_square_sequence(num_frames=4)
    sequence = tmp_path / "tracking" / "Lost"
    write_frames(sequence, frames, name="{:04d}.jpg")
    write_truth(sequence, [first_line] + otb_lines(boxes[1:]))
    problem = r"Lost.groundtruth_rect\.txt: the first box .* no positive width"
    with pytest.raises(TrackingDataError, match=problem):
        read_otb_sequence(sequence)
    (lost,) = discover_tracking_sequences(tmp_path)
    assert lost.name == "Lost" and len(lost) == 0
    assert re.search(problem, lost.problem)


def test_davids_boxes_are_paired_with_the_frames_from_0300(tmp_path):
    """OTB-100's David: images from 0001, boxes from frame 0300 on (here images 0296-0303)."""
    frames, boxes = moving_square_sequence(num_frames=8)
    write_sequence(tmp_path / "David", frames, boxes[4:], first_number=296)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        david = read_otb_sequence(tmp_path / "David")
    assert [path.name for path in david.frame_paths] == ["0300.png", "0301.png", "0302.png", "0303.png"]
    np.testing.assert_allclose(david.boxes, boxes[4:])


def test_a_sequence_with_more_frames_than_boxes_or_the_reverse_is_named_in_a_warning(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=8)
    write_sequence(tmp_path / "FewerBoxes", frames, boxes[:5])
    write_sequence(tmp_path / "FewerFrames", frames[:6], boxes)
    with pytest.warns(UserWarning, match="FewerBoxes: 8 frames in img/ and 5 boxes in groundtruth_rect.txt"):
        fewer_boxes = read_otb_sequence(tmp_path / "FewerBoxes")
    with pytest.warns(UserWarning, match="FewerFrames: 6 frames in img/ and 8 boxes"):
        fewer_frames = read_otb_sequence(tmp_path / "FewerFrames")
    assert (len(fewer_boxes), len(fewer_frames)) == (5, 6)
    np.testing.assert_allclose(fewer_boxes.boxes, boxes[:5])


@pytest.mark.parametrize("first_number", [1, 247])  # OTB's BlurCar1 is numbered from 0247
def test_missing_frame_images_leave_their_boxes_out_without_shifting_later_frames(tmp_path, first_number):
    frames, boxes = moving_square_sequence(num_frames=20)
    sequence = tmp_path / "Gaps"
    write_sequence(sequence, frames, boxes, first_number=first_number)
    for index in (6, 7):  # img/0007 and 0008 when numbered from 1
        (sequence / "img" / f"{first_number + index:04d}.png").unlink()
    missing = f"{first_number + 6}, {first_number + 7}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = read_otb_sequence(sequence)
    messages = [str(warning.message) for warning in caught]
    assert any(f"Gaps: 18 frames in img/ and 20 boxes in groundtruth_rect.txt: 2 boxes have no image (frame numbers "
               f"{missing}) and are left out" in message for message in messages), messages
    # a numbering from 247 is also named (a missing first image would shift every box); from 1 it is not
    assert sum("has no frame numbered below" in message for message in messages) == (first_number > 1), messages
    kept = [index for index in range(20) if index not in (6, 7)]
    assert [path.name for path in read.frame_paths] == [f"{first_number + index:04d}.png" for index in kept]
    np.testing.assert_allclose(read.boxes, boxes[kept])
    np.testing.assert_array_equal(read.frame(6), frames[8])


def test_a_missing_first_image_is_named_in_a_warning_that_says_what_it_would_shift(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=6)
    sequence = tmp_path / "NoFirst"
    write_sequence(sequence, frames, boxes)
    (sequence / "img" / "0001.png").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_otb_sequence(sequence)
    messages = sorted(str(warning.message) for warning in caught)
    assert len(messages) == 2, messages
    assert re.search(r"NoFirst: 5 frames in img/ and 6 boxes .*: 1 box has no image \(frame number 7\) and is left "
                     r"out", messages[0]), messages
    assert re.search(r"NoFirst: img/ has no frame numbered below 2, so the first box in groundtruth_rect.txt is "
                     r"paired with frame 2; .* every box is paired", messages[1]), messages


@pytest.mark.parametrize(("name", "first_annotated"), [("BlurCar3", 3), ("Tiger1", 6), ("David", 300)])
def test_otb_sequences_annotated_from_a_later_frame_pair_their_first_box_with_it(tmp_path, name, first_annotated):
    frames, boxes = moving_square_sequence(num_frames=8)
    write_sequence(tmp_path / name, frames, boxes[2:], first_number=first_annotated - 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read = read_otb_sequence(tmp_path / name)
    assert read.frame_paths[0].name == f"{first_annotated:04d}.png"
    np.testing.assert_array_equal(read.frame(0), frames[2])
    np.testing.assert_allclose(read.boxes, boxes[2:])


def test_frame_numbers_come_from_the_run_of_digits_that_differs_between_names(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=12)
    sequence = tmp_path / "Versioned"
    write_frames(sequence, frames, name="{}_v2.png")
    write_truth(sequence, otb_lines(boxes))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read = read_otb_sequence(sequence)
    assert [path.name for path in read.frame_paths] == [f"{number}_v2.png" for number in range(1, 13)]
    np.testing.assert_array_equal(read.frame(10), frames[10])


def test_frames_named_without_numbers_are_still_paired_in_order(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=4)
    sequence = tmp_path / "Letters"
    write_frames(sequence, frames[:3], name="frame_{}.png")
    for number, letter in enumerate("abc", start=1):
        (sequence / "img" / f"frame_{number}.png").rename(sequence / "img" / f"frame_{letter}.png")
    write_truth(sequence, otb_lines(boxes))
    with pytest.warns(UserWarning, match="Letters: 3 frames in img/ and 4 boxes .* the first 3 of each are paired"):
        read = read_otb_sequence(sequence)
    np.testing.assert_allclose(read.boxes, boxes[:3])


def test_two_images_of_one_frame_number_are_named(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=3)
    sequence = tmp_path / "Twice"
    write_sequence(sequence, frames, boxes)
    (sequence / "img" / "1.png").write_bytes((sequence / "img" / "0001.png").read_bytes())
    with pytest.raises(TrackingDataError, match="0001.png and 1.png both hold frame 1"):
        read_otb_sequence(sequence)


TINY_CONFIG = TrackerConfig(exemplar_size=32, instance_size=64)


@pytest.mark.parametrize("later_lines", [[], ["0,0,0,0", "0,0,0,0"]], ids=["one-frame", "no-later-valid-box"])
def test_a_sequence_with_fewer_than_two_usable_frames_is_left_out_of_the_averages(tmp_path, later_lines):
    frames, boxes = moving_square_sequence(num_frames=8)
    write_sequence(tmp_path / "tracking" / "Square", frames, boxes)
    write_frames(tmp_path / "tracking" / "Short", frames[:1 + len(later_lines)])
    write_truth(tmp_path / "tracking" / "Short", otb_lines(boxes[:1]) + later_lines)
    square_alone = tracking_protocol(edge_trunk, [read_otb_sequence(tmp_path / "tracking" / "Square")], TINY_CONFIG)
    with pytest.warns(UserWarning, match="tracking: sequence Short left out: .* at least 2 usable frames"):
        result = tracking_protocol(edge_trunk, discover_tracking_sequences(tmp_path), TINY_CONFIG)
    assert [sequence.name for sequence in result["sequences"]] == ["Square"]
    assert (result["num_sequences"], result["sequences_scored"], result["sequences_skipped"]) == (1, 1, 1)
    for key in ("precision@20", "success_auc", "mean_iou"):
        assert result[key] == square_alone[key]
    with pytest.raises(TrackingDataError, match="none of the 1 sequences can be scored: Short: "):
        tracking_protocol(edge_trunk, [read_otb_sequence(tmp_path / "tracking" / "Short")], TINY_CONFIG)


def test_sequences_that_cannot_be_read_or_initialised_are_left_out_and_counted(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=8)
    root = tmp_path / "tracking"
    write_sequence(root / "Square", frames, boxes)
    write_sequence(root / "Header", frames, boxes)
    write_truth(root / "Header", ["x,y,w,h"] + otb_lines(boxes))
    write_sequence(root / "NoSize", frames, boxes)
    write_truth(root / "NoSize", ["1,1,0,0"] + otb_lines(boxes[1:]))
    write_frames(root / "EmptyJpg", frames, name="{:04d}.jpg")
    write_truth(root / "EmptyJpg", otb_lines(boxes))
    (root / "EmptyJpg" / "img" / "0003.jpg").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tracking_protocol(edge_trunk, discover_tracking_sequences(tmp_path), TINY_CONFIG)
    assert [sequence.name for sequence in result["sequences"]] == ["Square"]
    assert (result["sequences_scored"], result["sequences_skipped"]) == (1, 3)
    notes = [str(warning.message) for warning in caught]
    assert len(notes) == 3
    assert re.search(r"sequence EmptyJpg left out: cannot identify image file .*EmptyJpg.img.0003\.jpg", notes[0])
    assert re.search(r"sequence Header left out: .*Header.groundtruth_rect\.txt: line 1 is not numeric", notes[1])
    assert re.search(r"sequence NoSize left out: .*NoSize.groundtruth_rect\.txt: the first box", notes[2])
    assert [name for name, _ in result["left_out"]] == ["EmptyJpg", "Header", "NoSize"]


def test_the_protocol_names_every_reason_when_no_sequence_can_be_scored(tmp_path):
    frames, boxes = moving_square_sequence(num_frames=4)
    write_sequence(tmp_path / "Header", frames, boxes)
    write_truth(tmp_path / "Header", ["x,y,w,h"] + otb_lines(boxes))
    zero_box = TrackingSequence("ZeroBox", sorted((tmp_path / "Header" / "img").iterdir()), boxes * [1, 1, 0, 1])
    with pytest.raises(TrackingDataError, match=r"none of the 2 sequences can be scored: Header: .*line 1 is not "
                                                r"numeric.*; ZeroBox: the first box .* no positive width and height"):
        tracking_protocol(edge_trunk, discover_tracking_sequences(tmp_path) + [zero_box], TINY_CONFIG)
