"""Videos on disk: dataset layouts, decoding, the cached index, the frame store and the dataset
that turns videos into a method's training views.

``load_dataset(root)`` finds a dataset's layout (UCF101, HMDB51, Kinetics, class folders) and
indexes its usable videos; ``read_frames`` decodes frames by index; ``VideoDataset`` serves a
method's views of them to the training loop.
"""

from seco_lab.video.dataset import VideoDataset
from seco_lab.video.frame_store import FrameStore
from seco_lab.video.index import MIN_USABLE_FRAMES, DataProblemWarning, VideoIndex, load_dataset
from seco_lab.video.io import VideoDecodeError, probe_video, read_frames, write_video
from seco_lab.video.layouts import DatasetSpec, LayoutError, VideoRecord, discover

__all__ = [
    "DataProblemWarning", "DatasetSpec", "FrameStore", "LayoutError", "MIN_USABLE_FRAMES", "VideoDataset",
    "VideoDecodeError", "VideoIndex", "VideoRecord", "discover", "load_dataset", "probe_video", "read_frames",
    "write_video",
]
