"""write_video -> probe_video / read_frames round trips, frame accuracy, seeking and resizing."""

import gc
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import VideoReformatter

from seco_lab.video import io as video_io
from seco_lab.video.io import (
    VideoDecodeError, VideoInfo, probe_video, probe_video_with_note, read_frames, resized_shape, write_video,
)
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


@pytest.mark.parametrize("frame_size", [64, 63], ids=["yuv420p", "odd size, yuv444p"])
def test_write_video_gives_the_same_bytes_for_the_same_frames_every_time(tmp_path, frame_size):
    """The embedded dataset must be the same in every generation of it."""
    from seco_lab.video.synth import SYNTH_PRESETS, render_dataset_clip

    config = replace(SYNTH_PRESETS["smoke"], frame_size=frame_size)
    clips = [render_dataset_clip(config, 0, name, group, clip)
             for name in ("Bounce", "SlideLeft") for group in (1, 2) for clip in (1, 2)]
    written = set()
    for _ in range(12):
        contents = []
        for number, frames in enumerate(clips):
            write_video(tmp_path / f"{number}.mp4", frames)
            contents.append((tmp_path / f"{number}.mp4").read_bytes())
        written.add(tuple(contents))
    assert len(written) == 1


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


def _seek_at_every_forward_jump(monkeypatch) -> None:
    """Make the reader seek for every forward jump, wherever the keyframes are."""
    monkeypatch.setattr(video_io, "SEEK_MIN_SKIP_FRAMES", -10**9)
    monkeypatch.setattr(video_io, "SEEK_GAP_FRAMES", 0)


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".avi", "mpeg4"), (".mkv", "libx264")])
def test_read_frames_is_frame_accurate_in_any_order_with_repeats(tmp_path, suffix, codec):
    path = tmp_path / f"coded{suffix}"
    write_video(path, coded_frames(200), fps=30.0, codec=codec)
    indices = [150, 3, 3, 199, 0, 77, 150, 120, 5]
    clip = read_frames(path, indices)
    assert clip.shape == (len(indices), 3, 16, 64)
    assert decode_codes(clip) == indices


def test_an_mpeg_transport_stream_starts_again_from_its_first_frame(tmp_path):
    """A seek to an MPEG transport stream's start time lands a GOP later: decoding from the first
    frame again (after a seek that did not pay off, or after a far frame was sought) opens the file anew."""
    path = tmp_path / "coded.ts"
    write_video(path, coded_frames(120, height=48), codec="mpeg2video")
    assert probe_video(path).num_frames == 120
    assert decode_codes(read_frames(path, [119])) == [119]
    assert decode_codes(read_frames(path, [60, 2])) == [60, 2]


def test_a_seek_in_an_mpeg_program_stream_reads_the_requested_frames(tmp_path):
    """After a seek, FFmpeg stamps the keyframe of an MPEG-1 program stream with the next frame's
    timestamp: taken at its word, every frame read after the seek was the one before the requested."""
    path = tmp_path / "coded.mpg"
    write_video(path, coded_frames(120, height=48), codec="mpeg1video")
    indices = [60, 2, 119, 75, 33, 98]
    assert decode_codes(read_frames(path, indices)) == indices
    for index in indices:
        assert decode_codes(read_frames(path, [index])) == [index]


def test_a_file_whose_seek_failed_is_not_sought_in_again(tmp_path, monkeypatch):
    """The first read of an MPEG-1 program stream finds its seek untrustworthy and decodes from
    the start; the next reads of the same file do so at once instead of seeking again."""
    path = tmp_path / "coded.mpg"
    write_video(path, coded_frames(120, height=48), codec="mpeg1video")
    seeks = []
    seek_to = video_io._FrameReader._seek_to

    def counted_seek_to(reader, target: int) -> bool:
        seeks.append(target)
        return seek_to(reader, target)

    monkeypatch.setattr(video_io._FrameReader, "_seek_to", counted_seek_to)
    assert decode_codes(read_frames(path, [75])) == [75]
    first_seeks = len(seeks)
    assert first_seeks >= 1
    assert decode_codes(read_frames(path, [98])) == [98]
    assert decode_codes(read_frames(path, [60, 2])) == [60, 2]
    assert len(seeks) == first_seeks


