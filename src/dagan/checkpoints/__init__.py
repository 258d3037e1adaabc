"""Checkpoint files: our self-describing format and the official DaGAN / Monodepth2 files.

* :mod:`~dagan.checkpoints.format` — our format: build, save, load and validate; strict module loading.
* :mod:`~dagan.checkpoints.rng_state` — the random generator states a training checkpoint carries.
* :mod:`~dagan.checkpoints.reenactment` — the one reenactment-model loader of every command (ours or official).
* :mod:`~dagan.checkpoints.depth` — the one depth-model loader of every command (ours or a Monodepth2 folder).
* :mod:`~dagan.checkpoints.official_files` — reading the official DaGAN and Monodepth2 files.
* :mod:`~dagan.checkpoints.official_arch` — the architecture of official weights, read from keys and shapes.
* :mod:`~dagan.checkpoints.official_import` — converting official files into our format.
* :mod:`~dagan.checkpoints.describe` — what any checkpoint file is (``dagan inspect``).

Nothing is imported here, so importing one module does not load the others.
"""
