"""write_video -> probe_video / read_frames round trips, frame accuracy, seeking and resizing."""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from seco_lab.video import io as video_io
from seco_lab.video.io import VideoDecodeError, probe_video, read_frames, resized_shape, write_video
from tests._video_fixtures import coded_frames, decode_codes, smooth_frames


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".avi", "mpeg4"), (".mkv", "libx264"),
                                          (".webm", "libvpx-vp9")])
def test_round_trip_keeps_frame_count_and_pixels(tmp_path, suffix, codec):
    frames = smooth_frames(num_frames=12, size=32)
    path = tmp_path / f"clip{suffix}"
    write_video(path, frames, fps=25.0, codec=codec)
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (12, 32, 32)
    assert info.fps == pytest.approx(25.0)
    clip = read_frames(path, range(12))
    assert clip.dtype == torch.uint8 and clip.shape == (12, 3, 32, 32)
    original = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (T, C, H, W)
    assert (clip.float() - original).abs().mean() < 10.0  # colour is subsampled (yuv420p) and compressed
    gray = np.repeat(frames[..., :1], 3, axis=-1)
    write_video(path, gray, fps=25.0, codec=codec)
    gray_clip = read_frames(path, range(12)).float()
    assert (gray_clip - torch.from_numpy(gray).permute(0, 3, 1, 2).float()).abs().mean() < 3.0


def test_write_video_leaves_no_partial_file_and_rejects_bad_frames(tmp_path):
    write_video(tmp_path / "a.mp4", smooth_frames(4))
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "b.mp4", np.zeros((4, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_video(tmp_path / "b.mp4", np.zeros((4, 32, 32), dtype=np.uint8))
    assert not (tmp_path / "b.mp4").exists()


def test_odd_frame_size_is_written_with_libx264(tmp_path):
    path = tmp_path / "odd.mp4"
    write_video(path, np.full((5, 15, 21, 3), 128, dtype=np.uint8))
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (5, 21, 15)


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".avi", "mpeg4"), (".mkv", "libx264")])
def test_read_frames_is_frame_accurate_in_any_order_with_repeats(tmp_path, suffix, codec):
    path = tmp_path / f"coded{suffix}"
    write_video(path, coded_frames(200), fps=30.0, codec=codec)
    indices = [150, 3, 3, 199, 0, 77, 150, 120, 5]
    clip = read_frames(path, indices)
    assert clip.shape == (len(indices), 3, 16, 64)
    assert decode_codes(clip) == indices


def test_seeking_and_sequential_decoding_agree(tmp_path, monkeypatch):
    path = tmp_path / "coded.mp4"
    write_video(path, coded_frames(180), fps=24.0)
    indices = list(np.random.default_rng(0).integers(0, 180, size=25))
    monkeypatch.setattr(video_io, "SEEK_GAP_FRAMES", 0)  # seek for every forward jump
    seeking = read_frames(path, indices)
    monkeypatch.setattr(video_io, "SEEK_GAP_FRAMES", 10**9)  # never seek
    sequential = read_frames(path, indices)
    assert decode_codes(seeking) == [int(i) for i in indices]
    assert torch.equal(seeking, sequential)


def test_variable_frame_rate_falls_back_to_counting_frames(tmp_path, monkeypatch):
    """Timestamps that do not follow the average rate must not shift indices."""
    path = tmp_path / "vfr.mkv"
    frames = coded_frames(60)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += 20 if index % 3 else 90  # irregular frame durations
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert probe_video(path).num_frames == 60
    monkeypatch.setattr(video_io, "SEEK_GAP_FRAMES", 0)
    indices = [40, 10, 59, 25]
    assert decode_codes(read_frames(path, indices)) == indices


def test_resize_sets_short_side_and_keeps_aspect(tmp_path):
    path = tmp_path / "wide.mp4"
    write_video(path, coded_frames(6, height=32))  # 64 wide, 32 high
    clip = read_frames(path, [0, 5], size=16)
    assert clip.shape == (2, 3, 16, 32)
    assert resized_shape(240, 320, 128) == (128, 171)
    assert resized_shape(320, 240, 128) == (171, 128)
    assert resized_shape(240, 320, None) == (240, 320)


def test_read_frames_errors_name_the_file(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, smooth_frames(5))
    with pytest.raises(VideoDecodeError, match=r"short\.mp4.*frame 9 requested.*5 decodable"):
        read_frames(path, [1, 9])
    with pytest.raises(VideoDecodeError, match="negative"):
        read_frames(path, [-1])
    with pytest.raises(VideoDecodeError, match="does not exist"):
        read_frames(tmp_path / "missing.mp4", [0])
