"""The embedded demo: a synthetic movie, synthetic feature stores and a simulated subject.

Nothing here is real data: the movie is drawn shapes and tones, the features come from fixed
random networks (not MLLMs) and the fMRI responses are simulated. ``build.ensure_demo`` makes it.
"""
