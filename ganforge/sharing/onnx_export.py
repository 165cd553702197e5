"""``ganforge export --onnx``: the generator of an exported model folder as an ONNX file
(``generator.onnx``) beside its safetensors, checked by running it with ONNX Runtime.

The file is made from the folder itself (:func:`~ganforge.sharing.loading.load_exported`),
so it holds exactly the weights a reader of the folder loads by default: the moving
average of G when the folder keeps one, else the raw G. Its inputs are ``z`` (the latents
as ``generator.sample_latent`` draws them, float32) and, for a conditional generator,
``labels`` (class indices, int64, shape ``(N,)``); its output ``images`` is ``G(z)``
(``G(z, labels)``): float32, ``(N, C, H, W)``, in [-1, 1]. The batch axis is dynamic.

It is exported with ``torch.onnx.export`` (the TorchScript exporter, opset :data:`OPSET`)
into memory, checked with ``onnx.checker``, and run with ONNX Runtime (CPU) on
:data:`CHECK_LATENTS` latents drawn with seed 0 (labels ``0, 1, 2, ...`` modulo the
classes), a batch of another size than the traced one, so the dynamic axis is checked
too. Only when the largest absolute difference from PyTorch's output is at most
:data:`TOLERANCE` is the file written (atomically); otherwise, or when the export fails,
nothing is written and the error is one :class:`OnnxExportError` line: the folder already
written (safetensors, config, card, samples) stays as it is. The model card gets a short
section on the file; the ONNX file's own metadata names its weights, step and check.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from .._version import __version__
from ..core.errors import GanforgeError, UsageError
from ..core.interfaces import is_conditional
from ..io.export_config import CARD_NAME
from ..io.files import write_bytes_atomic, write_text_atomic, writing

if TYPE_CHECKING:
    from ..core.registry import Registry

#: The file written beside model.safetensors.
ONNX_NAME = "generator.onnx"
#: The ONNX opset the generator is exported with (ONNX Runtime 1.18 and later run it).
OPSET = 17
#: The largest absolute difference from PyTorch's images that the check accepts.
TOLERANCE = 1e-4
#: Latents the check runs through both (the export traces a batch of 2).
CHECK_LATENTS = 8
#: What to install when the packages are missing.
INSTALL_HINT = "pip install 'ganforge[onnx]' (onnx and onnxruntime)"


class OnnxExportError(GanforgeError):
    """The generator could not be exported to ONNX, or ONNX Runtime's images differ from
    PyTorch's; nothing was written."""


@attrs.frozen
class OnnxExport:
    """The ONNX file written: its path, opset, input names, which weights (``"ema"`` or
    ``"raw"``), how many latents were checked and the largest absolute difference from
    PyTorch's output (at most :data:`TOLERANCE`), and ONNX Runtime's version."""

    path: Path
    opset: int
    inputs: tuple[str, ...]
    weights: str
    checked: int
    max_abs_diff: float
    onnxruntime_version: str


