"""Movie decoding into per-TR clips, checked on movies whose every frame and second is planted."""

from fractions import Fraction

import av
import numpy as np
import pytest

from encoding.demo.movie import write_movie, write_synthetic_movie
from extractors.media import clip_windows, iter_clips, list_runs, n_trs_for, probe_movie
from features.errors import InputError

SR = 16000
AMPLITUDES = np.array([0.1, 0.5, 0.1, 0.8, 0.2, 0.5, 0.05, 0.6, 0.3, 0.1, 0.7, 0.4])


def _index_picture(i, size=(32, 48)):
    """Frame index written in base 16 as the grey level of three vertical strips."""
    height, width = size
    picture = np.empty((height, width, 3), dtype=np.uint8)
    strip = width // 3
    for s, digit in enumerate((i // 256 % 16, i // 16 % 16, i % 16)):
        picture[:, s * strip:(s + 1) * strip] = 16 * digit + 8
    return picture


def _read_index(picture):
    strip = picture.shape[1] // 3
    digits = [round((picture[:, s * strip + 4:(s + 1) * strip - 4].mean() - 8) / 16) for s in range(3)]
    return digits[0] * 256 + digits[1] * 16 + digits[2]


def _stepped_tone(amplitudes, sample_rate):
    """A 440 Hz tone whose amplitude steps once per second."""
    t = np.arange(len(amplitudes) * sample_rate) / sample_rate
    return amplitudes[t.astype(int)] * np.sin(2 * np.pi * 440 * t)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """12 s at 10 fps: frame i shows its index; stereo 48 kHz tone with per-second amplitudes."""
    path = tmp_path_factory.mktemp("planted") / "planted.mp4"
    tone = _stepped_tone(AMPLITUDES, 48000)
    write_movie(path, (_index_picture(i) for i in range(120)), 10, np.stack([tone, tone], 1), 48000)
    return path


def _remux(source, target, **options):
    with av.open(str(source)) as reader, av.open(str(target), "w", **options) as writer:
        streams = {s.index: writer.add_stream_from_template(s) for s in reader.streams}
        for packet in reader.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                writer.mux(packet)


def test_probe_reports_written_duration_fps_size_and_audio(planted):
    info = probe_movie(planted)
    assert info.duration_s == pytest.approx(12.0, abs=1e-6)
    assert info.fps == pytest.approx(10.0)
    assert (info.height, info.width) == (32, 48)
    assert info.has_audio and info.audio_rate == 48000


def test_clip_windows_for_a_3s_window_at_tr_1_49():
    end = clip_windows(4, 1.49, window_s=3.0, align="end")
    start = clip_windows(4, 1.49, window_s=3.0, align="start", duration_s=6.0)
    center = clip_windows(4, 1.49, window_s=3.0, align="center")
    np.testing.assert_allclose(end, [[0, 1.49], [0, 2.98], [1.47, 4.47], [2.96, 5.96]], atol=1e-12)
    np.testing.assert_allclose(start, [[0, 3], [1.49, 4.49], [2.98, 5.98], [4.47, 6.0]], atol=1e-12)
    np.testing.assert_allclose(center, [[0, 2.245], [0.735, 3.735], [2.225, 5.225],
                                        [3.715, 6.715]], atol=1e-12)
    np.testing.assert_allclose(clip_windows(3, 1.49), [[0, 1.49], [1.49, 2.98], [2.98, 4.47]])


def test_n_trs_for_counts_whole_or_partial_trs():
    assert n_trs_for(15.015, 1.49) == 10
    assert n_trs_for(15.015, 1.49, partial="keep") == 11
    assert n_trs_for(10 * 1.49, 1.49) == 10  # binary rounding of 14.9 must not lose a TR
    assert n_trs_for(10 * 1.49, 1.49, partial="keep") == 10
    assert n_trs_for(14.98, 1.5) == 9
    assert n_trs_for(14.98, 1.5, tolerance_s=1 / 29.97) == 10
    assert n_trs_for(15.01, 1.5, partial="keep", tolerance_s=1 / 29.97) == 10


def test_clip_frames_are_the_nearest_frames_inside_overlapping_windows(planted):
    clips = list(iter_clips(planted, tr=1.49, n_frames=8, window_s=3.0, align="end"))
    assert [c.index for c in clips] == list(range(8))  # floor(12 / 1.49)
    for clip in clips:
        times = np.array([_read_index(f) for f in clip.frames]) / 10
        edges = np.linspace(clip.onset_s, clip.offset_s, 9)
        targets = (edges[:-1] + edges[1:]) / 2
        assert np.all((times >= clip.onset_s) & (times <= clip.offset_s))
        assert np.abs(times - targets).max() <= 0.05 + 1e-9
        assert clip.frames.shape == (8, 32, 48, 3) and clip.frames.dtype == np.uint8
    assert (clips[3].onset_s, clips[3].offset_s) == pytest.approx((2.96, 5.96))


def test_clip_audio_has_window_length_and_zeros_before_movie_start(planted):
    clips = list(iter_clips(planted, tr=1.49, n_frames=2, window_s=3.0, align="end"))
    assert {c.audio.size for c in clips} == {48000}
    assert all(c.audio.dtype == np.float32 for c in clips)
    silent = round(1.51 * SR)
    assert np.all(clips[0].audio[:silent] == 0)
    assert np.sqrt(np.mean(clips[0].audio[silent:] ** 2)) > 0.05


def test_clip_audio_rms_follows_planted_amplitude_per_second(planted):
    clips = list(iter_clips(planted, tr=1.0, n_frames=1, align="start"))
    rms = np.array([np.sqrt(np.mean(c.audio.astype(float) ** 2)) for c in clips])
    assert len(clips) == 12 and {c.audio.size for c in clips} == {SR}
    # A sine has RMS amplitude / sqrt(2); FFmpeg's stereo-to-mono matrix, (L + R) / sqrt(2), gives
    # identical channels a gain of sqrt(2), so the clip RMS equals the planted amplitude.
    np.testing.assert_allclose(rms / AMPLITUDES, 1.0, atol=0.05)
    assert rms[3] / rms[6] == pytest.approx(16.0, rel=0.05)


def test_frames_are_resized_on_request(planted):
    clip = next(iter_clips(planted, tr=2.0, n_frames=3, size=(16, 24)))
    assert clip.frames.shape == (3, 16, 24, 3)


@pytest.fixture(scope="module")
def ntsc(tmp_path_factory):
    """450 frames at 30000/1001 fps (15.015 s), index pattern, no sound."""
    path = tmp_path_factory.mktemp("ntsc") / "ntsc.mp4"
    write_movie(path, (_index_picture(i) for i in range(450)), Fraction(30000, 1001))
    return path


def test_29_97_fps_movie_gives_whole_and_partial_trs(ntsc):
    info = probe_movie(ntsc)
    assert info.fps == pytest.approx(29.97, abs=1e-3)
    assert info.duration_s == pytest.approx(450 * 1001 / 30000, abs=1e-6)
    assert not info.has_audio and info.audio_rate is None
    assert len(list(iter_clips(ntsc, tr=1.49, n_frames=2))) == 10
    kept = list(iter_clips(ntsc, tr=1.49, n_frames=2, partial="keep"))
    assert len(kept) == 11
    assert (kept[-1].onset_s, kept[-1].offset_s) == pytest.approx((14.9, 15.015))
    assert _read_index(kept[-1].frames[-1]) == 449
    assert all(c.audio is None for c in kept)


def test_tr_short_by_less_than_a_frame_still_counts(tmp_path):
    path = write_movie(tmp_path / "short.mp4", (_index_picture(i) for i in range(449)),
                       Fraction(30000, 1001))
    assert n_trs_for(probe_movie(path).duration_s, 1.5) == 9
    clips = list(iter_clips(path, tr=1.5, n_frames=4))
    assert len(clips) == 10 and clips[-1].offset_s == pytest.approx(15.0)


def test_movie_without_audio_requires_audio_raises(ntsc):
    with pytest.raises(InputError, match=r"ntsc\.mp4.*audio"):
        iter_clips(ntsc, tr=1.49, require_audio=True)


def test_run_longer_than_movie_raises(planted):
    with pytest.raises(InputError, match=r"planted\.mp4.*n_trs"):
        iter_clips(planted, tr=1.0, n_trs=20)
    assert len(list(iter_clips(planted, tr=1.0, n_trs=5, n_frames=1))) == 5


def test_variable_frame_rate_picks_nearest_timestamp(tmp_path):
    times = np.cumsum(np.r_[0, np.random.default_rng(1).integers(20, 120, 79)]) / 1000
    path = write_movie(tmp_path / "vfr.mp4", (_index_picture(i) for i in range(80)), 25,
                       frame_times=times)
    for clip in iter_clips(path, tr=1.0, n_frames=6):
        edges = np.linspace(clip.onset_s, clip.offset_s, 7)
        for frame, target in zip(clip.frames, (edges[:-1] + edges[1:]) / 2):
            picked = times[_read_index(frame)]
            assert abs(picked - target) <= np.abs(times - target).min() + 1e-9


def test_bad_files_raise_input_error_naming_the_file(tmp_path, planted):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(planted.read_bytes()[: planted.stat().st_size // 2])
    for bad in (garbage, cut, tmp_path / "missing.mp4"):
        with pytest.raises(InputError, match=bad.name):
            probe_movie(bad)
        with pytest.raises(InputError, match=bad.name):
            list(iter_clips(bad, tr=1.0))


def test_truncated_streamable_file_raises_when_decoding_runs_out(tmp_path, planted):
    whole, cut = tmp_path / "whole.mkv", tmp_path / "cut.mkv"
    _remux(planted, whole)
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert probe_movie(cut).duration_s > 11  # the header still promises the whole movie
    with pytest.raises(InputError, match=r"cut\.mkv.*truncated"):
        list(iter_clips(cut, tr=1.0))


def test_file_without_video_stream_raises(tmp_path):
    path = tmp_path / "sound_only.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=SR, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SR, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(InputError, match=r"sound_only\.mp4.*video stream"):
        probe_movie(path)


def test_list_runs_sorts_naturally(tmp_path):
    for name in ["s01e10a.mkv", "s01e02b.mp4", "s01e02a.mp4", "s01e01a.webm", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_runs(tmp_path)] == ["s01e01a.webm", "s01e02a.mp4", "s01e02b.mp4",
                                                     "s01e10a.mkv"]
    runs = [tmp_path / f"task-movie_run-{k}.mp4" for k in (10, 2, 1)]
    for run in runs:
        run.write_bytes(b"")
    assert [p.name for p in list_runs([str(r) for r in runs])] == [
        "task-movie_run-1.mp4", "task-movie_run-2.mp4", "task-movie_run-10.mp4"]
    with pytest.raises(InputError, match="run-3"):
        list_runs([tmp_path / "task-movie_run-3.mp4"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty"):
        list_runs(empty)


def _decoded_frames(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_synthetic_movie_is_deterministic_per_seed(tmp_path):
    first = write_synthetic_movie(tmp_path / "a.mp4", 20, seed=3)
    again = write_synthetic_movie(tmp_path / "b.mp4", 20, seed=3)
    other = write_synthetic_movie(tmp_path / "c.mp4", 20, seed=4)
    frames = _decoded_frames(tmp_path / "a.mp4")
    assert frames.shape == (200, 96, 128, 3)
    np.testing.assert_array_equal(frames, _decoded_frames(tmp_path / "b.mp4"))
    assert not np.array_equal(frames, _decoded_frames(tmp_path / "c.mp4"))
    np.testing.assert_array_equal(first["audio_rms_per_s"], again["audio_rms_per_s"])
    np.testing.assert_array_equal(first["scene_onsets_s"], again["scene_onsets_s"])
    assert not np.array_equal(first["audio_rms_per_s"], other["audio_rms_per_s"])


def test_synthetic_movie_matches_its_latent_description(tmp_path):
    latent = write_synthetic_movie(tmp_path / "demo.mp4", 60, seed=0)
    info = probe_movie(tmp_path / "demo.mp4")
    assert (info.duration_s, info.fps, info.height, info.width) == pytest.approx((60, 10, 96, 128))
    assert info.has_audio and info.audio_rate == SR
    scene_lengths = np.diff(np.append(latent["scene_onsets_s"], 60))[:-1]
    assert np.all((scene_lengths >= 4) & (scene_lengths <= 12))
    assert np.all(np.diff(latent["scene_ids"]) != 0)
    assert set(latent["scene_sounds"]) == {"speech", "gaps"}
    clips = list(iter_clips(tmp_path / "demo.mp4", tr=1.0, n_frames=10, align="start"))
    rms = [np.sqrt(np.mean(c.audio.astype(float) ** 2)) for c in clips]
    luminance = [(c.frames @ [0.299, 0.587, 0.114]).mean() / 255 for c in clips]
    assert np.corrcoef(rms, latent["audio_rms_per_s"])[0, 1] > 0.9
    assert np.corrcoef(luminance, latent["luminance_per_s"])[0, 1] > 0.9
    # Scenes explain the picture but only part of the sound: audio energy moves within scenes.
    scene = np.searchsorted(latent["scene_onsets_s"], np.arange(60), side="right") - 1
    assert _explained_by_scene(latent["luminance_per_s"], scene) > 0.8
    assert _explained_by_scene(latent["audio_rms_per_s"], scene) < 0.6


def _explained_by_scene(values, scene):
    scene_means = np.array([values[scene == s].mean() for s in scene])
    return 1 - np.var(values - scene_means) / np.var(values)
