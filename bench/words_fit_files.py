"""Words-study work files with and without the per-sensor r terms: bytes on disk and what compare pays.

A fit file used to hold the per-word r terms at every sensor (``sensor_r_terms``, n_words x sensors x windows,
and the held-out test words' ``test_sensor_r_terms``), though only ``compare`` reads them, for the two layers it
compares. Now a file holds the rest, and compare computes those terms again: the held-out test words' by the
fit's test model alone (what its tests read by default), every word's by the whole fit without its
permutations. On one simulated fit this prints the bytes of both files, the time to read the terms from the old
file, the time to compute them again both ways, and that all give equal terms; then what the files weigh over a
whole study and what compare pays for it.

    python bench/words_fit_files.py                      # 3,000 words, 768 features, 102 sensors x 20 windows
    python bench/words_fit_files.py --words 10000 --sensors 306 --subjects 20 --models 2 --layers 33
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoding.words import WordFit, fit_words  # noqa: E402
from encoding.words._fit import held_out_sensor_terms  # noqa: E402
from encoding.words._study import SENSOR_FIELDS, _read_fit, _write_fit, sensor_terms  # noqa: E402
from words_meg import simulate  # noqa: E402  (bench/words_meg.py: the same simulated study)

#: flag -> default: the fit's shape, then the study's size
SIZES = {"words": 3000, "hidden": 768, "sensors": 102, "windows": 20, "subjects": 20, "models": 2, "layers": 13}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in SIZES.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    X, Y, segments = simulate(args.words, args.hidden, args.sensors, args.windows)
    test = [2, 3]                                     # compare.test_segments: half (the default)

    def refit(n_permutations=0):
        return fit_words(X, Y, segments, n_permutations=n_permutations, test_segments=test)

    fit = refit()
    with tempfile.TemporaryDirectory() as folder:
        old, new = Path(folder) / "old.npz", Path(folder) / "new.npz"
        np.savez(old, groups=np.array(fit.extra["groups"]), **{n: getattr(fit, n) for n in WordFit.FIELDS})
        _write_fit(new, fit)
        old_bytes, new_bytes = old.stat().st_size, new.stat().st_size
        start = time.perf_counter()
        from_file = [sensor_terms(_read_fit(old), name) for name in SENSOR_FIELDS]
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        whole = sensor_terms(_read_fit(new, refit), "test_sensor_r_terms")       # the whole fit again
        refit_s = time.perf_counter() - start
        start = time.perf_counter()
        alone = sensor_terms(_read_fit(new, refit, lambda: held_out_sensor_terms(X, Y, segments, test)),
                             "test_sensor_r_terms")                           # the test model alone (compare's)
        test_s = time.perf_counter() - start
    equal = np.array_equal(from_file[1], whole) and np.array_equal(from_file[1], alone)
    fits = args.subjects * args.models * args.layers
    print(f"one fit: {args.words} words, {args.hidden} features, {args.sensors} sensors x {args.windows} windows, "
          f"test segments {test} of 4")
    print(f"file with per-sensor terms:    {old_bytes / 1e6:10.1f} MB")
    print(f"file without (now):            {new_bytes / 1e6:10.1f} MB   ({old_bytes / new_bytes:.0f}x smaller)")
    print(f"compare reads them (old file): {read_s:10.2f} s")
    print(f"the whole fit computed again:  {refit_s:10.2f} s")
    print(f"the test model alone (compare):{test_s:10.2f} s   (both equal to the file's: {equal})")
    print(f"a study of {args.subjects} subjects x {args.models} models x {args.layers} layers ({fits} fits): "
          f"{old_bytes * fits / 1e9:.1f} GB of work files before, {new_bytes * fits / 1e9:.2f} GB now; compare "
          f"computes 2 test models a subject again: {2 * args.subjects * test_s / 60:.1f} min more per comparison")


if __name__ == "__main__":
    main()
