"""Reading and writing video files with PyAV.

Frames are addressed by their *index*: the position of the frame in presentation order,
counting every frame the decoder can produce from the start of the file. ``probe_video``
counts those frames by decoding the whole stream, so the count is right even for files
whose header lies (truncated files, missing frame counts in the container).

``read_frames`` decodes only what it needs. A seek lands on the keyframe at or before the
wanted frame; the reader seeks when that keyframe lies well past the decoder's position (so
the seek skips frames that decoding forward would decode), and decodes forward otherwise.
After a seek, a frame's index is computed from its timestamp
(``(pts - start) * time_base * frame_rate``, ``start`` being the first frame that decodes)
and checked against the timestamps of its neighbours. Before its first seek in a file, the
reader checks that every packet's timestamp is ``start`` plus a whole number of frames and
notes which packets are keyframes (once per file and process, reading packets, not decoding
them); a file with a gap in its timestamps or a
varying frame rate, or a seek that lands after the requested frame, falls back to decoding
sequentially from the start, where the index is simply the count of decoded frames.

Frames come out upright: a display rotation in the file (how phones store portrait video) is
applied, and ``probe_video`` reports the size a player shows. Each frame is resized and converted
to RGB as soon as it decodes, so reading a whole long video at a small size never holds its
native-size frames.

Every call opens and closes its own container, so DataLoader worker processes never share
an open file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

__all__ = [
    "VideoDecodeError", "VideoInfo", "probe_video", "probe_video_with_note", "read_frames", "resized_shape", "write_video",
]

# A seek (a jump of the demuxer, a flush of the decoder) costs about as much as decoding a few
# small frames: the reader seeks only when the keyframe a seek lands on lies more than this
# many frames past the decoder's position.
SEEK_MIN_SKIP_FRAMES = 8
# For a file whose packets do not say which are keyframes: the forward jump (in frames) beyond
# which seeking is tried instead of decoding forward.
SEEK_GAP_FRAMES = 48
# Furthest a packet's frame index may lie from its place in the file for seeking to be trusted
# (packets come in decoding order; B-frames put a frame a few places from where it is shown).
MAX_PACKET_REORDER = 16
# Frame size from which decoding uses FFmpeg's threads; smaller frames decode faster on one
# thread (thread start-up costs more than it saves, and DataLoader workers are parallel already).
THREADED_DECODE_MIN_PIXELS = 640 * 360
THREADED_PROBE_MIN_PIXELS = 256 * 256
# Set in each process of a pool that decodes many videos at once (seco_lab.video.parallel): each
# process is one core's worth of work, and FFmpeg's threads there only compete with the others
# (probing 320x240 mpeg4 in two processes: 5.2-5.9 s with them, 3.4-4.1 s without).
_one_decoder_thread = False


def decode_on_one_thread() -> None:
    """Make every later decode in this process use a single FFmpeg thread."""
    global _one_decoder_thread
    _one_decoder_thread = True
# Encoders whose default rate control targets a quality (crf), not a bit rate.
QUALITY_CONTROLLED_CODECS = ("libx264", "libx265")
HIGH_BIT_RATE = 2_000_000
# Consecutive undecodable packets after which the rest of a file is treated as unreadable.
MAX_CONSECUTIVE_BAD_PACKETS = 32


class VideoDecodeError(RuntimeError):
    """A video file could not be opened or decoded; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self) -> tuple:  # rebuilt from its own arguments when it comes from another process
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class VideoInfo:
    """What the index knows about one video: decodable frame count, frame rate and frame size."""

    num_frames: int
    fps: float
    width: int
    height: int


def resized_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """Return ``(height, width)`` after resizing so the shorter side is ``size`` (aspect kept)."""
    if size is None:
        return height, width
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels or None, got {size}")
    if height <= width:
        return size, max(1, round(width * size / height))
    return max(1, round(height * size / width)), size


