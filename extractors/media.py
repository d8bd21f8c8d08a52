"""Movie files to per-TR clips: RGB frames and 16 kHz mono audio, decoded in one pass with PyAV.

Time convention
---------------
Movie time 0 is the container's start time, and the fMRI run is assumed to start with the movie:
TR ``k`` is acquired over ``[k * tr, (k + 1) * tr)``. Clip ``k`` is the stimulus window tied to TR ``k``
(see :func:`clip_windows`); the hemodynamic lag is modelled downstream by FIR delays, not here.

A TR "fits" the movie when it ends no later than ``duration + tolerance_s``; the default tolerance is one
video frame, so a movie a few milliseconds short of a whole number of TRs (29.97 fps material) keeps its
last TR.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from features.errors import InputError

from ._decoding import AudioTape, FramePicker

MOVIE_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm")
ALIGNMENTS = ("end", "start", "center")
PARTIALS = ("drop", "keep")

# Frames past the last decoded one are served by the last frame; a gap longer than this between the
# last decoded frame and a requested time means the file ends early (truncated), not a slow frame rate.
_TRUNCATION_SLACK_S = 1.0
# Guards floor/ceil against binary rounding of products such as 10 * 1.49.
_EPS = 1e-9


@dataclass
class MovieInfo:
    """What a movie file holds, as far as clip extraction cares.

    Attributes
    ----------
    path : Path
    duration_s : float
        Duration of the video stream in seconds, from movie time 0.
    fps : float
        Average frame rate (may be fractional, e.g. 29.97).
    width, height : int
        Frame size in pixels.
    has_audio : bool
    audio_rate : int or None
        Sample rate of the first audio stream, None without audio.
    """

    path: Path
    duration_s: float
    fps: float
    width: int
    height: int
    has_audio: bool
    audio_rate: int | None


@dataclass
class Clip:
    """The stimulus tied to one TR.

    Attributes
    ----------
    index : int
        TR index in the run.
    onset_s, offset_s : float
        The window actually used for the frames, clipped to the movie.
    frames : array of shape (n_frames, height, width, 3), uint8
        RGB frames nearest to ``n_frames`` uniformly spaced times inside the window.
    audio : array of shape (n_samples,), float32, or None
        Mono audio ending at ``offset_s``. It starts at the nominal window onset, which may lie
        before movie time 0 (those samples are zeros), so every window of full length carries exactly
        ``round(window_s * sample_rate)`` samples; a last partial window is shorter. Channels are
        downmixed by FFmpeg's default matrix (stereo becomes ``(L + R) / sqrt(2)``, as with
        ``ffmpeg -ac 1`` and float output). None when the movie has no audio track.
    """

    index: int
    onset_s: float
    offset_s: float
    frames: np.ndarray
    audio: np.ndarray | None


def _bad(path, field, expected, found) -> InputError:
    return InputError(f"Movie file '{path}': {field}: expected {expected}, found {found}.")


def _open_movie(path: Path):
    if not path.exists():
        raise _bad(path, "file", "an existing movie file", "no such file")
    if not path.is_file():
        raise _bad(path, "file", "a movie file", "a directory")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as err:
        raise _bad(path, "container", "a decodable movie (mp4, mkv, avi, mov, webm)",
                   f"data FFmpeg cannot read ({err.strerror or type(err).__name__})") from err


def _origin_s(container) -> float:
    return (container.start_time or 0) / av.time_base


def _video_duration_s(container, video, fps: float) -> float | None:
    origin = _origin_s(container)
    if video.duration and video.time_base:
        start = float(video.start_time * video.time_base) if video.start_time is not None else origin
        return start + float(video.duration * video.time_base) - origin
    if container.duration:
        return container.duration / av.time_base
    if video.frames and fps:
        return video.frames / fps
    return None


def probe_movie(path) -> MovieInfo:
    """Read a movie's header: duration, frame rate, size and audio track.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    MovieInfo

    Raises
    ------
    InputError
        Missing file, undecodable container, no video stream, unknown frame rate or duration.
    """
    path = Path(path)
    with _open_movie(path) as container:
        if not container.streams.video:
            kinds = ", ".join(s.type for s in container.streams) or "no streams"
            raise _bad(path, "video stream", "at least one video stream", f"only {kinds}")
        video = container.streams.video[0]
        rate = video.average_rate or video.guessed_rate or video.base_rate
        if not rate:
            raise _bad(path, "video frame rate", "a positive frame rate", "none in the header")
        duration = _video_duration_s(container, video, float(rate))
        if not duration or duration <= 0:
            raise _bad(path, "duration", "a positive video duration", f"{duration!r}")
        audio = container.streams.audio[0] if container.streams.audio else None
        return MovieInfo(path=path, duration_s=float(duration), fps=float(rate),
                         width=video.codec_context.width, height=video.codec_context.height,
                         has_audio=audio is not None,
                         audio_rate=int(audio.rate) if audio is not None else None)


def _nominal_windows(n_trs, tr, window_s, align) -> np.ndarray:
    if int(n_trs) != n_trs or n_trs < 0:
        raise ValueError(f"n_trs must be a non-negative integer, got {n_trs!r}")
    if not tr > 0:
        raise ValueError(f"tr must be positive seconds, got {tr!r}")
    window_s = tr if window_s is None else window_s
    if not window_s > 0:
        raise ValueError(f"window_s must be positive seconds, got {window_s!r}")
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    starts = np.arange(int(n_trs)) * float(tr)
    anchor = {"end": starts + tr - window_s, "start": starts,
              "center": starts + (tr - window_s) / 2}[align]
    return np.stack([anchor, anchor + window_s], axis=1)


def clip_windows(n_trs, tr, window_s=None, align="end", duration_s=None) -> np.ndarray:
    """Stimulus window of each TR, in seconds of movie time.

    TR ``k`` is acquired over ``[k * tr, (k + 1) * tr)``. Its window has length ``window_s`` and

    - ``align="end"``: ends at ``(k + 1) * tr`` (what was seen up to the end of the TR, the usual choice
      when the window is longer than the TR);
    - ``align="start"``: starts at ``k * tr``;
    - ``align="center"``: is centred on ``(k + 0.5) * tr``.

    Onsets before 0 are clipped to 0, and offsets after ``duration_s`` (when given) to ``duration_s``.

    Parameters
    ----------
    n_trs : int
    tr : float
        Repetition time in seconds.
    window_s : float, optional
        Window length in seconds; defaults to ``tr``.
    align : {"end", "start", "center"}
    duration_s : float, optional
        Movie duration; windows are clipped to it.

    Returns
    -------
    windows : array of shape (n_trs, 2)
        Onset and offset in seconds.
    """
    windows = _nominal_windows(n_trs, tr, window_s, align)
    windows[:, 0] = np.maximum(windows[:, 0], 0.0)
    if duration_s is not None:
        windows = np.minimum(windows, float(duration_s))
        empty = np.flatnonzero(windows[:, 1] <= windows[:, 0])
        if empty.size:
            raise ValueError(f"window of TR {empty[0]} lies after the movie end at {duration_s} s")
    return windows


def n_trs_for(duration_s, tr, partial="drop", tolerance_s=0.0) -> int:
    """Number of TRs a movie of ``duration_s`` seconds covers.

    Parameters
    ----------
    duration_s, tr : float
    partial : {"drop", "keep"}
        ``"drop"`` counts whole TRs only; ``"keep"`` also counts a last partial TR.
    tolerance_s : float
        A TR ending at most this far past the movie end still counts as whole, and a partial TR shorter
        than this is not counted.

    Returns
    -------
    int
    """
    if partial not in PARTIALS:
        raise ValueError(f"partial must be one of {PARTIALS}, got {partial!r}")
    if not tr > 0:
        raise ValueError(f"tr must be positive seconds, got {tr!r}")
    whole = max(0, math.floor((duration_s + tolerance_s) / tr + _EPS))
    if partial == "drop":
        return whole
    return max(whole, math.ceil((duration_s - tolerance_s) / tr - _EPS))


@dataclass
class _ClipPlan:
    windows: np.ndarray  # (n, 2) seconds, the windows actually used for frames
    targets: np.ndarray  # (n, n_frames) seconds at which a frame is wanted
    audio_spans: np.ndarray  # (n, 2) sample indices at sample_rate, start may be negative
    tolerance_s: float


def _plan_clips(info, tr, n_frames, window_s, align, partial, n_trs, tolerance_s, sample_rate):
    if int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    tol = 1.0 / info.fps if tolerance_s is None else float(tolerance_s)
    if n_trs is None:
        n_trs = n_trs_for(info.duration_s, tr, partial, tol)
    elif n_trs > (most := n_trs_for(info.duration_s, tr, "keep", tol)):
        raise _bad(info.path, "n_trs", f"at most {most} TRs of {tr} s in a movie of "
                   f"{info.duration_s:.3f} s", f"{n_trs} TRs")
    # Whole TRs that overrun the end by less than the tolerance keep their full nominal window.
    whole = min(n_trs, n_trs_for(info.duration_s, tr, "drop", tol))
    end = max(info.duration_s, whole * tr)
    try:
        windows = clip_windows(n_trs, tr, window_s, align, duration_s=end)
    except ValueError as err:
        raise _bad(info.path, "clip window", f"every window to overlap the movie (0 to {end:.3f} s)",
                   f"the {err}") from err
    nominal = _nominal_windows(n_trs, tr, window_s, align)
    edges = windows[:, :1] + (windows[:, 1:] - windows[:, :1]) * np.linspace(0, 1, n_frames + 1)
    targets = (edges[:, :-1] + edges[:, 1:]) / 2
    stop = np.round(windows[:, 1] * sample_rate).astype(np.int64)
    n_window = round((nominal[0, 1] - nominal[0, 0]) * sample_rate) if n_trs else 0
    start = np.round(nominal[:, 1] * sample_rate).astype(np.int64) - n_window
    return _ClipPlan(windows, targets, np.stack([start, stop], axis=1), tol)


def _decoded_frames(container, streams, path: Path):
    """Video and audio frames in demux order; decoder failures become InputError."""
    kind = streams[0].type
    try:
        for packet in container.demux(*streams):
            kind = packet.stream.type
            for frame in packet.decode():
                yield frame
    except av.error.FFmpegError as err:
        raise _bad(path, f"{kind} stream data", "decodable packets",
                   f"a decoding error ({err.strerror or type(err).__name__})") from err


def iter_clips(path, tr, n_frames=8, window_s=None, align="end", sample_rate=16000, partial="drop",
               require_audio=False, size=None, n_trs=None, tolerance_s=None) -> Iterator[Clip]:
    """Cut a movie into one clip per TR, decoding the file once from start to end.

    Parameters
    ----------
    path : str or Path
    tr : float
        Repetition time in seconds.
    n_frames : int
        Frames per clip, nearest to the midpoints of ``n_frames`` equal parts of the window.
    window_s : float, optional
        Window length in seconds; defaults to ``tr``. May exceed ``tr`` (overlapping windows).
    align : {"end", "start", "center"}
        Where the window sits relative to its TR, see :func:`clip_windows`.
    sample_rate : int
        Audio sample rate of the clips (mono float32).
    partial : {"drop", "keep"}
        Whether a last partial TR gets a clip (its window clipped to the movie end).
    require_audio : bool
        Raise InputError when the movie has no audio track (otherwise ``Clip.audio`` is None).
    size : tuple of (height, width), optional
        Resize frames to this size.
    n_trs : int, optional
        Number of TRs of the fMRI run; defaults to as many as the movie holds (see ``partial``).
        A run longer than the movie (beyond ``tolerance_s``) raises InputError.
    tolerance_s : float, optional
        How far a TR may run past the movie end and still count as whole; defaults to one frame.

    Yields
    ------
    Clip
        In TR order.

    Raises
    ------
    InputError
        Missing or undecodable file, no video stream, no audio with ``require_audio``, a run longer
        than the movie, or a file that ends before its declared duration (truncated).
    """
    info = probe_movie(path)
    if require_audio and not info.has_audio:
        raise _bad(info.path, "audio stream", "an audio track (require_audio=True)", "video only")
    plan = _plan_clips(info, tr, n_frames, window_s, align, partial, n_trs, tolerance_s, sample_rate)
    return _stream_clips(info, plan, sample_rate, size)


def count_clips(path, tr, window_s=None, align="end", partial="drop", n_trs=None, tolerance_s=None) -> int:
    """Number of clips :func:`iter_clips` yields for a movie with the same settings, from its header only.

    Raises
    ------
    InputError
        As :func:`iter_clips` does for a missing or undecodable file or a run longer than the movie.
    """
    info = probe_movie(path)
    return len(_plan_clips(info, tr, 1, window_s, align, partial, n_trs, tolerance_s, 16000).windows)


def _stream_clips(info: MovieInfo, plan: _ClipPlan, sample_rate: int, size) -> Iterator[Clip]:
    n_clips = len(plan.windows)
    if n_clips == 0:
        return
    with _open_movie(info.path) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        streams = [video] + ([container.streams.audio[0]] if info.has_audio else [])
        origin = _origin_s(container)
        picker = FramePicker(plan.targets, size)
        tape = AudioTape(sample_rate, origin) if info.has_audio else None
        clip = 0
        for frame in _decoded_frames(container, streams, info.path):
            if isinstance(frame, av.VideoFrame):
                last = picker.last_time_s
                guess = 0.0 if last is None else last + 1.0 / info.fps
                picker.add(guess if frame.time is None else frame.time - origin, frame)
            else:
                tape.add(frame)
            while clip < n_clips and picker.ready(clip) and (
                    tape is None or tape.covers(plan.audio_spans[clip, 1])):
                yield _make_clip(clip, plan, picker, tape)
                clip += 1
            if clip == n_clips:
                return
        _check_complete(info, plan, picker.last_time_s)
        picker.finish()
        if tape is not None:
            tape.finish()
        for clip in range(clip, n_clips):
            yield _make_clip(clip, plan, picker, tape)


def _make_clip(clip: int, plan: _ClipPlan, picker: FramePicker, tape) -> Clip:
    audio = None
    if tape is not None:
        start, stop = plan.audio_spans[clip]
        audio = tape.cut(int(start), int(stop))
        if clip + 1 < len(plan.audio_spans):
            tape.discard_before(int(plan.audio_spans[clip + 1:, 0].min()))
    onset, offset = plan.windows[clip]
    return Clip(index=clip, onset_s=float(onset), offset_s=float(offset),
                frames=picker.take(clip), audio=audio)


def _check_complete(info: MovieInfo, plan: _ClipPlan, last_time_s) -> None:
    if last_time_s is None:
        raise _bad(info.path, "video stream data", "decodable frames", "none")
    wanted = float(plan.targets.max())
    if wanted > last_time_s + _TRUNCATION_SLACK_S + plan.tolerance_s:
        raise _bad(info.path, "duration", f"frames up to {wanted:.2f} s as the header declares "
                   f"{info.duration_s:.2f} s", f"the last frame at {last_time_s:.2f} s (truncated file?)")


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix().lower())]


def list_runs(folder_or_files) -> list[Path]:
    """Movie segment files in natural order ("s01e02a" before "s01e10a", "run-2" before "run-10").

    Parameters
    ----------
    folder_or_files : str, Path or iterable of str/Path
        A folder (its movie files, not recursive), one movie file, or a list of movie files.

    Returns
    -------
    list of Path

    Raises
    ------
    InputError
        A missing folder or file, or a folder without movie files.
    """
    if isinstance(folder_or_files, (str, Path)):
        given = Path(folder_or_files)
        if given.is_dir():
            runs = [p for p in given.iterdir() if p.is_file() and p.suffix.lower() in MOVIE_EXTENSIONS]
            if not runs:
                raise InputError(f"Movie folder '{given}': files: expected at least one movie "
                                 f"({', '.join(MOVIE_EXTENSIONS)}), found none.")
            return sorted(runs, key=_natural_key)
        folder_or_files = [given]
    runs = [Path(p) for p in folder_or_files]
    for run in runs:
        if not run.is_file():
            raise _bad(run, "file", "an existing movie file", "no such file")
    return sorted(runs, key=_natural_key)
