"""From a split method and its thresholds to the segments of one file, and their files on disk."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from strataflow.config import VIDEO_MAX_SEGMENTS
from strataflow.extractors.base import ExtractionError, over_limit
from strataflow.extractors.media.encode import SegmentOutputs, encode_segments
from strataflow.extractors.media.failures import invalid
from strataflow.extractors.media.probe import MediaInfo, data_end
from strataflow.extractors.media.remux import copy_segments, keyframe_times
from strataflow.extractors.media.scenes import detect_scene_cuts
from strataflow.extractors.media.segments import Segment, segments_from_cuts, snap_to_keyframes, time_cuts
from strataflow.extractors.media.silence import detect_silences, silence_cuts


@dataclass(frozen=True)
class SplitSettings:
    method: str  # time | scene | silence
    interval: float
    scene_threshold: float
    scene_adaptive_ratio: float
    min_scene_seconds: float
    silence_db: float
    min_silence_seconds: float
    mode: str  # exact | keyframe


def plan_cuts(path: Path, info: MediaInfo, split: SplitSettings, should_stop: Callable[[], bool]) -> list[float]:
    if split.method == "time":
        return time_cuts(info.duration, split.interval)
    if split.method == "scene":
        if not info.has_video:
            raise invalid(f"{path.name} has no video stream: split_method 'scene' needs one (use time or silence)")
        return detect_scene_cuts(
            path, split.scene_threshold, split.scene_adaptive_ratio, split.min_scene_seconds, should_stop
        )
    if split.method == "silence":
        if not info.has_audio:
            raise invalid(f"{path.name} has no audio track: split_method 'silence' needs one (use time or scene)")
        silences, _ = detect_silences(path, split.silence_db, split.min_silence_seconds, should_stop)
        return silence_cuts(silences, info.duration)
    raise invalid(f"unknown split_method {split.method!r}")


def plan_segments(
    path: Path,
    info: MediaInfo,
    split: SplitSettings,
    should_stop: Callable[[], bool],
    max_segments: int = VIDEO_MAX_SEGMENTS,
) -> list[Segment]:
    """The segments to emit. In keyframe mode video cuts move to keyframes, and the times say so.

    The plan is bounded twice before it is made: by where the file's data really ends (not
    the duration its header claims) and by `max_segments`.
    """
    check_complete(path, info, data_end(path, info.duration))
    if split.method == "time" and math.ceil(info.duration / split.interval) > max_segments:
        raise _too_many(path, math.ceil(info.duration / split.interval), max_segments)
    cuts = plan_cuts(path, info, split, should_stop)
    if len(cuts) + 1 > max_segments:
        raise _too_many(path, len(cuts) + 1, max_segments)
    if split.mode == "keyframe" and info.has_video:
        cuts = snap_to_keyframes(cuts, keyframe_times(path))
    return segments_from_cuts(cuts, info.duration)


def _too_many(path: Path, count: int, limit: int) -> ExtractionError:
    return over_limit(f"the segment plan of {path.name}", limit, "video_max_segments", "segments", count)


def write_segment_files(
    path: Path,
    info: MediaInfo,
    segments: list[Segment],
    out_dir: Path,
    split: SplitSettings,
    write_files: bool,
    grab_keyframes: bool,
    should_stop: Callable[[], bool],
) -> SegmentOutputs:
    """Segment files and keyframes in one pass; fails the row when the data stops short of its header."""
    if not write_files and not grab_keyframes:
        return SegmentOutputs()
    writer = copy_segments if split.mode == "keyframe" else encode_segments
    outputs = writer(path, info, segments, out_dir, write_files, grab_keyframes, should_stop)
    if not should_stop():
        check_complete(path, info, outputs.decoded_until)
    return outputs


def check_complete(path: Path, info: MediaInfo, decoded_until: float) -> None:
    """A file whose data ends well before its declared duration is truncated or corrupt."""
    slack = max(1.0, 0.05 * info.duration)
    if decoded_until < info.duration - slack:
        raise invalid(
            f"{path.name} declares {info.duration:.1f} s but its data ends at {decoded_until:.1f} s: "
            "the file is truncated or corrupt"
        )
