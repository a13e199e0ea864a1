"""
Frames of a LeRobot video file at the times a dataset's rows ask for, decoded with PyAV.

A row's frame is the decoded frame whose presentation time is within `tolerance_s` of
`from_timestamp + timestamp` (LeRobot's own rule; its default tolerance is 1e-4 s, this
package allows a quarter of a frame). A wanted time with no such frame (a video shorter
than its parquet, a gap, frames at other times) is an error naming the file and the time,
never a neighbouring frame; so is a file that does not open or decode.

Shapes: T wanted frames, H x W pixels.
"""

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np


class VideoError(ValueError):
    """A video file that cannot give the frames asked of it; the message says why."""


def _open(path: Path):
    import av  # heavy: only where a dataset is read or written
    if not path.is_file():
        raise VideoError('missing file')
    try:
        container = av.open(str(path))
    except Exception as error:  # PyAV's own error classes (InvalidDataError, ...)
        raise VideoError(f'not a readable video ({" ".join(str(error).split())})') from None
    if not container.streams.video:
        container.close()
        raise VideoError('no video stream')
    return container


def decode_frames(path: Path, times_s: Sequence[float], tolerance_s: float,
                  convert: Optional[Callable[[np.ndarray], np.ndarray]] = None
                  ) -> np.ndarray:
    """
    Decode the frames at `times_s` (ascending) from the first video stream of `path`.

    Parameters
    ----------
    path : Path
        An mp4 (any codec PyAV's FFmpeg decodes: AV1 through libdav1d, H.264, HEVC, ...).
    times_s : sequence of float
        Presentation times of the frames wanted (seconds, ascending).
    tolerance_s : float
        How far a frame's time may lie from the wanted one.
    convert : callable, optional
        Applied to each RGB uint8 (H, W, 3) frame as it is decoded (e.g. a resize), so a long
        video at full size never sits in memory.

    Returns
    -------
    numpy.ndarray
        uint8 (T, H, W, 3) RGB (after `convert`).

    Raises
    ------
    VideoError
        Missing or unreadable file, undecodable stream, or a wanted time with no frame.

    """
    wanted = np.asarray(times_s, dtype=np.float64)
    if len(wanted) and np.any(np.diff(wanted) < 0):
        raise ValueError('decode_frames: times_s must be ascending')
    container = _open(path)
    frames = []
    try:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        codec = stream.codec_context.name
        if len(wanted) and wanted[0] > tolerance_s:  # jump near the first wanted frame
            container.seek(int(max(wanted[0] - 1.0, 0.0) / stream.time_base), stream=stream,
                           backward=True)
        last = None
        try:
            for frame in container.decode(stream):
                if len(frames) == len(wanted):
                    break
                if frame.pts is None:
                    continue
                last = float(frame.pts * stream.time_base)
                target = wanted[len(frames)]
                if last < target - tolerance_s:
                    continue
                if last > target + tolerance_s:
                    raise VideoError(f'no frame at {target:.4f} s (the next is at {last:.4f} s)')
                image = frame.to_ndarray(format='rgb24')
                frames.append(convert(image) if convert else image)
        except VideoError:
            raise
        except Exception as error:  # a codec FFmpeg lacks, a damaged packet
            raise VideoError(f'cannot decode its {codec} stream ({" ".join(str(error).split())})'
                             ) from None
    finally:
        container.close()
    if len(frames) < len(wanted):
        end = 'has no frames' if last is None else f'ends at {last:.4f} s'
        raise VideoError(f'the video {end}, {len(wanted) - len(frames)} of the {len(wanted)} '
                         f'frames wanted (up to {wanted[-1]:.4f} s) are missing: shorter than '
                         'its parquet')
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(frames)
