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
