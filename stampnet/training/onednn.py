"""Training with TensorFlow's oneDNN CPU kernels (``TF_ENABLE_ONEDNN_OPTS=1``): the defect of
theirs that a strategy meets, and its guard.

Empty replica batches. Under a strategy with several replicas, a replica gets no rows when a
global batch has fewer rows than there are replicas: the last batch of a finite validation or
evaluation split (5 objects, batch 4, 2 replicas: the second batch is 1 row and 0 rows), or a
``multiworker`` step padded for a worker left without rows. TensorFlow's kernels handle a zero-row
batch, except oneDNN's convolution (TF 2.21, Conv1D and Conv2D forward): for a zero-element input
it returns its *input* (shape [0, H, W, C]) instead of an empty output of shape
[0, H', W', filters]. The next layer then fails: "input depth must be evenly divisible by filter
depth: 3 vs 4" at a stamp trunk's second convolution (with Conv2D+BiasAdd+Relu fused), or "Must
provide as many biases as the last dimension of the input tensor: [4] vs. [0,21,21,3]" (unfused).
The stock (Eigen) kernel, ``TF_ENABLE_ONEDNN_OPTS=0``, is right. The zero-element early return
of the oneDNN convolution is the one tensorflow/tensorflow#112639 (closed unmerged) set out to
fix; the same defect of Conv3D was fixed in tensorflow/tensorflow#30968. TensorFlow turns oneDNN
on by default on CPUs with AVX-512 VNNI or AMX, so users there meet it with ``--strategy mirrored``
over CPU devices or ``multiworker`` on CPU machines.

The guard (``empty_batch_safe_convolutions``, set by ``distribute.fitting`` while a strategy with
several replicas fits): each convolution layer runs only on a non-empty batch; an empty one gets
the layer's output for one row of zeros, sliced to zero rows, so the shapes are right and the
gradients are zero, as with the stock kernel. It costs one ``tf.cond`` per convolution and step,
and only in multi-replica fits; exports and single-device runs never see it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import keras
import tensorflow as tf

#: The layers whose forward pass is the oneDNN convolution (transposed ones use another kernel).
CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def onednn_may_be_on() -> bool:
    """False only when the user turned oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``): the stock
    kernels need no guard, so none is set (its ``tf.cond`` costs a branch per convolution and
    step, and keeps Grappler from fusing the convolution with the ops after it)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() not in ("0", "false")


@contextlib.contextmanager
def empty_batch_safe_convolutions(model, enabled: bool = True) -> Iterator[list]:
    """While the context lasts, every convolution layer of ``model`` (nested models included)
    returns a correctly shaped empty output for an empty batch; yields the layers guarded."""
    layers = [
        layer
        for layer in (model._flatten_layers() if enabled else ())
        if isinstance(layer, CONVOLUTIONS) and "call" not in vars(layer)
    ]
    for layer in layers:
        layer.call = skip_empty_batch(layer.call)
    try:
        yield layers
    finally:
        for layer in layers:
            del layer.call


def skip_empty_batch(call):
    """``call`` (a layer's, on (B, ...) inputs) that never runs on an empty batch."""

    def guarded(inputs, *args, **kwargs):
        def empty():
            # One row of zeros, with every static dimension kept (the layers after need them).
            dynamic = tf.shape(inputs)
            shape = [1] + [
                size if size is not None else dynamic[axis]
                for axis, size in enumerate(inputs.shape[1:], start=1)
            ]
            return call(tf.zeros(shape, inputs.dtype), *args, **kwargs)[:0]

        return tf.cond(tf.shape(inputs)[0] > 0, lambda: call(inputs, *args, **kwargs), empty)

    return guarded
