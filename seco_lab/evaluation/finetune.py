"""Fine-tuning protocol: the whole trunk plus a linear classifier, trained with labels.

2D encoders follow TSN as SeCo does: K segments x 1 frame per video, one clip-consistent
augmentation, frame features averaged before the classifier, dropout, and optionally every
BatchNorm frozen except the first ("partial BN"). 3D encoders see one random clip per video.
Testing averages the logits over several clips (and optionally 3 crops) per video.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from seco_lab.engine.workers import end_with_parent
from seco_lab.evaluation.features import (
    EvaluationError, InputSpec, LoadedEncoder, apply_input_mode, crop_offsets, normalise_frames, read_input_frames,
    resolve_device, video_progress_bar,
)
from seco_lab.evaluation.metrics import top1_accuracy
from seco_lab.methods.base import clip_frames_to_read, frames_to_sample
from seco_lab.samplers import random_clip_indices, tsn_segment_indices, uniform_clip_indices

OPTIMIZERS = ("sgd", "adam")
VIEW_AVERAGES = ("logits", "softmax")  # what a test video's views average: SeCo's logits, DualVar's softmax


class VideoClassifier(nn.Module):
    """Trunk + dropout + linear layer.

    2D: input (B, K, C, H, W) -> frame features (B, K, D) averaged over the K segments -> logits.
    3D: input (B, C, T, H, W) -> (B, D) -> logits (B, num_classes).
    """

    def __init__(self, trunk: nn.Module, kind: str, feature_dim: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        if kind not in ("2d", "3d"):
            raise EvaluationError(f"kind must be '2d' or '3d', got {kind!r}")
        if not 0.0 <= dropout < 1.0:
            raise EvaluationError(f"dropout must be in [0, 1), got {dropout}")
        self.trunk = trunk
        self.kind = kind
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "2d":
            batch, segments = x.shape[:2]
            frames = x.reshape(batch * segments, *x.shape[2:])  # (B * K, C, H, W)
            features = self.trunk(frames).reshape(batch, segments, -1).mean(dim=1)  # (B, D)
        else:
            features = self.trunk(x)  # (B, D)
        return self.classifier(self.dropout(features))


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_batchnorm(module: nn.Module, except_first: bool = True) -> list[nn.Module]:
    """Freeze BN statistics and affine parameters (TSN's partial BN keeps the first one free).

    Puts the frozen layers in eval mode and stops their gradients; call again after every
    ``module.train()``. Returns the frozen layers.
    """
    layers = batchnorm_layers(module)
    frozen = layers[1:] if except_first else layers
    for layer in frozen:
        layer.eval()
        for parameter in layer.parameters():
            parameter.requires_grad_(False)
    return frozen


class TensorItems(torch.utils.data.Dataset):
    """Items {key: inputs[i], "label": labels[i]} from tensors (hand-made problems, tests)."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor | np.ndarray, key: str = "input"):
        if len(inputs) != len(labels):
            raise EvaluationError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs = inputs
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.key = key

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {self.key: self.inputs[i], "label": self.labels[i]}


class FinetuneTrainVideos(torch.utils.data.Dataset):
    """Training inputs: 2D -> "input" (K, C, crop, crop), TSN segments with random offsets;
    3D -> (C, T, crop, crop), one random clip. One random crop (and optional horizontal flip)
    for the whole clip. Reproducible per (seed, epoch, item)."""

    def __init__(self, records: Sequence[Any], num_frames: Sequence[int], kind: str, spec: InputSpec,
                 segments: int = 7, hflip: bool = False, seed: int = 0):
        self.records = list(records)
        self.num_frames = [int(n) for n in num_frames]
        self.kind = kind
        self.spec = spec
        self.segments = segments
        self.hflip = hflip
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        record, num_frames, spec = self.records[i], self.num_frames[i], self.spec
        if self.kind == "2d":
            indices = tsn_segment_indices(frames_to_sample(num_frames, spec.input_mode), self.segments, rng)
        else:
            indices = random_clip_indices(num_frames, clip_frames_to_read(spec.clip_frames, spec.input_mode),
                                          spec.stride, rng)
        frames = read_input_frames(record.path, indices, spec, num_frames, self.kind)
        height, width = frames.shape[-2:]
        top = int(rng.integers(0, height - spec.crop_size + 1))
        left = int(rng.integers(0, width - spec.crop_size + 1))
        frames = frames[..., top:top + spec.crop_size, left:left + spec.crop_size]
        if self.hflip and rng.random() < 0.5:
            frames = frames.flip(-1)
        clip = apply_input_mode(normalise_frames(frames, spec), spec, self.kind)  # (T, C, crop, crop)
        if self.kind == "3d":
            clip = clip.permute(1, 0, 2, 3)  # (C, T, crop, crop)
        return {"input": clip, "label": int(record.label)}


def segment_positions(num_frames: int, segments: int, num_clips: int) -> list[np.ndarray]:
    """Test-time TSN clips: clip c takes the frame at relative position (c + 0.5) / num_clips
    of each of the ``segments`` equal spans. Returns ``num_clips`` arrays (segments,)."""
    span = num_frames / segments
    clips = []
    for clip in range(num_clips):
        position = (clip + 0.5) / num_clips
        indices = np.floor(span * (np.arange(segments) + position)).astype(np.int64)
        clips.append(np.clip(indices, 0, num_frames - 1))
    return clips


class FinetuneTestVideos(torch.utils.data.Dataset):
    """Test views "views": 2D (V, K, C, crop, crop), 3D (V, C, T, crop, crop); V = clips x crops."""

    def __init__(self, records: Sequence[Any], num_frames: Sequence[int], kind: str, spec: InputSpec,
                 segments: int = 7, num_clips: int = 2, num_crops: int = 1):
        self.records = list(records)
        self.num_frames = [int(n) for n in num_frames]
        self.kind = kind
        self.spec = spec
        self.segments = segments
        self.num_clips = num_clips
        self.num_crops = num_crops

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        record, num_frames, spec = self.records[i], self.num_frames[i], self.spec
        if self.kind == "2d":
            clips = segment_positions(frames_to_sample(num_frames, spec.input_mode), self.segments, self.num_clips)
        else:
            clips = uniform_clip_indices(num_frames, clip_frames_to_read(spec.clip_frames, spec.input_mode),
                                         spec.stride, self.num_clips)
        views = []
        for indices in clips:
            frames = read_input_frames(record.path, indices, spec, num_frames, self.kind)
            for top, left in crop_offsets(frames.shape[-2], frames.shape[-1], spec.crop_size, self.num_crops):
                crop = frames[..., top:top + spec.crop_size, left:left + spec.crop_size]
                clip = apply_input_mode(normalise_frames(crop, spec), spec, self.kind)  # (T, C, crop, crop)
                views.append(clip if self.kind == "2d" else clip.permute(1, 0, 2, 3))
        return {"views": torch.stack(views), "label": int(record.label)}


@torch.no_grad()
def predict_views(model: nn.Module, dataset: torch.utils.data.Dataset, batch_size: int = 8,
                  device: str | torch.device = "cpu", average: str = "logits", num_workers: int = 0,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scores averaged over each item's views: items {"views": (V, ...), "label"}.

    average: ``"logits"`` (SeCo's test) or ``"softmax"`` (the class probabilities, DualVar's).
    ``num_workers`` processes decode the items (0: this one); ``progress`` shows a bar of the
    videos ("fine-tune: test"). Returns (mean scores (M, num_classes), labels (M,)).
    """
    if average not in VIEW_AVERAGES:
        raise EvaluationError(f"average {average!r} is not one of {', '.join(VIEW_AVERAGES)}")
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         worker_init_fn=end_with_parent)
    logits, labels = [], []
    with video_progress_bar(progress, len(dataset), "fine-tune: test") as bar:
        for batch in loader:
            views = batch["views"].to(device)
            count, per_video = views.shape[:2]
            flat = views.reshape(count * per_video, *views.shape[2:])  # (B * V, ...)
            scores = model(flat).float()  # (B * V, num_classes)
            if average == "softmax":
                scores = scores.softmax(dim=1)
            logits.append(scores.reshape(count, per_video, -1).mean(dim=1).cpu())
            labels.append(torch.as_tensor(batch["label"]))
            bar.update(count)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def train_classifier(model: nn.Module, train_data: torch.utils.data.Dataset, epochs: int = 5, lr: float = 1e-3,
                     optimizer: str = "adam", batch_size: int = 16, weight_decay: float = 0.0,
                     momentum: float = 0.9, partial_bn: bool = False, device: str | torch.device = "cpu",
                     seed: int = 0, num_workers: int = 0, progress: bool = False) -> list[float]:
    """Supervised training on items {"input", "label"} with a cosine lr; returns the mean loss per epoch.

    partial_bn: freeze every BatchNorm except the first (statistics and affine parameters).
    progress: a bar of the training steps ("fine-tune") showing the epoch and its mean loss so far.
    """
    if optimizer not in OPTIMIZERS:
        raise EvaluationError(f"optimizer {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    device = resolve_device(device)
    model.to(device)
    if partial_bn:
        freeze_batchnorm(model, except_first=True)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train_data, batch_size=batch_size, shuffle=True, drop_last=False,
                                         generator=generator, num_workers=num_workers,
                                         worker_init_fn=end_with_parent)
    total_steps = max(1, epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    epoch_losses = []
    with tqdm(total=epochs * len(loader), desc="fine-tune", unit="step", dynamic_ncols=True,
              disable=not progress) as bar:
        for epoch in range(epochs):
            if hasattr(train_data, "set_epoch"):
                train_data.set_epoch(epoch)
            model.train()
            if partial_bn:
                freeze_batchnorm(model, except_first=True)
            losses = []
            for batch in loader:
                logits = model(batch["input"].to(device))
                loss = F.cross_entropy(logits, torch.as_tensor(batch["label"]).to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{np.mean(losses):.4g}", refresh=False)
                bar.update(1)
            epoch_losses.append(float(np.mean(losses)))
    model.eval()
    return epoch_losses


def finetune_protocol(encoder: LoadedEncoder, train_records: Sequence[Any], test_records: Sequence[Any],
                      train_num_frames: Sequence[int], test_num_frames: Sequence[int], num_classes: int,
                      epochs: int = 5, lr: float = 1e-3, optimizer: str = "adam", batch_size: int = 16,
                      weight_decay: float = 0.0, segments: int = 7, dropout: float = 0.5,
                      partial_bn: bool = True, hflip: bool = False, test_clips: int = 2, test_crops: int = 1,
                      test_average: str = "logits", device: str | torch.device = "auto", seed: int = 0, num_workers: int = 0,
                      progress: bool = False) -> dict[str, Any]:
    """Fine-tune ``encoder.module`` in place (copy it first to keep the frozen one) and test.

    The test averages each video's ``test_clips x test_crops`` views by ``test_average``
    (``"logits"`` or ``"softmax"``). Returns {"top1", "predictions" (M,), "train_losses" (per epoch)}.
    The classifier's initial weights and dropout draw from torch's generators seeded with ``seed``;
    the caller's generators are restored afterwards.
    """
    device = resolve_device(device)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = VideoClassifier(encoder.module, encoder.kind, encoder.feature_dim, num_classes, dropout)
        train_data = FinetuneTrainVideos(train_records, train_num_frames, encoder.kind, encoder.input_spec,
                                         segments=segments, hflip=hflip, seed=seed)
        losses = train_classifier(model, train_data, epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size,
                                  weight_decay=weight_decay, partial_bn=partial_bn, device=device, seed=seed,
                                  num_workers=num_workers, progress=progress)
        test_data = FinetuneTestVideos(test_records, test_num_frames, encoder.kind, encoder.input_spec,
                                       segments=segments, num_clips=test_clips, num_crops=test_crops)
        logits, labels = predict_views(model, test_data, batch_size=max(1, batch_size // max(1, test_clips)),
                                       device=device, average=test_average, num_workers=num_workers, progress=progress)
        predictions = logits.argmax(axis=1)
    return {"top1": top1_accuracy(predictions, labels), "predictions": predictions, "train_losses": losses}