def _open_video(path: Path, whole_file: bool = False) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` for reading and return the container and its first video stream.

    ``whole_file`` (probing: every frame decoded in the main process) lets FFmpeg use its
    threads from a smaller frame size on.
    """
    if not path.is_file():
        if path.exists():  # a named pipe or a device would block or never end
            raise VideoDecodeError(path, "not a regular file (a folder, named pipe or device): not read")
        raise VideoDecodeError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoDecodeError(path, f"not a readable video container ({error.__class__.__name__}: {error})") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "container has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise VideoDecodeError(path, "no decoder for its video codec (FFmpeg does not know the codec it names)")
    threads_from = THREADED_PROBE_MIN_PIXELS if whole_file else THREADED_DECODE_MIN_PIXELS
    if not _one_decoder_thread and stream.codec_context.width * stream.codec_context.height >= threads_from:
        stream.thread_type = "AUTO"
    else:
        stream.codec_context.thread_count = 1
    return container, stream


def _decoded_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """Yield decoded frames from the container's current position, skipping bad packets.

    A truncated or partly corrupt file yields the frames that decode and then stops,
    instead of raising.
    """
    consecutive_bad = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.FFmpegError, OSError):
            return  # the demuxer cannot go further: the file ends here
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, OSError):
            consecutive_bad += 1
            if consecutive_bad >= MAX_CONSECUTIVE_BAD_PACKETS:
                return
            continue
        consecutive_bad = 0
        yield from frames


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show ``frame`` upright: its display matrix's rotation
    (phones record portrait video as landscape frames plus this flag), rounded to 90 degrees."""
    return round(frame.rotation / 90) % 4


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if rate is None or rate <= 0:
        return None
    return Fraction(rate)


def probe_video(path: str | Path) -> VideoInfo:
    """Decode the whole video stream of ``path`` and return its :class:`VideoInfo`.

    ``num_frames`` counts the frames that actually decode (a truncated file reports the
    frames before the damage). Raises :class:`VideoDecodeError` naming the file when it
    cannot be opened, has no video stream, or yields no frame.
    """
    return probe_video_with_note(path)[0]


def probe_video_with_note(path: str | Path) -> tuple[VideoInfo, str | None]:
    """Like :func:`probe_video`, plus a note when fewer frames decode than the container declares.

    The note (e.g. ``"truncated or damaged: 13 of 40 frames decode"``) is None for a
    healthy file. The declared count is the container's frame count, or its duration times
    the frame rate when the container stores no count; then the decoded frames are compared by
    the time they span, so a pause in a recording is no damage but a missing end is.
    """
    path = Path(path)
    container, stream = _open_video(path, whole_file=True)
    try:
        num_frames = 0
        first_pts: int | None = None
        last_pts: int | None = None
        width, height = stream.codec_context.width, stream.codec_context.height
        for frame in _decoded_frames(container, stream):
            if num_frames == 0:
                width, height = frame.width, frame.height
                if _quarter_turns(frame) % 2:
                    width, height = height, width
                first_pts = frame.pts
            last_pts = frame.pts
            num_frames += 1
        rate = _frame_rate(stream)
        if rate is None and num_frames > 1 and first_pts is not None and last_pts is not None and stream.time_base:
            span_seconds = float((last_pts - first_pts) * stream.time_base)
            rate = Fraction(num_frames - 1) / Fraction(span_seconds) if span_seconds > 0 else None
        declared = _declared_frames(container, stream, rate)
        reached = num_frames  # the frames the decoded ones span, to compare with the declared count
        if not stream.frames and rate and stream.time_base and first_pts is not None and last_pts is not None:
            # A count derived from the duration: frames absent from the timestamps (a pause in a
            # recording, a varying frame rate) are no damage; a last frame well before the end is.
            reached = max(num_frames, round((last_pts - first_pts) * stream.time_base * rate) + 1)
    finally:
        container.close()
    if num_frames == 0:
        raise VideoDecodeError(path, "no decodable video frame" + (f" (container declares {declared})" if declared else ""))
    info = VideoInfo(num_frames=num_frames, fps=float(rate) if rate else 0.0, width=int(width), height=int(height))
    note = None
    if declared and reached < declared * 0.95 - 1:
        note = f"truncated or damaged: {num_frames} of {declared} frames decode"
    return info, note


def _declared_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                     rate: Fraction | None) -> int:
    """Frame count the container claims (0 when it does not say)."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base and rate:
        return round(stream.duration * stream.time_base * rate)
    if container.duration and rate:
        return round(container.duration / av.time_base * rate)
    return 0


@dataclass(frozen=True)
class _SeekMap:
    """What seeking in one file relies on: the pts of frame 0, the indices of the frames whose
    packets are keyframes (sorted), or None when the file flags no packet as one, and how many
    frames the timestamps account for (from frame 0 on)."""

    start_pts: int
    keyframes: np.ndarray | None
    frame_count: int


# Per process: (path, size, mtime) -> the file's seek map when seeking by timestamp lands on
# known indices, None when it does not (see _seek_map).
_SEEK_MAPS: dict[tuple[str, int, int], _SeekMap | None] = {}
_SEEK_MAPS_LIMIT = 100_000


def _seek_map(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
              ticks_per_frame: Fraction) -> _SeekMap | None:
    """The file's seek map when the timestamps of every packet after the first decodable frame
    are that frame's pts plus a whole number of frames, each number used once (frame ``i`` at
    ``start + i * ticks``); None otherwise. Decodes only up to the first frame and reads the
    other packets' timestamps and keyframe flags.

    A gap in the timestamps (dropped frames, a pause in a recording) or a clip cut by stream copy
    at a frame that is not a keyframe (its first packets do not decode) breaks the mapping from
    the stream's declared start, which seeking relies on; so does a packet whose timestamp puts
    it far from its place in the file (more than MAX_PACKET_REORDER frames, none at all without
    B-frames), as a damaged index gives: frames are counted in the order they decode. The
    container is left at its end.
    """
    first_pts: int | None = None
    packet_pts: list[int] = []
    keyframe_pts: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream packet
            if packet.pts is None:
                return None
            packet_pts.append(packet.pts)
            if packet.is_keyframe:
                keyframe_pts.append(packet.pts)
            if first_pts is None:
                try:
                    frames = packet.decode()
                except (av.error.FFmpegError, OSError):
                    continue
                if frames:
                    first_pts = frames[0].pts
    except (av.error.FFmpegError, OSError):
        return None
    if first_pts is None:
        return None
    in_file_order = [round((pts - first_pts) / ticks_per_frame) for pts in packet_pts if pts >= first_pts]
    if sorted(in_file_order) != list(range(len(in_file_order))):
        return None
    reorder = MAX_PACKET_REORDER if stream.codec_context.has_b_frames else 0
    if any(abs(index - place) > reorder for place, index in enumerate(in_file_order)):
        return None
    keyframes = sorted(round((pts - first_pts) / ticks_per_frame) for pts in keyframe_pts if pts >= first_pts)
    return _SeekMap(first_pts, np.array(keyframes, dtype=np.int64) if keyframes else None, len(in_file_order))


class _FrameReader:
    """Decodes the frames of one open stream at requested indices, seeking when it pays."""

    def __init__(self, path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 num_frames: int | None = None) -> None:
        self.path = path
        self.num_frames = num_frames  # decodable frames, when the caller knows them (the index does)
        self.container = container
        self.stream = stream
        rate = _frame_rate(stream)
        time_base = stream.time_base
        # Timestamp ticks per frame; None when the stream gives no way to map index <-> pts.
        self.ticks_per_frame: Fraction | None = (1 / (rate * time_base)) if rate and time_base else None
        # pts of frame 0: the stream's start time, until _check_timing has found the first frame's
        self.start_pts: int = stream.start_time if stream.start_time is not None else 0
        self.keyframes: np.ndarray | None = None  # keyframe indices, once _check_timing has found them
        self.can_seek = self.ticks_per_frame is not None
        self.timing_checked = False  # whether start_pts, keyframes and can_seek come from _seek_map
        self.seek_key: tuple[str, int, int] | None = None  # the file's key in _SEEK_MAPS, once checked
        self.moved = False  # whether the container has read past the start
        self._frames: Iterator[av.VideoFrame] | None = None
        self.position = -1  # index of the last frame taken from self._frames
        self.sequential = True  # True while position is the exact count of decoded frames

    def _check_timing(self) -> None:
        """Before anything is decoded: trust timestamps only when they follow the frame rate throughout.

        ``frames_at`` runs it on the fresh container, so the scan starts at the first packet and,
        on a cached answer, the container has not moved."""
        assert self.ticks_per_frame is not None
        stat = self.path.stat()
        key = self.seek_key = (str(self.path), stat.st_size, stat.st_mtime_ns)
        if key not in _SEEK_MAPS:
            if len(_SEEK_MAPS) >= _SEEK_MAPS_LIMIT:
                _SEEK_MAPS.clear()
            _SEEK_MAPS[key] = _seek_map(self.container, self.stream, self.ticks_per_frame)
            self.moved = True
        seek_map = _SEEK_MAPS[key]
        self.timing_checked = True
        # A frame index counts decodable frames; when some packets do not decode (a damaged
        # file) the timestamps of the frames after them are off by the frames lost.
        self.can_seek = seek_map is not None and self.num_frames in (None, seek_map.frame_count)
        if seek_map is not None:
            self.start_pts, self.keyframes = seek_map.start_pts, seek_map.keyframes

    def _restart_sequential(self) -> None:
        """Give up seeking: go back to the start of the stream and count frames from there. A seek
        that could not be trusted in this file will not be in the next reads of it either."""
        self.can_seek = False
        if self.seek_key is not None:
            _SEEK_MAPS[self.seek_key] = None
        self._decode_from_start()

    def _decode_from_start(self) -> None:
        """Decode from the first frame, counting frames. A container that has moved is opened again:
        a seek to the stream's start lands after the first frames in some formats (MPEG program
        and transport streams, files joined end to end)."""
        if self.position >= 0 or self._frames is not None or self.moved:
            self.container.close()
            self.container, self.stream = _open_video(self.path)
        self._frames = _decoded_frames(self.container, self.stream)
        self.position = -1
        self.sequential = True

    def _index_of(self, frame: av.VideoFrame) -> int | None:
        if frame.pts is None or self.ticks_per_frame is None:
            return None
        return round((frame.pts - self.start_pts) / self.ticks_per_frame)

    def _seek_to(self, target: int) -> bool:
        """Seek so that the next frames lead to ``target``; False when the seek cannot be trusted."""
        assert self.ticks_per_frame is not None
        target_pts = self.start_pts + int(target * self.ticks_per_frame)
        try:
            self.container.seek(target_pts, backward=True, any_frame=False, stream=self.stream)
        except (av.error.FFmpegError, OSError):
            return False
        self._frames = _decoded_frames(self.container, self.stream)
        self.sequential = False
        self.position = -1
        return True

    def _next_frame(self) -> av.VideoFrame | None:
        """Advance one frame; keeps ``position`` right, or returns None at the end of the stream."""
        if self._frames is None:
            self._decode_from_start()
        frame = next(self._frames, None)
        if frame is None:
            return None
        if self.sequential:
            self.position += 1
            return frame
        index = self._index_of(frame)
        if index is None or (self.position >= 0 and index != self.position + 1):
            # Timestamps do not follow the constant frame rate: positions cannot be trusted.
            raise _UntrustedTimestamps
        self.position = index
        return frame

    def _seek_pays(self, target: int) -> bool:
        """Whether to seek towards ``target``: the keyframe a seek lands on (the last one at or
        before ``target``) lies more than SEEK_MIN_SKIP_FRAMES past the current position."""
        if not (self.can_seek and self.timing_checked):
            return False
        if self.keyframes is None:
            return target - self.position > SEEK_GAP_FRAMES
        before = int(np.searchsorted(self.keyframes, target, side="right"))
        landing = int(self.keyframes[before - 1]) if before else -1
        return landing - self.position > SEEK_MIN_SKIP_FRAMES

    def frames_at(self, sorted_unique: list[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield ``(index, frame)`` for every index of ``sorted_unique``, in that order, each as soon
        as it is decoded (the caller converts it before the next is decoded: native frames are large)."""
        # Only a jump over more than SEEK_MIN_SKIP_FRAMES frames can make a seek pay.
        jump = any(b - a > SEEK_MIN_SKIP_FRAMES for a, b in zip([-1, *sorted_unique], sorted_unique))
        if self.can_seek and jump and not self.timing_checked:
            self._check_timing()
        for target in sorted_unique:
            while True:
                try:
                    frame = self._advance_to(target)
                except _UntrustedTimestamps:
                    self._restart_sequential()
                    continue
                break
            if frame is None:
                raise VideoDecodeError(
                    self.path, f"frame {target} requested but the file has only {self.position + 1} decodable frames"
                )
            yield target, frame

    def _at_keyframe(self) -> bool:
        """Whether ``position`` is a keyframe of the seek map (True when the file flags none)."""
        return self.keyframes is None or bool(np.isin(self.position, self.keyframes))

    def _advance_to(self, target: int) -> av.VideoFrame | None:
        if self._seek_pays(target):
            if not self._seek_to(target):
                self._restart_sequential()
            else:
                frame = self._next_frame()
                if frame is None or self.position > target or not self._at_keyframe():
                    # The seek landed after the requested frame, or the first frame decoded after it
                    # is not a keyframe by its timestamp (an MPEG program stream stamps it with the
                    # next frame's): decode from the start instead.
                    self._restart_sequential()
                elif self.position == target:
                    return frame
        if self.position > target:
            self._restart_sequential()
        while self.position < target:
            frame = self._next_frame()
            if frame is None:
                if not self.sequential:  # positions from timestamps ran out: count decoded frames instead
                    raise _UntrustedTimestamps
                return None
            if self.position == target:
                return frame
            if self.position > target:
                raise _UntrustedTimestamps
        raise AssertionError("unreachable: position already at target without a frame")


class _UntrustedTimestamps(Exception):
    """Raised inside the reader when frame timestamps do not map to indices."""


def _scaling(frame: av.VideoFrame, height: int, width: int) -> dict[str, int | str]:
    """``reformat`` arguments that bring ``frame`` to ``height`` x ``width``: none when it has that
    size already (colour conversion only, swscale's fast unscaled path). Frames of one file may
    differ in size (files joined end to end): all come out at the size of the first one requested."""
    if (frame.height, frame.width) == (height, width):
        return {}
    return {"width": width, "height": height, "interpolation": "AREA" if height < frame.height else "BICUBIC"}


def read_frames(path: str | Path, indices: Sequence[int], size: int | None = None,
                num_frames: int | None = None) -> torch.Tensor:
    """Decode the frames at ``indices`` of the video at ``path``.

    Frame ``i`` is the ``i``-th frame that decodes, as ``probe_video`` counts them. Seeking by
    timestamp finds it only when no frame before it failed to decode; ``num_frames`` (the
    probed count) lets a damaged file be recognised, by timestamps that account for more frames
    than decode, and read from the start instead.

    Args:
        path: video file.
        indices: frame indices (0-based, in presentation order); may repeat and be unsorted.
        size: length of the shorter side after resizing (aspect ratio kept, antialiased);
            None keeps the native size.
        num_frames: the file's decodable frame count (``probe_video(path).num_frames``), if known.

    Returns:
        uint8 tensor (T, C, H, W) with ``T == len(indices)``, frames in the order of
        ``indices``, C = 3 (RGB), turned upright when the file carries a display rotation.

    Raises:
        VideoDecodeError: the file cannot be opened, or an index is negative or past the
            last decodable frame.
    """
    path = Path(path)
    index_list = [int(i) for i in indices]
    if not index_list:
        raise ValueError(f"{path}: read_frames needs at least one frame index")
    if min(index_list) < 0:
        raise VideoDecodeError(path, f"negative frame index {min(index_list)} requested")
    reader = _FrameReader(path, *_open_video(path), num_frames=num_frames)
    reformatter = VideoReformatter()  # one scaler context for all frames of the call
    arrays: dict[int, np.ndarray] = {}
    # Frames decoded before the first requested one, whose size every frame takes (only when
    # ``indices`` does not start with its smallest index); the others are converted as they decode.
    waiting: list[tuple[int, av.VideoFrame]] = []
    output_shape: tuple[int, int] | None = None
    turns = 0
    try:
        for index, frame in reader.frames_at(sorted(set(index_list))):
            if index == index_list[0]:
                output_shape = resized_shape(frame.height, frame.width, size)
                turns = _quarter_turns(frame)
            waiting.append((index, frame))
            if output_shape is not None:
                for waiting_index, waiting_frame in waiting:
                    arrays[waiting_index] = reformatter.reformat(
                        waiting_frame, format="rgb24", **_scaling(waiting_frame, *output_shape)).to_ndarray()
                waiting.clear()
    finally:
        reader.container.close()
    clip = np.stack([arrays[i] for i in index_list])  # (T, H, W, C)
    if turns:
        clip = np.rot90(clip, turns, axes=(1, 2))  # upright, as a player shows it
    # Transposed with numpy: a torch copy here would start torch's intra-op threads in every worker.
    return torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))  # (T, C, H, W)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 25.0, codec: str = "libx264") -> None:
    """Encode ``frames`` (uint8, shape (T, H, W, 3), RGB) into the video file ``path``.

    The container format follows the file extension (.mp4, .avi, .mkv, .webm, ...). The file
    is written under a temporary name and renamed when complete, so a reader never sees a
    half-written video. The same frames give the same bytes on every run and CPU. libx264 uses its
    default quality (crf 23); bit-rate controlled codecs
    (mpeg4, libvpx-vp9, ...) get a high bit rate so small frames stay sharp. Odd frame sizes are encoded in yuv444p with libx264 (yuv420p needs
    even sizes); other codecs need even sizes.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(
            f"{path}: frames must be uint8 of shape (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}"
        )
    if fps <= 0:
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    _, height, width, _ = frames.shape
    even = height % 2 == 0 and width % 2 == 0
    if not even and codec != "libx264":
        raise ValueError(f"{path}: codec {codec} needs even frame sizes, got {height}x{width}")
    pixel_format = "yuv420p" if even else "yuv444p"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(str(partial), mode="w") as container:
            # cpu-independent: without it libx264 writes other bytes for the same frames from one
            # run to the next (and from one CPU to another), so generated datasets would differ.
            options = {"x264-params": "cpu-independent=1"} if codec == "libx264" else {}
            stream = container.add_stream(codec, rate=rate, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
            if codec not in QUALITY_CONTROLLED_CODECS:
                # Bit-rate controlled encoders (mpeg4, vp9, ...) default to a low rate that
                # smears small frames; allow enough bits for near-lossless quality.
                stream.bit_rate = max(HIGH_BIT_RATE, 8 * width * height * int(np.ceil(fps)))
            for image in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
