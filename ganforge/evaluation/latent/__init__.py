"""Latent-space walks and vector arithmetic on averaged latents (DCGAN paper, §6.1 and §6.3.2).

Two experiments from Radford et al. (2016) that show a generator has learnt a smooth,
semantically organised latent space rather than memorising images:

* **Latent walk** (§6.1): images along a path between two random latents should change
  smoothly. :func:`interpolation_latents` lays out ``rows`` walks of ``steps`` latents each,
  endpoints included; :func:`walk_grid` and :func:`walk_frames` render them as a grid and as
  animation frames for :func:`write_gif`.

  DCGAN interpolated *linearly* (:func:`lerp`) in its uniform ``[-1, 1]`` prior. For a
  normal prior spherical interpolation (:func:`slerp`, White 2016, "Sampling generative
  networks") is the better choice: random Gaussian latents live near a sphere of radius
  ``sqrt(latent_dim)``, and the straight line between two of them cuts through the
  low-density interior (the midpoint of two orthogonal latents is ``1/sqrt(2)`` as long).
  For the uniform prior slerp is the wrong choice: it bulges outwards, so the path leaves the
  cube (the midpoint of two orthogonal latents is ``lerp``'s midpoint scaled by
  ``1/cos(45°) ≈ 1.41``), where the generator was never trained. Mode ``"auto"`` therefore
  picks linear for a generator whose ``params.prior`` is ``"uniform"`` and slerp otherwise.

* **Vector arithmetic** (§6.3.2, Fig. 7, "smiling woman - neutral woman + neutral man =
  smiling man"): single latents are unstable, so each concept is the mean of three
  exemplar latents picked from a numbered sample sheet (:func:`sheet_latents`,
  :func:`label_sheet`); the result ``mean(A) - mean(B) + mean(C)``
  (:func:`arithmetic_latent`) is rendered together with a neighbourhood of noisy copies
  (:func:`neighbourhood`; the paper added uniform noise of scale 0.25) by
  :func:`arithmetic_figure`.

**Conditional generators** (``G(z, y)``) get classes too. A walk holds a class fixed
(``--class K``), walks between two classes (``--class A:B``: the class weights go linearly
from one-hot A to one-hot B along the same ``t`` as the latents, :func:`walk_labels`), or,
given no class, draws each row's class from the walk's seed (:func:`walk_row_classes`).
The arithmetic holds one class for the whole sheet and figure; the sheet's record keeps it
(and whether the EMA generator drew it) so the figure uses the same
(:func:`sheet_class`, :func:`check_sheet_ema`).

Everything here is a pure function of its arguments, in four modules by job:
:mod:`.walks` (interpolation, the walks' latents, labels, grid, frames and GIF),
:mod:`.arithmetic` (sheet latents, exemplar indices, concept means, neighbourhoods),
:mod:`.rendering` (label sheets, the arithmetic figure, fonts) and :mod:`.sheets` (the
sheet's record: written, read and checked). This package re-exports every name. The
:mod:`ganforge.api.latent` functions (and the ``ganforge interpolate`` and ``ganforge
arithmetic`` commands through them) are thin wrappers around it."""

from __future__ import annotations

from .arithmetic import (
    EXEMPLARS_PER_CONCEPT,
    arithmetic_latent,
    concept_mean,
    neighbourhood,
    parse_indices,
    sheet_latents,
)
from .rendering import (
    HEADER,
    LABEL_WIDTH,
    MARGIN,
    MIN_TILE,
    PAD,
    SECTION,
    _draw_tag,
    _font,
    _label_font_size,
    _upscaled,
    arithmetic_figure,
    arithmetic_figure_size,
    default_scale,
    label_sheet,
)
from .sheets import (
    DEFAULT_SHEET_CLASS,
    SHEET_FORMAT,
    _shown,
    check_sheet_ema,
    check_sheet_record,
    checkpoint_has_ema,
    file_sha256,
    read_sheet_record,
    recorded_class,
    sheet_class,
    sheet_record,
    sheet_record_path,
    write_sheet_record,
)
from .walks import (
    GRID_PADDING,
    MODES,
    PARALLEL_EPS,
    WALK_CLASSES_STREAM,
    _as_weight,
    _to_pil,
    interpolation_latents,
    latent_prior,
    lerp,
    parse_walk_classes,
    resolve_mode,
    slerp,
    walk_endpoints,
    walk_frames,
    walk_grid,
    walk_labels,
    walk_row_classes,
    write_gif,
)

__all__ = [
    "MODES",
    "PARALLEL_EPS",
    "SHEET_FORMAT",
    "EXEMPLARS_PER_CONCEPT",
    "DEFAULT_SHEET_CLASS",
    "WALK_CLASSES_STREAM",
    "MARGIN",
    "PAD",
    "SECTION",
    "LABEL_WIDTH",
    "HEADER",
    "MIN_TILE",
    "GRID_PADDING",
    "_as_weight",
    "lerp",
    "slerp",
    "latent_prior",
    "resolve_mode",
    "walk_endpoints",
    "interpolation_latents",
    "parse_walk_classes",
    "walk_row_classes",
    "walk_labels",
    "walk_grid",
    "walk_frames",
    "_to_pil",
    "write_gif",
    "sheet_latents",
    "parse_indices",
    "concept_mean",
    "arithmetic_latent",
    "neighbourhood",
    "default_scale",
    "_font",
    "_label_font_size",
    "_draw_tag",
    "_upscaled",
    "label_sheet",
    "arithmetic_figure_size",
    "arithmetic_figure",
    "sheet_record_path",
    "file_sha256",
    "sheet_record",
    "sheet_class",
    "recorded_class",
    "check_sheet_ema",
    "checkpoint_has_ema",
    "_shown",
    "write_sheet_record",
    "read_sheet_record",
    "check_sheet_record",
]
