"""Optional packages, imported lazily: a missing one fails with one sentence naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from rt_dtgan.errors import RtDtganError

EXTRA_OF_MODULE = {
    "tensorrt": "trt",
    "torch_tensorrt": "trt",
    "pyvirtualcam": "vcam",
    "torch.utils.tensorboard": "train",
    "aiortc": "web",
    "ray": "cluster",
}


class MissingExtraError(RtDtganError, ImportError):
    """An optional package is not installed; the message says which extra installs it."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (a key of EXTRA_OF_MODULE) for ``feature``, or raise MissingExtraError."""
    extra = EXTRA_OF_MODULE[module]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f"{feature} needs the optional package '{module.split('.')[0]}': pip install 'rt-dtgan[{extra}]'"
        ) from error
