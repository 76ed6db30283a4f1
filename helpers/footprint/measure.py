"""Memory measured by loading: weights at each precision (notebook 02), and the tensor bytes
alive during a training step (`LiveTensorBytes`, to check the estimator against)."""
from __future__ import annotations

import gc
import time
import warnings

import torch


def measure_footprints(source: str, precisions=("fp32", "fp16", "8bit", "4bit"),
                       language: str | None = None) -> dict[str, dict]:
    """Load the model once per precision; returns {precision: {"bytes", "load_seconds"}}.

    "bytes" is `model.get_memory_footprint()`: every parameter and buffer as stored
    (8-bit weights count one byte each, 4-bit half a byte, plus their scales).
    """
    from helpers.model.load import load_model

    results = {}
    for precision in precisions:
        started = time.perf_counter()
        with warnings.catch_warnings():
            # load_model warns that fp16 runs slowly on a CPU; nothing runs here, the
            # weights are only loaded to be measured.
            warnings.filterwarnings("ignore", message=".*CPU float16 kernels are slow")
            model, _ = load_model(source, precision=precision, language=language)
        results[precision] = {"bytes": int(model.get_memory_footprint()),
                              "load_seconds": round(time.perf_counter() - started, 2)}
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return results


def linear_layer_kinds(model) -> dict[str, int]:
    """Count modules by class name among linear layers (shows what bitsandbytes replaced)."""
    counts: dict[str, int] = {}
    for module in model.modules():
        name = type(module).__name__
        if "Linear" in name:
            counts[name] = counts.get(name, 0) + 1
    return counts


class LiveTensorBytes:
    """Context manager measuring the bytes of tensor storages created inside it.

    `live()` is what is allocated now, `peak` the most at any moment, both counted from
    the storages of every op's outputs (a TorchDispatchMode), so allocator overhead is not
    included: it checks helpers.footprint.estimate tensor by tensor. Slow; for tiny models.
    Views and in-place results (outputs sharing an input's storage) are not new memory.
    """

    def __init__(self, device: str = "cpu"):
        self.device, self.peak, self._live, self._refs = device, 0, 0, {}

    def __enter__(self):
        import torch
        from torch.multiprocessing.reductions import StorageWeakRef
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker.live()   # forget storages freed by now: their addresses may be reused
                inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                          if isinstance(t, torch.Tensor)}
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor) and t.device.type == tracker.device:
                        storage = t.untyped_storage()
                        key = storage.data_ptr()
                        if key not in inputs and key not in tracker._refs:
                            tracker._refs[key] = (StorageWeakRef(storage), storage.nbytes())
                            tracker._live += storage.nbytes()
                tracker.peak = max(tracker.peak, tracker.live())
                return out

        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)

    def live(self) -> int:
        """Bytes of the tracked storages still alive."""
        dead = [key for key, (ref, _) in self._refs.items() if ref.expired()]
        for key in dead:
            self._live -= self._refs.pop(key)[1]
        return self._live
