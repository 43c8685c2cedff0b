"""Every plot returns a Figure with the expected axes and artists."""

import json

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from seco_lab import plots
from seco_lab.evaluation.tracking import otb_metrics


def history_records():
    records = []
    for step in range(1, 21):
        records.append({"type": "step", "step": step, "epoch": step // 10, "loss": 5.0 / step, "inter": 3.0 / step,
                        "order": 0.69, "lr": 0.1 * (1 - step / 20), "samples_per_s": 100.0})
        if step % 10 == 0:
            records.append({"type": "monitor", "step": step, "epoch": step // 10, "knn_top1": 20.0 + step})
    return records


def test_loss_curves_from_records_and_file(tmp_path):
    figure = plots.plot_loss_curves(history_records())
    assert isinstance(figure, Figure) and len(figure.axes) == 3
    assert [line.get_label() for line in figure.axes[0].lines] == ["loss", "inter", "order"]
    (tmp_path / "history.jsonl").write_text("\n".join(json.dumps(r) for r in history_records() if r["type"] == "step"))
    assert len(plots.plot_loss_curves(tmp_path, terms=["loss"], smoothing=0.5).axes) == 2


def test_loss_curves_of_a_run_with_few_steps_mark_every_step():
    """A smoke run trains one step: a line through one point would draw nothing."""
    figure = plots.plot_loss_curves([{"type": "step", "step": 1, "loss": 2.0, "inter": 1.5, "lr": 1e-3}])
    curves = figure.axes[0].lines + figure.axes[1].lines
    assert len(curves) == 3 and all(line.get_marker() == "o" for line in curves)
    assert all(tick.is_integer() for tick in figure.axes[0].get_xticks())
    long = plots.plot_loss_curves(history_records() * 2)
    assert all(line.get_marker() == "None" for line in long.axes[0].lines)


def test_loss_curves_draw_an_accuracy_dashed_and_say_so_on_the_axis():
    records = [{"type": "step", "step": step, "loss": 2.0 / step, "order_acc": 0.5 + step / 100} for step in (1, 2)]
    figure = plots.plot_loss_curves(records)
    styles = {line.get_label(): line.get_linestyle() for line in figure.axes[0].lines}
    assert styles == {"loss": "-", "order_acc": "--"}
    assert "accuracy" in figure.axes[0].get_ylabel()
    assert plots.plot_loss_curves(history_records()).axes[0].get_ylabel() == "loss"


def test_loss_curves_name_the_monitor_axis():
    assert plots.plot_loss_curves(history_records()).axes[2].get_ylabel() == "top-1 accuracy (%)"
    other = [record | {"knn_top1": None, "recall": 0.5} if record["type"] == "monitor" else record
             for record in history_records()]
    assert plots.plot_loss_curves(other).axes[2].get_ylabel() == "value"


def test_smooth_is_debiased_ema():
    np.testing.assert_allclose(plots.smooth([2.0, 2.0, 2.0], 0.9), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(plots.smooth([1.0, 3.0], 0.5), [1.0, (0.25 + 1.5) / 0.75])


def test_embedding_one_panel_per_method_one_artist_per_class():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 5))
    labels = np.repeat([0, 1, 2], 10)
    figure = plots.plot_embedding(features, labels, class_names=["a", "b", "c"])
    assert len(figure.axes) == 2
    assert all(len(axis.collections) == 3 for axis in figure.axes)


@pytest.mark.parametrize("points", [1, 2])
def test_embedding_of_too_few_points_says_so_instead_of_failing(points):
    """t-SNE refuses a perplexity that is not below the number of points (a test split of two videos)."""
    figure = plots.plot_embedding(np.eye(points, 4), np.arange(points), class_names=["a", "b"][:points])
    assert [axis.texts[0].get_text() for axis in figure.axes] == [f"{points} video(s):\ntoo few to embed"] * 2
    with pytest.raises(ValueError, match=f"at least 3 points, got {points}"):
        plots.embed_features(np.eye(points, 4), "tsne")


def test_confusion_matrix_figure():
    figure = plots.plot_confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), class_names=["a", "b", "c"])
    assert len(figure.axes) == 2  # matrix + colour bar
    image = figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(image[1], [0, 50, 50])


