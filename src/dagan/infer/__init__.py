"""Inference: the streaming animator (:mod:`dagan.infer.animator`), motion transfer
(:mod:`dagan.infer.motion`), keypoint smoothing (:mod:`dagan.infer.smoothing`), checkpoint loading
(:mod:`dagan.infer.loading`) and depth export (:mod:`dagan.infer.depth_export`).

Nothing is imported here, so ``import dagan.infer.motion`` stays light.
"""