def test_seeking_and_sequential_decoding_agree(tmp_path, monkeypatch):
    path = tmp_path / "coded.mp4"
    write_video(path, coded_frames(180), fps=24.0)
    indices = list(np.random.default_rng(0).integers(0, 180, size=25))
    _seek_at_every_forward_jump(monkeypatch)
    seeking = read_frames(path, indices)
    monkeypatch.setattr(video_io, "SEEK_MIN_SKIP_FRAMES", 10**9)  # never seek
    monkeypatch.setattr(video_io, "SEEK_GAP_FRAMES", 10**9)
    sequential = read_frames(path, indices)
    assert decode_codes(seeking) == [int(i) for i in indices]
    assert torch.equal(seeking, sequential)


def _count_decoded(monkeypatch) -> list[int]:
    """The pts of every frame the reader decodes from now on, in order."""
    decoded: list[int] = []
    original = video_io._decoded_frames

    def counted(container, stream):
        for frame in original(container, stream):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video_io, "_decoded_frames", counted)
    return decoded


def _keyframe_indices(path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ticks = 1 / (stream.average_rate * stream.time_base)
        return sorted(round(packet.pts / ticks) for packet in container.demux(stream) if packet.size and packet.is_keyframe)


def test_a_far_frame_is_sought_after_near_ones_were_decoded_from_the_start(tmp_path, monkeypatch):
    """SeCo's triplets ([a, b, c] with a in the first half) and evenly spaced evaluation frames
    start near frame 0 and then jump: the jump seeks instead of decoding every frame between."""
    path = tmp_path / "coded.mp4"
    _write_coded(path, coded_frames(200), range(200), gop=12)
    decoded = _count_decoded(monkeypatch)
    assert decode_codes(read_frames(path, [5, 150, 160])) == [5, 150, 160]
    assert len(decoded) < 5 + 1 + 12 + 11 + 5  # 0..5, then from the keyframe before 150 to 160, and slack


def test_short_jumps_seek_when_keyframes_lie_between(tmp_path, monkeypatch):
    """Evenly spaced evaluation frames of a file with frequent keyframes (UCF101's and HMDB51's
    mpeg4) are a few dozen frames apart: each jump seeks to the keyframe before its frame instead
    of decoding every frame between."""
    path = tmp_path / "coded.mp4"
    _write_coded(path, coded_frames(100), range(100), gop=12)
    assert max(np.diff(_keyframe_indices(path))) <= 12
    decoded = _count_decoded(monkeypatch)
    indices = [0, 20, 40, 60, 80]
    assert decode_codes(read_frames(path, indices)) == indices
    assert len(decoded) <= len(indices) * 12  # from the keyframe before each frame; 81 decoding forward


def test_a_jump_that_no_keyframe_shortens_decodes_forward(tmp_path, monkeypatch):
    """A seek lands on the keyframe before the frame: when that keyframe is behind the decoder's
    position, a seek would decode again what was decoded already."""
    path = tmp_path / "coded.mp4"
    _write_coded(path, coded_frames(200), range(200), gop=250)
    target = _keyframe_indices(path)[1] - 1  # the frame before the second keyframe
    assert target > 5 + video_io.SEEK_GAP_FRAMES  # a far jump from frame 5
    decoded = _count_decoded(monkeypatch)
    assert decode_codes(read_frames(path, [5, target])) == [5, target]
    assert len(decoded) == len(set(decoded)) == target + 1  # frames 0..target, each once


def test_without_keyframe_flags_only_a_far_jump_seeks(tmp_path, monkeypatch):
    """A file whose packets flag no keyframe gives no landing point to compare: a jump over more
    than SEEK_GAP_FRAMES seeks, a shorter one decodes forward."""
    path = tmp_path / "coded.mp4"
    _write_coded(path, coded_frames(200), range(200), gop=12)
    real_seek_map = video_io._seek_map
    monkeypatch.setattr(video_io, "_seek_map", lambda *args: replace(real_seek_map(*args), keyframes=None))
    video_io._SEEK_MAPS.clear()
    decoded = _count_decoded(monkeypatch)
    near = video_io.SEEK_GAP_FRAMES
    assert decode_codes(read_frames(path, [0, near])) == [0, near]
    assert len(decoded) == near + 1
    decoded.clear()
    assert decode_codes(read_frames(path, [0, near + 100])) == [0, near + 100]
    assert len(decoded) < 1 + 12 + 1  # frame 0, then from the keyframe before the far frame


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
    _seek_at_every_forward_jump(monkeypatch)
    indices = [40, 10, 59, 25]
    assert decode_codes(read_frames(path, indices)) == indices


def _write_coded(path, frames, pts, gop=12):
    """libx264 video of ``frames`` with the given timestamps (time base 1/25), a keyframe every ``gop``."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        stream.codec_context.gop_size = gop
        for image, stamp in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = stamp, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_a_gap_in_the_timestamps_does_not_shift_the_frames_a_seek_reads(tmp_path, suffix):
    """Frames 0-99 at 25 fps, then a 2-second gap (a paused or frame-dropping recording): the
    regular spacing on each side must not make a seek read frame i - 50 as frame i."""
    path = tmp_path / f"gap{suffix}"
    frames = coded_frames(200)
    pts = list(range(100)) + list(range(150, 250))
    if suffix == ".webm":
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libvpx-vp9", rate=25)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            stream.bit_rate, stream.codec_context.gop_size = 2_000_000, 12
            for image, stamp in zip(frames, pts):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = stamp, Fraction(1, 25)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    else:
        _write_coded(path, frames, pts)
    assert probe_video(path).num_frames == 200
    for index in (60, 130, 175, 199):
        assert decode_codes(read_frames(path, [index])) == [index]
        assert decode_codes(read_frames(path, [5, index])) == [5, index]  # a seek after decoding from the start


def test_a_pause_in_the_timestamps_is_no_damage_but_a_missing_end_is(tmp_path):
    """An mkv stores no frame count, so the declared one comes from its duration: a recording
    paused for 2 seconds decodes fewer frames than that, all of them, up to its end."""
    path = tmp_path / "pause.mkv"
    _write_coded(path, coded_frames(200), list(range(100)) + list(range(150, 250)))
    assert probe_video_with_note(path) == (VideoInfo(num_frames=200, fps=25.0, width=64, height=16), None)
    truncated = tmp_path / "truncated.mkv"
    data = path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    info, note = probe_video_with_note(truncated)
    assert info.num_frames < 150 and note == f"truncated or damaged: {info.num_frames} of 250 frames decode"


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_clip_cut_at_a_frame_that_is_not_a_keyframe_reads_the_frames_it_decodes(tmp_path, monkeypatch, suffix):
    """A clip cut by stream copy (``ffmpeg -ss ... -c copy``), as many Kinetics downloads are: its
    first packets need a keyframe that is not in the file, so frame 0 is the first frame that
    decodes, not the stream's declared start."""
    source = tmp_path / "source.mp4"
    _write_coded(source, coded_frames(300, bits=9), range(300), gop=50)
    cut = tmp_path / f"cut{suffix}"
    with av.open(str(source)) as reader, av.open(str(cut), mode="w") as writer:
        stream_in = reader.streams.video[0]
        stream_out = writer.add_stream_from_template(stream_in)
        for packet in reader.demux(stream_in):
            if packet.pts is None or packet.pts < 65:
                continue
            packet.pts, packet.dts, packet.stream = packet.pts - 65, packet.dts - 65, stream_out
            writer.mux(packet)
    count = probe_video(cut).num_frames
    every_frame = decode_codes(read_frames(cut, range(count)))
    assert every_frame == list(range(every_frame[0], every_frame[0] + count))
    for index in (60, 120, 180, count - 1):
        assert decode_codes(read_frames(cut, [index])) == [every_frame[index]]
        assert decode_codes(read_frames(cut, [2, index])) == [every_frame[2], every_frame[index]]
    _seek_at_every_forward_jump(monkeypatch)
    indices = [int(i) for i in np.random.default_rng(0).integers(0, count, size=30)]
    assert decode_codes(read_frames(cut, indices)) == [every_frame[i] for i in indices]


@pytest.mark.parametrize("degrees, corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")])
def test_a_display_rotation_turns_frames_upright(tmp_path, degrees, corner):
    """Phones store portrait video as landscape frames plus a display rotation; a player turns
    them counter-clockwise by ``VideoFrame.rotation`` degrees, and so must read_frames."""
    path = tmp_path / "phone.mp4"
    height, width = 48, 64
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[: height // 2, : width // 2] = 255  # the stored frame's top-left quarter
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(degrees)
        for _ in range(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    shown = (width, height) if degrees == 180 else (height, width)  # (width, height) on screen
    info = probe_video(path)
    assert (info.width, info.height) == shown
    clip = read_frames(path, [0, 3])
    assert clip.shape == (2, 3, shown[1], shown[0])
    quarters = {f"{row}-{column}": clip[0, :, rows, columns].float().mean().item()
                for row, rows in (("top", slice(0, shown[1] // 2)), ("bottom", slice(shown[1] // 2, None)))
                for column, columns in (("left", slice(0, shown[0] // 2)), ("right", slice(shown[0] // 2, None)))}
    assert max(quarters, key=quarters.get) == corner
    assert quarters[corner] > 200 and sorted(quarters.values())[-2] < 60
    assert read_frames(path, [1], size=24).shape[-2:] == ((24, 32) if degrees == 180 else (32, 24))


def test_resize_sets_short_side_and_keeps_aspect(tmp_path):
    path = tmp_path / "wide.mp4"
    write_video(path, coded_frames(6, height=32))  # 64 wide, 32 high
    clip = read_frames(path, [0, 5], size=16)
    assert clip.shape == (2, 3, 16, 32)
    assert resized_shape(240, 320, 128) == (128, 171)
    assert resized_shape(320, 240, 128) == (171, 128)
    assert resized_shape(240, 320, None) == (240, 320)


def test_frames_of_a_file_whose_frame_size_changes_come_out_at_the_first_frames_size(tmp_path):
    """Two MPEG files joined end to end (``cat a.mpg b.mpg``), 64x96 then 96x128: every frame comes
    out at the first frame's size, natively and when that size already has the requested short side."""
    parts = []
    for number, (height, width) in enumerate([(64, 96), (96, 128)]):
        part = tmp_path / f"part{number}.mpg"
        write_video(part, smooth_frames(20, size=max(height, width))[:, :height, :width], codec="mpeg1video")
        parts.append(part.read_bytes())
    path = tmp_path / "joined.mpg"
    path.write_bytes(b"".join(parts))
    info = probe_video(path)
    assert (info.height, info.width) == (64, 96) and info.num_frames > 30
    assert read_frames(path, [0, 30]).shape == (2, 3, 64, 96)
    assert read_frames(path, [0, 30], size=64).shape == (2, 3, 64, 96)
    assert read_frames(path, [0, 30], size=32).shape == (2, 3, 32, 48)


def _rotated_video(path, degrees: int, num_frames: int = 12) -> None:
    """A phone-style file: 48x64 stored frames plus a display rotation of ``degrees``."""
    frames = smooth_frames(num_frames, size=64)[:, :48]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(degrees)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode(None))


def _joined_video(path):
    """Two MPEG files joined end to end: 64x96 frames, then 96x128 ones from frame 20 on."""
    parts = []
    for number, (height, width) in enumerate([(64, 96), (96, 128)]):
        part = path.with_name(f"part{number}.mpg")
        write_video(part, smooth_frames(20, size=max(height, width))[:, :height, :width], codec="mpeg1video")
        parts.append(part.read_bytes())
    path.write_bytes(b"".join(parts))


def _all_decoded_then_converted(path, indices, size):
    """What read_frames returns, computed by decoding every frame at its native size first and only
    then converting the requested ones (at the size of the first one requested) and turning them upright."""
    with av.open(str(path)) as container:
        native = list(container.decode(video=0))
    first = native[indices[0]]
    height, width = resized_shape(first.height, first.width, size)
    reformatter = VideoReformatter()
    arrays = []
    for index in indices:
        frame = native[index]
        scaling = {} if (frame.height, frame.width) == (height, width) else {
            "width": width, "height": height, "interpolation": "AREA" if height < frame.height else "BICUBIC"}
        arrays.append(reformatter.reformat(frame, format="rgb24", **scaling).to_ndarray())
    clip = np.rot90(np.stack(arrays), round(first.rotation / 90) % 4, axes=(1, 2))
    return torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("kind", ["plain", "rotated 90", "rotated 180", "joined sizes"])
@pytest.mark.parametrize("size", [None, 24])
def test_frames_converted_as_they_decode_equal_frames_converted_after_decoding(tmp_path, kind, size):
    path = tmp_path / ("clip.mpg" if kind == "joined sizes" else "clip.mp4")
    if kind == "plain":
        write_video(path, smooth_frames(12, size=40)[:, :32])
    elif kind == "joined sizes":
        _joined_video(path)
    else:
        _rotated_video(path, int(kind.split()[1]))
    count = probe_video(path).num_frames
    orders = [list(range(count)), [count - 1, 0, 5, 5, 2], [3, count - 1, 1]]  # the first not always the smallest
    if kind == "joined sizes":
        orders.append([25, 3, 30, 0])  # every frame at the size of the second file's frames
    for indices in orders:
        assert torch.equal(read_frames(path, indices, size), _all_decoded_then_converted(path, indices, size)), indices


def test_read_frames_converts_each_frame_before_decoding_the_next(tmp_path, monkeypatch):
    """A long high-resolution video read whole (the frame store reads every frame) must not keep its
    native frames: at most a couple of native-size frames exist while each next one is decoded."""
    path = tmp_path / "large.mp4"
    write_video(path, smooth_frames(24, size=96))
    decoded_frames = video_io._decoded_frames
    native_alive = []

    def counting_native_frames(container, stream):
        for frame in decoded_frames(container, stream):
            native_alive.append(sum(1 for thing in gc.get_objects()
                                    if type(thing) is av.VideoFrame and thing.width == 96))
            yield frame

    monkeypatch.setattr(video_io, "_decoded_frames", counting_native_frames)
    clip = read_frames(path, range(24), size=16)
    assert clip.shape == (24, 3, 16, 16) and len(native_alive) == 24
    assert max(native_alive) <= 3, f"native frames alive while decoding: {native_alive}"


def test_read_frames_errors_name_the_file(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, smooth_frames(5))
    with pytest.raises(VideoDecodeError, match=r"short\.mp4.*frame 9 requested.*5 decodable"):
        read_frames(path, [1, 9])
    with pytest.raises(VideoDecodeError, match="negative"):
        read_frames(path, [-1])
    with pytest.raises(VideoDecodeError, match="does not exist"):
        read_frames(tmp_path / "missing.mp4", [0])


def test_a_decode_error_survives_the_trip_from_another_process():
    """Errors of calls run in other processes come back pickled: a VideoDecodeError that cannot be
    rebuilt from its pickle turns into a BrokenProcessPool that names nothing."""
    import pickle

    error = pickle.loads(pickle.dumps(VideoDecodeError(Path("clips/a.avi"), "no decodable video frame")))
    assert isinstance(error, VideoDecodeError) and str(error) == "clips/a.avi: no decodable video frame"
    assert error.path == Path("clips/a.avi") and error.reason == "no decodable video frame"
