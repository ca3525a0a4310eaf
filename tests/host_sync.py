"""HostSyncRecorder: lists the operations in our code that would make the host wait for the GPU.

A ``TorchDispatchMode`` sees every ATen operation. On CUDA these force a device-to-host synchronisation:
reading a value (``aten._local_scalar_dense``: ``.item()``, ``float(t)``, ``bool(t)``, ``if t:``), outputs whose
size depends on values (``aten.nonzero``, ``aten.masked_select``, boolean-mask indexing ``t[mask]``,
``aten.repeat_interleave`` without ``output_size``, ``aten.unique*``) and tensors built from host data
(``aten.lift_fresh``: ``torch.tensor(...)``/``new_tensor(...)`` are a blocking host-to-device copy on CUDA).
``Tensor.tolist`` reads a CPU tensor without any ATen operation, so it is patched to be recorded too. Each
record names the innermost frame of the ``fastganfit`` package that issued it (operations issued by
Lightning, pytorch3d or torch alone are not ours to fix and are not recorded).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PACKAGE = Path(__file__).resolve().parent.parent / "fastganfit"
SYNCING_OPS = {
    "_local_scalar_dense",
    "is_nonzero",
    "nonzero",
    "masked_select",
    "masked_scatter",
    "repeat_interleave",
    "unique",
    "_unique",
    "_unique2",
    "unique_consecutive",
    "unique_dim",
    "lift_fresh",
}
INDEX_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}


def _is_mask(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype in (torch.bool, torch.uint8)


def _our_frame() -> str | None:
    """``file:line`` of the innermost stack frame inside the fastganfit package, if any."""
    for frame in reversed(traceback.extract_stack()):
        if Path(frame.filename).resolve().is_relative_to(PACKAGE):
            path = Path(frame.filename).resolve().relative_to(PACKAGE.parent)
            return f"{path}:{frame.lineno} in {frame.name} ({frame.line})"
    return None


class HostSyncRecorder(TorchDispatchMode):
    """Context manager recording host-synchronising operations issued from fastganfit code in ``records``
    (``"op at file:line (source)"``); ``allowed``: substrings of records to leave out (say why where used)."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.allowed = allowed
        self.records: list[str] = []
        self._tolist = torch.Tensor.tolist

    def _record(self, what: str) -> None:
        where = _our_frame()
        if where is not None:
            record = f"{what} at {where}"
            if not any(allowed in record for allowed in self.allowed):
                self.records.append(record)

    def __enter__(self) -> HostSyncRecorder:
        recorder = self

        def tolist(tensor: torch.Tensor) -> Any:
            recorder._record("Tensor.tolist")
            return recorder._tolist(tensor)

        torch.Tensor.tolist = tolist
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        torch.Tensor.tolist = self._tolist
        super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in SYNCING_OPS and not (name == "repeat_interleave" and kwargs.get("output_size") is not None):
            self._record(f"aten.{name}")
        elif name in INDEX_OPS and any(_is_mask(index) for index in (args[1] if len(args) > 1 else ()) or ()):
            self._record(f"aten.{name} with a boolean mask")
        return func(*args, **kwargs)
