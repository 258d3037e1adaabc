"""``dagan bench``: speed and memory of the animation pipeline, per stage and end to end.

* :mod:`dagan.bench.stages` — how a stage is timed, and how the model's steps become stages;
* :mod:`dagan.bench.pipeline` — one run: the ``dagan animate`` pipeline on the bundled photo and clip;
* :mod:`dagan.bench.memory` — peak memory of a run (RSS on CPU, allocated tensors on CUDA);
* :mod:`dagan.bench.suite` — the cases (config × device × precision × batch), repeats in alternating order;
* :mod:`dagan.bench.report` — the Markdown table and the JSON record.
"""
