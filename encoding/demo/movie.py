"""A deterministic synthetic movie with picture and sound, written as H.264 + AAC mp4 with PyAV.

The movie is driven by a latent scene sequence: each scene (4-12 s) belongs to one of a few scene
types, which fix a background colour, 1-3 coloured shapes and a tone chord. Shapes drift smoothly;
the sound mixes the chord with noise bursts that follow either a speech-like ~4 Hz syllable rhythm
or on/off blocks with silent gaps, drawn independently of the picture, so that audio energy and
luminance carry different information over time.

Codecs: video ``libx264`` (yuv420p, CRF 12, preset ``veryfast``), audio the FFmpeg native ``aac``
encoder (mono, 96 kb/s) in an mp4 container. Both encoders are deterministic, so the same seed gives
the same decoded frames and samples (checked by the tests), and in practice the same bytes.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

N_SCENE_TYPES = 6
VIDEO_CODEC = "libx264"
AUDIO_CODEC = "aac"
_AUDIO_CHUNK = 1024  # one AAC frame
_LUMA = np.array([0.299, 0.587, 0.114])


def _as_rate(fps) -> Fraction:
    # 29.97 must become exactly 30000/1001, not a float approximation, for clean timestamps.
    return Fraction(fps).limit_denominator(1001)


def write_movie(path, frames, fps, audio=None, sample_rate=16000, crf=12, frame_times=None) -> Path:
    """Encode RGB frames (and optional audio) into an H.264/AAC mp4.

    Parameters
    ----------
    path : str or Path
    frames : iterable of arrays of shape (height, width, 3), uint8
        Height and width must be even (yuv420p).
    fps : float or Fraction
        Frame rate; 29.97 is read as 30000/1001.
    audio : array of shape (n_samples,) or (n_samples, n_channels), optional
        Samples in [-1, 1]. Mono or stereo.
    sample_rate : int
    crf : int
        x264 constant rate factor; 0 is lossless in the YUV domain.
    frame_times : array of shape (n_frames,), optional
        Presentation times in seconds for a variable frame rate (millisecond resolution).

    Returns
    -------
    Path
    """
    path = Path(path)
    rate = _as_rate(fps)
    time_base = Fraction(1, 1000) if frame_times is not None else 1 / rate
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream(VIDEO_CODEC, rate=rate)
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = time_base
        video.options = {"crf": str(crf), "preset": "veryfast"}
        sound = None
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32).reshape(len(audio), -1)
            layout = {1: "mono", 2: "stereo"}[audio.shape[1]]
            sound = container.add_stream(AUDIO_CODEC, rate=sample_rate, layout=layout)
            sound.bit_rate = 96000 * audio.shape[1]
        written = 0  # audio samples encoded so far
        for i, picture in enumerate(frames):
            if i == 0:
                _set_size(video, picture)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            frame.pts = i if frame_times is None else round(frame_times[i] * 1000)
            frame.time_base = time_base
            container.mux(video.encode(frame))
            if sound is not None:
                # Sound is written alongside the picture so readers get both streams interleaved.
                upto = round(float(frame.pts * time_base + 1 / rate) * sample_rate)
                written = _encode_audio(container, sound, audio, written, upto, sample_rate)
        container.mux(video.encode(None))
        if sound is not None:
            _encode_audio(container, sound, audio, written, len(audio), sample_rate)
            container.mux(sound.encode(None))
    return path


def _set_size(video, picture) -> None:
    height, width = picture.shape[:2]
    if picture.ndim != 3 or picture.shape[2] != 3 or height % 2 or width % 2:
        raise ValueError(f"frames must be (even height, even width, 3) for yuv420p, got {picture.shape}")
    video.height, video.width = height, width


def _encode_audio(container, sound, audio, start, stop, sample_rate) -> int:
    """Encode whole AAC-sized chunks of ``audio[start:stop]`` (all of it at the end); return the new start."""
    stop = min(stop, len(audio))
    while start < stop and (stop - start >= _AUDIO_CHUNK or stop == len(audio)):
        chunk = np.ascontiguousarray(audio[start:start + _AUDIO_CHUNK].T)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=sound.layout.name)
        frame.sample_rate, frame.pts = sample_rate, start
        container.mux(sound.encode(frame))
        start += chunk.shape[1]
    return start


def write_synthetic_movie(path, duration_s, seed, fps=10, size=(96, 128), sample_rate=16000,
                          scene_s=(4, 12)) -> dict:
    """Write the demo movie: latent scenes rendered as moving shapes and a chord-plus-noise sound.

    Parameters
    ----------
    path : str or Path
        Output mp4.
    duration_s : float
    seed : int
        Everything (scene types, scene sequence, motion, sound) follows from it.
    fps : float
    size : tuple of (height, width)
        Even numbers (yuv420p).
    sample_rate : int
    scene_s : tuple of (min, max)
        Range of scene durations in seconds.

    Returns
    -------
    dict
        ``scene_onsets_s``, ``scene_offsets_s``, ``scene_ids`` (scene type per scene),
        ``scene_sounds`` ("speech" or "gaps" per scene), ``luminance_per_s`` and ``audio_rms_per_s``
        (one value per started second, luminance in [0, 1] from Rec. 601 weights, RMS of the written
        samples), plus ``path``, ``duration_s``, ``fps``, ``size``, ``sample_rate``, ``n_frames``,
        ``n_samples``, ``video_codec``, ``audio_codec``.
    """
    if not duration_s > 0 or not 0 < scene_s[0] <= scene_s[1]:
        raise ValueError(f"need duration_s > 0 and 0 < scene_s[0] <= scene_s[1], got {duration_s}, {scene_s}")
    rng = np.random.default_rng(seed)
    types = [_scene_type(rng, j) for j in range(N_SCENE_TYPES)]
    onsets, ids = _scene_sequence(rng, duration_s, scene_s)
    offsets = np.append(onsets[1:], duration_s)
    motions = [_shape_motion(rng, len(types[k]["shapes"])) for k in ids]
    n_frames = max(1, round(duration_s * float(_as_rate(fps))))
    times = np.arange(n_frames) / float(_as_rate(fps))
    scene_of_frame = np.searchsorted(onsets, times, side="right") - 1
    frame_luma = np.empty(n_frames)

    def pictures():
        for i, (t, s) in enumerate(zip(times, scene_of_frame)):
            picture = _draw(types[ids[s]], motions[s], t - onsets[s], size)
            frame_luma[i] = (picture.reshape(-1, 3) @ _LUMA).mean() / 255
            yield picture

    audio = _soundtrack(rng, types, ids, onsets, duration_s, sample_rate)
    write_movie(path, pictures(), fps, audio, sample_rate)
    seconds = math.ceil(duration_s - 1e-9)
    return {
        "path": Path(path), "duration_s": float(duration_s), "fps": float(_as_rate(fps)),
        "size": tuple(size), "sample_rate": sample_rate, "n_frames": n_frames, "n_samples": audio.size,
        "scene_onsets_s": onsets, "scene_offsets_s": offsets, "scene_ids": ids,
        "scene_sounds": [types[k]["sound"] for k in ids],
        "luminance_per_s": _per_second(frame_luma, np.floor(times + 1e-9).astype(int), seconds),
        "audio_rms_per_s": np.sqrt(_per_second(audio.astype(np.float64) ** 2,
                                               np.arange(audio.size) // sample_rate, seconds)),
        "video_codec": VIDEO_CODEC, "audio_codec": AUDIO_CODEC,
    }


def _per_second(values, second, n_seconds) -> np.ndarray:
    total = np.bincount(second, weights=values, minlength=n_seconds)[:n_seconds]
    count = np.bincount(second, minlength=n_seconds)[:n_seconds]
    return total / np.maximum(count, 1)


def _scene_type(rng, j) -> dict:
    shapes = [{"kind": rng.choice(["circle", "rect"]), "colour": rng.uniform(0, 255, 3),
               "half": rng.uniform(0.08, 0.22)} for _ in range(rng.integers(1, 4))]
    base = rng.uniform(180, 500)
    ratios = rng.choice([1.0, 5 / 4, 4 / 3, 3 / 2, 2.0], size=rng.integers(2, 4), replace=False)
    # Alternate sound kinds so every seed has both speech-like and gapped scenes.
    return {"background": rng.uniform(20, 220, 3), "shapes": shapes, "chord": base * ratios,
            "sound": "speech" if j % 2 == 0 else "gaps"}


def _scene_sequence(rng, duration_s, scene_s):
    onsets, ids, t = [], [], 0.0
    while t < duration_s:
        choices = [k for k in range(N_SCENE_TYPES) if not ids or k != ids[-1]]
        onsets.append(t)
        ids.append(int(rng.choice(choices)))
        t += rng.uniform(*scene_s)
    return np.array(onsets), np.array(ids)


def _shape_motion(rng, n_shapes) -> np.ndarray:
    """Per shape: frequencies (Hz) and phases of a smooth Lissajous drift, shape (n_shapes, 4)."""
    return np.column_stack([rng.uniform(0.05, 0.25, (n_shapes, 2)),
                            rng.uniform(0, 2 * np.pi, (n_shapes, 2))])


def _draw(scene_type, motion, t, size) -> np.ndarray:
    height, width = size
    picture = np.empty((height, width, 3), dtype=np.float64)
    picture[:] = scene_type["background"]
    rows, cols = np.ogrid[:height, :width]
    for shape, (fy, fx, py, px) in zip(scene_type["shapes"], motion):
        cy = height * (0.5 + 0.35 * np.sin(2 * np.pi * fy * t + py))
        cx = width * (0.5 + 0.35 * np.sin(2 * np.pi * fx * t + px))
        half = shape["half"] * min(height, width)
        if shape["kind"] == "circle":
            inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= half ** 2
        else:
            inside = (np.abs(rows - cy) <= half) & (np.abs(cols - cx) <= 1.5 * half)
        picture[inside] = shape["colour"]
    return picture.astype(np.uint8)


def _soundtrack(rng, types, ids, onsets, duration_s, sample_rate) -> np.ndarray:
    """Per scene: its chord at a slowly drifting level, plus noise under a speech or gap envelope."""
    n = round(duration_s * sample_rate)
    noise = _lowpass_noise(rng, n)
    bounds = np.round(np.append(onsets, duration_s) * sample_rate).astype(int)
    audio = np.zeros(n)
    for s, k in enumerate(ids):
        a, b = bounds[s], min(bounds[s + 1], n)
        if b <= a:
            continue
        kind = types[k]
        t = np.arange(a, b) / sample_rate
        chord = np.mean([np.sin(2 * np.pi * f * t) for f in kind["chord"]], axis=0)
        chord *= rng.uniform(0.08, 0.25) * _slow_drift(rng, b - a, sample_rate)
        if kind["sound"] == "speech":
            audio[a:b] = chord + rng.uniform(0.2, 0.4) * _syllables(rng, b - a, sample_rate) * noise[a:b]
        else:
            gate = _gaps(rng, b - a, sample_rate)
            audio[a:b] = gate * (chord + rng.uniform(0.05, 0.15) * noise[a:b])
    return np.clip(audio, -0.99, 0.99).astype(np.float32)


def _lowpass_noise(rng, n) -> np.ndarray:
    # Keep the noise well below the AAC band edge at 16 kHz so the encoder preserves its energy.
    kernel = np.hanning(9)[1:-1]
    noise = np.convolve(rng.standard_normal(n + kernel.size - 1), kernel / kernel.sum(), "valid")
    return noise / noise.std()


def _slow_drift(rng, n, sample_rate) -> np.ndarray:
    knots = np.arange(0, n + sample_rate, sample_rate)
    return np.interp(np.arange(n), knots, rng.uniform(0.3, 1.0, knots.size))


def _syllables(rng, n, sample_rate) -> np.ndarray:
    """Speech-like envelope: ~4 Hz syllables grouped in 1-3 s phrases separated by pauses."""
    envelope, t, end = np.zeros(n), rng.uniform(0, 0.3), n / sample_rate
    while t < end:
        phrase_end = min(t + rng.uniform(1.0, 3.0), end)
        while t < phrase_end:
            step = rng.uniform(0.18, 0.32)
            a = int(t * sample_rate)
            bump = np.hanning(int(0.8 * step * sample_rate))[:n - a] * rng.uniform(0.5, 1.0)
            envelope[a:a + bump.size] = np.maximum(envelope[a:a + bump.size], bump)
            t += step
        t += rng.uniform(0.3, 1.2)
    return envelope


def _gaps(rng, n, sample_rate) -> np.ndarray:
    """On/off gate (0.5-2 s on, 0.4-1.5 s silent) with 20 ms ramps against clicks."""
    gate, t, on = np.zeros(n), 0.0, bool(rng.random() < 0.5)
    while t < n / sample_rate:
        length = rng.uniform(0.5, 2.0) if on else rng.uniform(0.4, 1.5)
        if on:
            gate[int(t * sample_rate):int((t + length) * sample_rate)] = 1.0
        t, on = t + length, not on
    width = max(1, int(0.02 * sample_rate))
    total = np.cumsum(np.concatenate([np.zeros(width), gate]))
    return (total[width:] - total[:-width]) / width
