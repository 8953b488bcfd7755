"""The one place that imports a TFLite interpreter.

Order of preference: ``ai_edge_litert`` (LiteRT, works with numpy 2), then
``tflite_runtime`` (2.14; needs numpy<2 and cannot load ops from new
converters), then ``tensorflow.lite`` (workstations only). The device never
needs TensorFlow; it is only the last resort here.
"""

from __future__ import annotations

import importlib
from typing import Any

_CANDIDATES = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow", "lite.Interpreter"),
)


def interpreter_class() -> type:
    """Return the first TFLite ``Interpreter`` class that imports.

    Raises:
        ImportError: no interpreter is installed; the message says what to install.
    """
    for module_name, attribute in _CANDIDATES:
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for part in attribute.split("."):
            obj = getattr(obj, part)
        return obj
    raise ImportError(
        "no TFLite interpreter found: install LiteRT with `pip install ai-edge-litert` "
        "(tried ai_edge_litert, tflite_runtime and tensorflow.lite)"
    )


def make_interpreter(model_path: str, num_threads: int = 1) -> Any:
    """Create an interpreter for ``model_path`` with ``num_threads`` CPU threads.

    Threads can only be set here, when the interpreter is created.
    """
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    cls = interpreter_class()
    return cls(model_path=str(model_path), num_threads=num_threads)
