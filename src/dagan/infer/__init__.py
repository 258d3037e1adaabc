"""Inference: animating a face, and depth export (:mod:`dagan.infer.depth_export`).

* :mod:`dagan.infer.animator` — ``dagan.Animator``, the public face of the modules below;
* :mod:`dagan.infer.engine` — the model calls on tensors (PyTorch, or exported graphs) and what is built on
  them: the source's encodings, motion transfer, batch generation;
* :mod:`dagan.infer.source` — reading the source picture and cropping its face;
* :mod:`dagan.infer.options` — :class:`~dagan.infer.options.AnimateOptions`, the options of one animation;
* :mod:`dagan.infer.video_job` — a driving video file animated into files (``dagan animate``);
* :mod:`dagan.infer.sinks` — where the frames go: a video, a PNG folder, a side-by-side composition;
* :mod:`dagan.infer.live_session` — frame by frame, for a webcam;
* :mod:`dagan.infer.motion`, :mod:`dagan.infer.smoothing` — motion transfer and keypoint smoothing.

Models are loaded by :mod:`dagan.checkpoints.reenactment`.

Nothing is imported here, so ``import dagan.infer.motion`` stays light.
"""