def require_onnx(option: str = "--onnx") -> None:
    """Refuse in one line (naming what to install) when onnx or onnxruntime is missing."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(f"{option} needs {' and '.join(missing)}, which are not installed: "
                         f"{INSTALL_HINT}")


def remove_stale(folder: Path) -> bool:
    """Remove the ``generator.onnx`` an earlier export left in ``folder`` (the weights
    beside it were just replaced); True when there was one."""
    path = folder / ONNX_NAME
    if not (path.is_file() or path.is_symlink()):
        return False
    with writing(path):
        path.unlink()
    return True


class _Wrapped(torch.nn.Module):
    """The generator called as the ONNX graph is: ``G(z)`` or ``G(z, labels)``."""

    def __init__(self, generator: torch.nn.Module, conditional: bool) -> None:
        super().__init__()
        self.generator = generator
        self.conditional = conditional

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            return self.generator(z, labels).float()
        return self.generator(z).float()


def _inputs(generator: Any, count: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    z = generator.sample_latent(count, torch.Generator().manual_seed(seed), "cpu").float()
    if not is_conditional(generator):
        return (z,)
    return (z, torch.arange(count, dtype=torch.int64) % max(classes, 1))


def onnx_bytes(generator: torch.nn.Module, classes: int, metadata: dict[str, str]
               ) -> tuple[bytes, tuple[str, ...]]:
    """The generator (eval mode, on the CPU) as a checked ONNX model: its bytes and input
    names. An export failure is one :class:`OnnxExportError` line."""
    import onnx

    conditional = is_conditional(generator)
    names = ("z", "labels") if conditional else ("z",)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the exporter's deprecation and tracer notes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Wrapped(generator, conditional).eval(), _inputs(generator, 2, classes),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to a buffer
                dynamo=False, opset_version=OPSET, input_names=list(names),
                output_names=["images"], do_constant_folding=True,
                dynamic_axes={name: {0: "batch"} for name in (*names, "images")})
        model = onnx.load_from_string(buffer.getvalue())
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
    except Exception as exc:  # the exporter raises many kinds: all are one line here
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxExportError(f"--onnx: torch.onnx.export could not export the generator "
                              f"({type(exc).__name__}: {first}); no {ONNX_NAME} written, "
                              "the model folder is complete without it") from None
    return model.SerializeToString(), names


def check_with_onnxruntime(data: bytes, generator: torch.nn.Module, classes: int,
                           count: int = CHECK_LATENTS) -> float:
    """The largest absolute difference between ONNX Runtime's images of ``data`` and
    PyTorch's, on ``count`` latents drawn with seed 0; above :data:`TOLERANCE` (or not
    finite) is one :class:`OnnxExportError` line."""
    import onnxruntime

    inputs = _inputs(generator, count, classes)
    with torch.no_grad():
        expected = _Wrapped(generator, is_conditional(generator)).eval()(*inputs).numpy()
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})[0]
    except Exception as exc:  # ONNX Runtime's errors are of its own kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxExportError(f"--onnx: ONNX Runtime could not run the exported generator "
                              f"({first}); no {ONNX_NAME} written") from None
    if got.shape != expected.shape:
        raise OnnxExportError(f"--onnx: ONNX Runtime gave images of shape {got.shape}, PyTorch "
                              f"{expected.shape}; no {ONNX_NAME} written")
    diff = float(abs(got.astype("float64") - expected.astype("float64")).max())
    if not diff <= TOLERANCE:  # NaN fails too
        raise OnnxExportError(f"--onnx: ONNX Runtime's images differ from PyTorch's by up to "
                              f"{diff:.3g} (tolerance {TOLERANCE:g}) on {count} latents; no "
                              f"{ONNX_NAME} written, the model folder is complete without it")
    return diff


def export_onnx(folder: str | Path, registry: Registry) -> OnnxExport:
    """Write ``folder/generator.onnx`` from the model folder ``folder`` (written by
    ``ganforge export``), checked against PyTorch, and add a section on it to the model
    card. Needs onnx and onnxruntime (:func:`require_onnx`)."""
    import onnxruntime

    from .loading import load_exported

    require_onnx()
    folder = Path(folder)
    exported = load_exported(folder, registry, "cpu")
    generator, classes = exported.generator, exported.classes
    weights = "ema" if exported.is_ema else "raw"
    metadata = {"ganforge_version": __version__, "generator": exported.config.generator.use,
                "weights": weights, "step": str(exported.step),
                "latent_dim": str(exported.config.latent.dim), "classes": str(classes),
                "checked_tolerance": f"{TOLERANCE:g}"}
    data, names = onnx_bytes(generator, classes, metadata)
    diff = check_with_onnxruntime(data, generator, classes)
    path = write_bytes_atomic(folder / ONNX_NAME, data)
    result = OnnxExport(path, OPSET, names, weights, CHECK_LATENTS, diff,
                        onnxruntime.__version__)
    card = folder / CARD_NAME
    if card.is_file():
        text = card.read_text(encoding="utf-8").rstrip("\n")
        write_text_atomic(card, f"{text}\n\n{card_section(result, exported.config)}")
    return result


def card_section(result: OnnxExport, config: Any) -> str:
    """The model card's section on the ONNX file: inputs, output, weights and the check."""
    image = config.image
    labels = (f" and `labels` (int64, `(N,)`, classes 0 to {image.classes - 1})"
              if "labels" in result.inputs else "")
    feeds = '{"z": z, "labels": labels}' if "labels" in result.inputs else '{"z": z}'
    return (
        "## ONNX\n\n"
        f"`{result.path.name}` (opset {result.opset}) is the generator's "
        f"{'moving average (EMA)' if result.weights == 'ema' else 'raw weights'}: inputs "
        f"`z` (float32, `(N, {config.latent.dim}, ...)` as the generator draws it){labels}, "
        f"output `images` (float32, `(N, {image.channels}, {image.size}, {image.size})`, in "
        "[-1, 1]); the batch axis N is dynamic. Checked with ONNX Runtime "
        f"{result.onnxruntime_version} on {result.checked} latents: largest absolute "
        f"difference from PyTorch {result.max_abs_diff:.2g} (tolerance {TOLERANCE:g}).\n\n"
        "```python\nimport onnxruntime\n"
        f'session = onnxruntime.InferenceSession("{result.path.name}")\n'
        f"images = session.run(None, {feeds})[0]\n```\n")
