"""Evaluation protocols of the three papers on a frozen (or fine-tuned) encoder.

``run_protocol`` (one protocol) and ``run_protocols`` (several, features extracted once) are the
entry points (CLI ``python -m seco_lab evaluate``); the pieces below are plain functions on
arrays for notebooks: extract features once, then try protocols.
"""

from seco_lab.evaluation.features import (
    EvaluationError, InputSpec, LoadedEncoder, extract_video_features, load_encoder, pool_frame_features,
    recompute_bn_stats, recompute_bn_stats_from_batches,
)
from seco_lab.evaluation.finetune import VideoClassifier, finetune_protocol, freeze_batchnorm, train_classifier
from seco_lab.evaluation.knn import knn_predict, knn_protocol
from seco_lab.evaluation.linear import linear_protocol
from seco_lab.evaluation.linear_svm import linear_svm_protocol
from seco_lab.evaluation.metrics import chance_accuracy, confusion_matrix, majority_class_accuracy, top1_accuracy
from seco_lab.evaluation.retrieval import (
    certain_recall_k, chance_recall_at_k, recall_at_k, retrieval_neighbours, retrieval_protocol,
)
from seco_lab.evaluation.runner import (PROTOCOLS, VideoSplits, load_video_splits, read_results, run_protocol,
                                       run_protocols)
from seco_lab.evaluation.target_probe import dataset_targets, frame_targets, ground_truth_svm, target_probe
from seco_lab.evaluation.tracking import (
    SiameseTracker, TrackerConfig, TrackingSequence, discover_tracking_sequences, otb_metrics, read_otb_sequence,
    tracking_protocol, trunk_feature_fn,
)

__all__ = [
    "EvaluationError", "InputSpec", "LoadedEncoder", "PROTOCOLS", "SiameseTracker", "TrackerConfig",
    "TrackingSequence", "VideoClassifier", "VideoSplits", "certain_recall_k", "chance_accuracy",
    "chance_recall_at_k", "confusion_matrix", "dataset_targets", "discover_tracking_sequences",
    "extract_video_features", "finetune_protocol", "frame_targets", "freeze_batchnorm", "ground_truth_svm",
    "knn_predict", "knn_protocol", "linear_protocol", "linear_svm_protocol", "load_encoder", "load_video_splits",
    "majority_class_accuracy", "otb_metrics", "pool_frame_features", "read_otb_sequence", "read_results",
    "recall_at_k", "recompute_bn_stats", "recompute_bn_stats_from_batches", "retrieval_neighbours",
    "retrieval_protocol", "run_protocol", "run_protocols", "target_probe", "top1_accuracy", "tracking_protocol",
    "train_classifier", "trunk_feature_fn",
]
