"""Rendering the arithmetic: numbered label sheets, the arithmetic figure (after DCGAN
Fig. 7) and its geometry, and the fonts and tags drawn on them. See
:mod:`ganforge.evaluation.latent`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from ...core.errors import UsageError
from .walks import GRID_PADDING, _to_pil

# Figure geometry, in pixels (see :func:`arithmetic_figure_size`).
MARGIN = 8
PAD = 4
SECTION = 16
LABEL_WIDTH = 100
HEADER = 20
#: Tiles are upscaled (nearest neighbour) to at least this many pixels so labels stay legible.
MIN_TILE = 96


def default_scale(image_size: int) -> int:
    """Nearest-neighbour upscale factor that makes tiles at least :data:`MIN_TILE` px."""
    return max(1, math.ceil(MIN_TILE / image_size))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def _label_font_size(tile: int) -> int:
    return max(10, min(18, tile // 6))


def _draw_tag(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font: Any) -> None:
    """White text on a black box with its top-left corner at ``xy``."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = xy
    draw.rectangle((x, y, x + (right - left) + 4, y + (bottom - top) + 4), fill=(0, 0, 0))
    draw.text((x + 2 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)


def _upscaled(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Images in [-1, 1] as float CPU tensors in [0, 1], upscaled by ``scale`` (nearest)."""
    images = images.detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(0)
    images = images.clamp(-1.0, 1.0).add(1.0).div(2.0)
    if scale > 1:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


def label_sheet(
    images: torch.Tensor, indices: Sequence[int] | None = None, scale: int | None = None
) -> Image.Image:
    """A numbered sample sheet: a near-square grid of ``images`` with each index drawn on it.

    ``images`` are ``(N, C, H, W)`` in [-1, 1]; ``indices[i]`` (default ``i``) is written in
    the top-left corner of tile ``i``. Tiles are upscaled by ``scale`` (default
    :func:`default_scale`, 3 for 32 px images) so the labels are legible; the grid has
    ``ceil(sqrt(N))`` columns and 2 px white padding, so its width is
    ``cols * H * scale + (cols + 1) * 2``.
    """
    count = images.shape[0]
    labels = list(range(count)) if indices is None else [int(i) for i in indices]
    if len(labels) != count:
        raise UsageError(f"label_sheet: {count} images but {len(labels)} indices")
    scale = scale or default_scale(images.shape[-1])
    tiles = _upscaled(images, scale)
    nrow = max(1, math.ceil(math.sqrt(count)))
    grid = make_grid(tiles, nrow=nrow, padding=GRID_PADDING, pad_value=1.0)
    sheet = _to_pil(grid).convert("RGB")
    draw = ImageDraw.Draw(sheet)
    tile_h, tile_w = tiles.shape[-2:]
    font = _font(_label_font_size(tile_w))
    for i, label in enumerate(labels):
        row, col = divmod(i, nrow)
        x = GRID_PADDING + col * (tile_w + GRID_PADDING)
        y = GRID_PADDING + row * (tile_h + GRID_PADDING)
        _draw_tag(draw, (x, y), str(label), font)
    return sheet


def arithmetic_figure_size(
    image_size: int, exemplars: int, neighbours: int, scale: int, concepts: int = 3
) -> tuple[int, int]:
    """``(width, height)`` in pixels of :func:`arithmetic_figure`'s output.

    With tile ``T = image_size * scale`` and ``cols = max(exemplars, neighbours, 1)``:
    width ``= 2*MARGIN + LABEL_WIDTH + T + SECTION + cols*T + (cols-1)*PAD`` and height
    ``= 2*MARGIN + HEADER + (concepts+1)*T + (concepts-1)*PAD + SECTION``. For 32 px images,
    3 exemplars, 8 neighbours and scale 3 that is 1024 x 444.
    """
    tile = image_size * scale
    cols = max(exemplars, neighbours, 1)
    width = 2 * MARGIN + LABEL_WIDTH + tile + SECTION + cols * tile + (cols - 1) * PAD
    height = 2 * MARGIN + HEADER + (concepts + 1) * tile + (concepts - 1) * PAD + SECTION
    return width, height


def arithmetic_figure(
    exemplars: Sequence[torch.Tensor],
    means: torch.Tensor,
    result: torch.Tensor,
    neighbours: torch.Tensor,
    indices: Sequence[Sequence[int]] | None = None,
    labels: Sequence[str] = ("A", "B", "C", "A - B + C"),
    scale: int | None = None,
) -> Image.Image:
    """The vector-arithmetic figure (after DCGAN Fig. 7), one labelled row per latent.

    All images are ``(…, C, H, W)`` in [-1, 1]. ``exemplars[i]`` holds concept ``i``'s
    exemplar images and ``means[i]`` the image of their mean latent; ``result`` is the image
    of ``A - B + C`` and ``neighbours`` (possibly empty) the images of its noisy copies.
    Layout, left to right: the row label (``labels``), the latent's own image (mean or
    result, under the header "z"), a gap, then the exemplars (tagged ``#index`` from
    ``indices``) or the neighbourhood. The result row sits below a separator line. Size:
    :func:`arithmetic_figure_size`.
    """
    if len(labels) != len(exemplars) + 1 or means.shape[0] != len(exemplars):
        raise UsageError(
            f"arithmetic_figure: {len(exemplars)} concepts need "
            f"{len(exemplars)} means and {len(exemplars) + 1} labels"
        )
    size = means.shape[-1]
    scale = scale or default_scale(size)
    tile = size * scale
    neighbour_tiles = _upscaled(neighbours, scale) if neighbours.numel() else None
    exemplar_count = max((e.shape[0] if e.dim() == 4 else 1) for e in exemplars)
    k = 0 if neighbour_tiles is None else neighbour_tiles.shape[0]
    width, height = arithmetic_figure_size(size, exemplar_count, k, scale, len(exemplars))
    figure = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(figure)
    label_font = _font(14)
    tag_font = _font(_label_font_size(tile))
    z_x = MARGIN + LABEL_WIDTH
    samples_x = z_x + tile + SECTION
    header_y = MARGIN + (HEADER - 14) // 2
    draw.text((z_x, header_y), "z", fill=(0, 0, 0), font=label_font)
    draw.text(
        (samples_x, header_y),
        "exemplars from the sheet / z + noise",
        fill=(0, 0, 0),
        font=label_font,
    )

    def paste(image: torch.Tensor, x: int, y: int, tag: str | None = None) -> None:
        figure.paste(_to_pil(image).convert("RGB"), (x, y))
        if tag is not None:
            _draw_tag(draw, (x, y), tag, tag_font)

    def row_label(text: str, y: int) -> None:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=label_font)
        draw.text(
            (MARGIN, y + (tile - (bottom - top)) // 2 - top), text, fill=(0, 0, 0), font=label_font
        )

    mean_tiles = _upscaled(means, scale)
    y = MARGIN + HEADER
    for i, concept in enumerate(exemplars):
        row_label(labels[i], y)
        paste(mean_tiles[i], z_x, y, "mean")
        row_indices = list(indices[i]) if indices is not None else None
        for j, image in enumerate(_upscaled(concept, scale)):
            tag = f"#{row_indices[j]}" if row_indices is not None else None
            paste(image, samples_x + j * (tile + PAD), y, tag)
        y += tile + (PAD if i < len(exemplars) - 1 else 0)
    line_y = y + SECTION // 2
    draw.line((MARGIN, line_y, width - MARGIN, line_y), fill=(160, 160, 160), width=1)
    y += SECTION
    row_label(labels[-1], y)
    paste(_upscaled(result, scale)[0], z_x, y)
    if neighbour_tiles is not None:
        for j, image in enumerate(neighbour_tiles):
            paste(image, samples_x + j * (tile + PAD), y)
    return figure

