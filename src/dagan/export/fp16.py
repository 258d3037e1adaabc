"""Half-precision weights for an exported graph (``dagan export --precision fp16``).

Every float32 weight (initializer) is stored as float16 and cast back to float32 by a ``Cast`` node at the
graph's start, so files are half the size while the arithmetic, the inputs and the outputs stay float32 —
the graphs then run on every runtime and CPU (many CPU kernels, ``GridSample`` among them, have no float16
version). Runtimes that compute in half precision on their own (OpenVINO on GPUs, TensorRT) still can.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["store_weights_fp16"]


def store_weights_fp16(path: Path) -> None:
    """Rewrite the ONNX file ``path`` in place with float16 initializers (see the module docstring)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    kept = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.save(model, str(path))
