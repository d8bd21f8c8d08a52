"""The two halves of one decoding pass (``extractors.media.iter_clips``): the frame nearest each target time,
and the audio track resampled to mono, each held only as long as a clip still needs it."""

from __future__ import annotations

import av
import numpy as np


class FramePicker:
    """Gives every target time the decoded frame nearest to it, in one forward pass over the frames.

    Targets are resolved as soon as a frame at or after them arrives (the nearest frame is then either
    that frame or the one before), so only the previous frame is held, whatever the window overlap.
    """

    def __init__(self, targets: np.ndarray, size):
        flat = targets.ravel()
        self._order = np.argsort(flat, kind="stable")
        self._sorted = flat[self._order]
        rank = np.empty_like(self._order)
        rank[self._order] = np.arange(flat.size)
        self._last_rank = rank.reshape(targets.shape).max(axis=1)
        self._n_frames = targets.shape[1]
        self._picked: list = [None] * flat.size
        self._next = 0
        self._prev = None  # [time_s, av.VideoFrame, rgb array or None]
        self._size = size

    @property
    def last_time_s(self):
        return None if self._prev is None else self._prev[0]

    def _rgb(self, entry) -> np.ndarray:
        if entry[2] is None:
            height, width = self._size if self._size is not None else (None, None)
            entry[2] = entry[1].to_ndarray(format="rgb24", width=width, height=height)
            entry[1] = None  # the decoded picture is no longer needed once converted
        return entry[2]

    def add(self, time_s: float, frame) -> None:
        current = [time_s, frame, None]
        while self._next < self._sorted.size and self._sorted[self._next] <= time_s:
            target, prev = self._sorted[self._next], self._prev
            nearest = prev if prev is not None and target - prev[0] <= time_s - target else current
            self._picked[self._order[self._next]] = self._rgb(nearest)
            self._next += 1
        self._prev = current

    def finish(self) -> None:
        """Targets after the last frame get the last frame."""
        while self._next < self._sorted.size:
            self._picked[self._order[self._next]] = self._rgb(self._prev)
            self._next += 1

    def ready(self, clip: int) -> bool:
        return self._next > self._last_rank[clip]

    def take(self, clip: int) -> np.ndarray:
        span = slice(clip * self._n_frames, (clip + 1) * self._n_frames)
        frames = np.stack(self._picked[span])
        self._picked[span] = [None] * self._n_frames
        return frames


class AudioTape:
    """Decoded audio resampled to mono float32, addressed by sample index of movie time."""

    def __init__(self, sample_rate: int, origin_s: float):
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        self._rate = sample_rate
        self._origin_s = origin_s
        self._chunks: list[np.ndarray] = []
        self._start = None  # sample index of the first held sample
        self._held = 0
        self._closed = False

    def _append(self, frames) -> None:
        for out in frames:
            samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            self._chunks.append(samples)
            self._held += samples.size

    def add(self, frame) -> None:
        if self._start is None:
            # Resampled output is contiguous, so the first frame's timestamp places all of it.
            first = self._origin_s if frame.time is None else frame.time
            self._start = round((first - self._origin_s) * self._rate)
        self._append(self._resampler.resample(frame))

    def finish(self) -> None:
        self._append(self._resampler.resample(None))
        self._closed = True

    def covers(self, stop: int) -> bool:
        return self._closed or (self._start is not None and self._start + self._held >= stop)

    def cut(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop``; where the track has none (before 0, past its end) they are zeros."""
        out = np.zeros(stop - start, dtype=np.float32)
        if self._start is None or not self._chunks:
            return out
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        held = self._chunks[0]
        lo, hi = max(start, self._start), min(stop, self._start + held.size)
        if hi > lo:
            out[lo - start:hi - start] = held[lo - self._start:hi - self._start]
        return out

    def discard_before(self, index: int) -> None:
        if self._start is None or index <= self._start or not self._chunks:
            return
        held = np.concatenate(self._chunks)
        drop = min(index - self._start, held.size)
        self._chunks, self._start, self._held = [held[drop:]], self._start + drop, held.size - drop