def test_tracking_overlay_and_curves():
    frames = np.zeros((10, 20, 20, 3), dtype=np.uint8)
    truth = np.tile([2.0, 2.0, 5.0, 5.0], (10, 1))
    predicted = truth + 1.0
    overlay = plots.plot_tracking_overlay(frames, truth, predicted, num_frames=4)
    assert len(overlay.axes) == 4
    assert all(sum(isinstance(p, Rectangle) for p in axis.patches) == 2 for axis in overlay.axes)
    metrics = otb_metrics(predicted, truth)
    curves = plots.plot_tracking_curves({"a": metrics, "b": otb_metrics(truth, truth)})
    assert len(curves.axes) == 2 and all(len(axis.get_legend().get_texts()) == 2 for axis in curves.axes)
    assert len(plots.plot_tracking_curves(metrics).axes[0].lines) == 2  # curve + 20 px marker


def test_run_comparison_bars_errors_and_chance():
    figure = plots.plot_run_comparison({"random": 12.0, "seco": 30.0, "supervised": 60.0}, errors={"seco": 2.0},
                                       chance=12.5)
    axis = figure.axes[0]
    assert len(axis.patches) == 3
    assert [bar.get_height() for bar in axis.patches] == [12.0, 30.0, 60.0]
    assert any(line.get_linestyle() == "--" for line in axis.lines)
    assert axis.get_xlabel() == ""  # no caption without error_label


def test_run_comparison_names_its_error_bars_and_slants_long_names():
    names = {"seco-intra": 30.0, "seco-intra-inter": 31.0, "seco (intra + inter + order)": 35.0}
    figure = plots.plot_run_comparison(names, errors={name: 3.0 for name in names}, chance=12.5,
                                       error_label="±1 standard error")
    axis = figure.axes[0]
    assert axis.get_xlabel() == "error bars: ±1 standard error"
    labels = axis.get_xticklabels()
    assert all(label.get_rotation() == 30 for label in labels)
    assert labels[2].get_text() == "seco (intra + inter\n+ order)"
    assert axis.get_legend().get_bbox_to_anchor() is not None
    short = plots.plot_run_comparison({"a": 1.0, "b": 2.0}).axes[0]
    assert all(label.get_rotation() == 0 for label in short.get_xticklabels())


def test_untrained_spread_draws_every_initialisation_and_the_trained_score():
    figure = plots.plot_untrained_spread({"2D": [20.0, 30.0, 25.0], "3D": [15.0, 17.0]}, {"2D": 40.0, "3D": 16.0},
                                         chance=12.5)
    axis = figure.axes[0]
    grey, mean, red = axis.collections[:3]  # the first column: dots, mean dash, trained diamond
    assert grey.get_offsets()[:, 1].tolist() == [20.0, 30.0, 25.0]
    assert mean.get_segments()[0][0][1] == pytest.approx(25.0)
    assert red.get_offsets().tolist() == [[0.0, 40.0]]
    assert axis.collections[3].get_offsets()[:, 1].tolist() == [15.0, 17.0]
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["2D", "3D"]
    assert any(line.get_linestyle() == "--" for line in axis.lines)


def test_untrained_spread_needs_matching_labels():
    with pytest.raises(ValueError, match="same labels"):
        plots.plot_untrained_spread({"2D": [20.0]}, {"3D": 30.0})
    with pytest.raises(ValueError, match="no untrained scores for '2D'"):
        plots.plot_untrained_spread({"2D": []}, {"2D": 30.0})


def test_loss_curves_without_steps_fail():
    with pytest.raises(ValueError, match="no step records"):
        plots.plot_loss_curves([{"type": "monitor", "step": 1, "knn_top1": 1.0}])


