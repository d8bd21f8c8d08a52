"""Word-by-word MEG fits: all sensor x window targets in one ridge call vs one call per window.

``encoding.words`` fits every (sensor, window) of a layer as one set of targets of the engine's ridge
(each target its own alpha), because the word features are the same in every window; the per-window
loop of ``encoding.timeresolved.fit_time_resolved`` decomposes the same design once per window. Both
give the same held-out predictions; this prints the time of each, the ratio, and the largest difference.

    python bench/words_meg.py                       # 3,000 words, GPT-2 width 768, 102 sensors x 20 windows
    python bench/words_meg.py --words 5000 --hidden 1600 --sensors 306
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoding.words import held_out_predictions  # noqa: E402


def simulate(n_words, hidden, n_sensors, n_windows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_words, hidden)).astype(np.float32)
    weights = rng.standard_normal((hidden, n_sensors * n_windows)).astype(np.float32) / np.sqrt(hidden)
    Y = 0.3 * X @ weights + rng.standard_normal((n_words, n_sensors * n_windows)).astype(np.float32)
    segments = np.repeat(np.arange(4), -(-n_words // 4))[:n_words]
    return X, Y.reshape(n_words, n_sensors, n_windows), segments


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--sensors", type=int, default=102)
    parser.add_argument("--windows", type=int, default=20)
    args = parser.parse_args()
    X, Y, segments = simulate(args.words, args.hidden, args.sensors, args.windows)
    n_words, n_sensors, n_windows = Y.shape
    start = time.perf_counter()
    _, joint, _, _ = held_out_predictions(X, Y.reshape(n_words, -1), segments)
    joint_s = time.perf_counter() - start
    start = time.perf_counter()
    per_window = [held_out_predictions(X, Y[..., w], segments)[1] for w in range(n_windows)]
    loop_s = time.perf_counter() - start
    looped = np.stack(per_window, -1).reshape(n_words, -1)
    print(f"{n_words} words, {args.hidden} features, {n_sensors} sensors x {n_windows} windows, 4 story segments")
    print(f"one ridge call for all targets: {joint_s:8.2f} s")
    print(f"one ridge call per window:      {loop_s:8.2f} s")
    print(f"ratio (per window / joint):     {loop_s / joint_s:8.2f}x")
    print(f"max |prediction difference|:    {np.abs(joint - looped).max():.2e}")


if __name__ == "__main__":
    main()
