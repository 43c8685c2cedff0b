"""Tiny video files for the data tests (written with seco_lab.video.io.write_video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seco_lab.video.io import write_video

CODE_BLOCK = 8  # pixels per bit in coded frames


def coded_frames(num_frames: int, height: int = 16, bits: int = 8) -> np.ndarray:
    """Frames whose index is written in binary as black/white vertical bands: (T, H, bits*8, 3)."""
    frames = np.zeros((num_frames, height, bits * CODE_BLOCK, 3), dtype=np.uint8)
    for index in range(num_frames):
        for bit in range(bits):
            if (index >> bit) & 1:
                frames[index, :, bit * CODE_BLOCK:(bit + 1) * CODE_BLOCK] = 255
    return frames


def decode_codes(clip) -> list[int]:
    """Frame indices read back from coded frames; clip uint8 (T, C, H, W) at native size."""
    bits = clip.shape[-1] // CODE_BLOCK
    centre = [bit * CODE_BLOCK + CODE_BLOCK // 2 for bit in range(bits)]
    codes = []
    for frame in clip:
        band_means = frame[:, :, centre].float().mean(dim=(0, 1))  # (bits,)
        codes.append(sum(1 << bit for bit in range(bits) if band_means[bit] > 128))
    return codes


def smooth_frames(num_frames: int = 12, size: int = 32, seed: int = 0) -> np.ndarray:
    """A moving colour gradient: compresses well, so decoded pixels stay close. (T, size, size, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    phase = rng.uniform(0, 1, size=3)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        for channel in range(3):
            wave = 0.5 + 0.4 * np.sin(2 * np.pi * (x + 0.5 * y + phase[channel] + t / num_frames))
            frames[t, :, :, channel] = (255 * wave).astype(np.uint8)
    return frames


def make_video(path: Path, num_frames: int = 12, size: int = 32, seed: int = 0, codec: str | None = None) -> Path:
    """Write a tiny smooth video at ``path`` (codec chosen from the extension unless given)."""
    path = Path(path)
    if codec is None:
        codec = {".avi": "mpeg4", ".webm": "libvpx-vp9"}.get(path.suffix.lower(), "libx264")
    write_video(path, smooth_frames(num_frames, size, seed), fps=25.0, codec=codec)
    return path


def make_ucf101(root: Path, classes=("ApplyEyeMakeup", "HandstandPushups"), video_dir: str = "UCF-101",
                suffix: str = ".avi", list_suffix: str = ".avi", groups: int = 3, clips: int = 2) -> Path:
    """A tiny UCF101 tree: groups 1..groups-1 train, the last group test (split 1 and 2 lists)."""
    split_dir = root / "ucfTrainTestlist"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "classInd.txt").write_text("".join(f"{i + 1} {name}\n" for i, name in enumerate(classes)))
    train, test = [], []
    seed = 0
    for label, class_name in enumerate(classes):
        file_class = "HandStandPushups" if class_name == "HandstandPushups" else class_name  # as in UCF101
        for group in range(1, groups + 1):
            for clip in range(1, clips + 1):
                stem = f"v_{file_class}_g{group:02d}_c{clip:02d}"
                make_video(root / video_dir / class_name / f"{stem}{suffix}", seed=seed)
                seed += 1
                entry = f"{class_name}/{stem}{list_suffix}"
                (test.append(entry) if group == groups else train.append(f"{entry} {label + 1}"))
    for k in (1, 2):
        (split_dir / f"trainlist0{k}.txt").write_text("\r\n".join(train) + "\r\n")
        (split_dir / f"testlist0{k}.txt").write_text("\r\n".join(test) + "\r\n")
    return root


def make_hmdb51(root: Path, classes=("brush_hair", "wave"), per_class: int = 4) -> Path:
    """A tiny HMDB51 tree: per class, video 0 unused (tag 0), the last test (2), the rest train (1)."""
    split_dir = root / "testTrainMulti_7030_splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    for class_index, class_name in enumerate(classes):
        lines = []
        for video in range(per_class):
            name = f"Clip_{class_name}_[{video}]_u_nm_np1_fr_med_{video}.avi"
            make_video(root / class_name / name, seed=10 * class_index + video)
            tag = 0 if video == 0 else 2 if video == per_class - 1 else 1
            lines.append(f"{name}\t{tag} " if video == 1 else f"{name} {tag} ")
        (split_dir / f"{class_name}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root