@pytest.mark.parametrize("num_classes", [101, 400])
def test_plots_stay_readable_with_the_class_counts_of_ucf101_and_kinetics(num_classes):
    rng = np.random.default_rng(0)
    labels = np.arange(num_classes).repeat(2)
    predictions = rng.integers(0, num_classes, labels.size)
    names = [f"class number {i} with a long Kinetics-style name" for i in range(num_classes)]
    figure = plots.plot_confusion_matrix(labels, predictions, class_names=names)
    width, height = figure.get_size_inches()
    assert width <= 16 and height <= 16
    matrix_axis = figure.axes[0]
    assert not matrix_axis.texts  # no per-cell numbers
    assert len(matrix_axis.get_xticks()) <= 50
    assert all(len(label.get_text()) <= 24 for label in matrix_axis.get_xticklabels())
    embedding = plots.plot_embedding(rng.normal(size=(labels.size, 4)), labels, methods=("pca",), class_names=names)
    assert embedding.axes[0].get_legend() is None and "colours repeat" in embedding._suptitle.get_text()


def test_similarity_matrices_share_one_scale_and_tick_whole_indices():
    rng = np.random.default_rng(0)
    figure = plots.plot_similarity_matrices({"batch": rng.uniform(-0.5, 0.5, (16, 16)),
                                             "per video": rng.uniform(0.2, 0.9, (16, 3))})
    batch_axis, video_axis = figure.axes[:2]
    assert batch_axis.images[0].get_clim() == video_axis.images[0].get_clim()
    low, high = batch_axis.images[0].get_clim()
    assert low < -0.4 and high > 0.8
    figure.canvas.draw()
    for axis in (batch_axis, video_axis):
        for ticks in (axis.get_xticks(), axis.get_yticks()):
            assert np.all(ticks == np.round(ticks)), ticks
    assert {0, 1, 2} <= set(video_axis.get_xticks().astype(int))
    named = plots.plot_similarity_matrices({"per video": rng.uniform(0.2, 0.9, (16, 3))},
                                           key_names={"per video": ["k1 (positive)", "k2", "k3"]})
    assert [label.get_text() for label in named.axes[0].get_xticklabels()] == ["k1 (positive)", "k2", "k3"]
    with pytest.raises(ValueError, match="has 3 columns but 2 key names"):
        plots.plot_similarity_matrices({"per video": np.zeros((4, 3))}, key_names={"per video": ["k1", "k2"]})


def test_clip_strips_have_a_row_per_clip_and_a_title():
    clip = np.zeros((4, 3, 8, 8), dtype=np.uint8)
    figure = plots.plot_clip_strips({"v0": clip, "shuffled": clip[::-1]}, title="a clip and its shuffle")
    assert len(figure.axes) == 2 * 4 and figure.get_suptitle() == "a clip and its shuffle"
    assert [figure.axes[row * 4].get_ylabel() for row in range(2)] == ["v0", "shuffled"]


def test_view_grid_shows_frame_differences_on_one_scale_with_zero_mid_grey():
    moving = torch.zeros(3, 8, 8)
    moving[:, 2, 2], moving[:, 5, 5] = 0.2, -0.1
    figure = plots.plot_view_grid({"moving": moving, "still": torch.zeros(3, 8, 8)}, differences=True)
    shown_moving, shown_still = (axis.images[0].get_array() for axis in figure.axes)
    np.testing.assert_allclose(shown_still, 0.5)  # an all-zero difference is flat grey, not black
    assert shown_moving[2, 2, 0] == pytest.approx(1.0) and shown_moving[5, 5, 0] == pytest.approx(0.25)
    assert shown_moving[0, 0, 0] == pytest.approx(0.5)
    rgb = plots.plot_view_grid({"frame": torch.full((3, 8, 8), 0.25)})
    np.testing.assert_allclose(rgb.axes[0].images[0].get_array(), 0.25)
