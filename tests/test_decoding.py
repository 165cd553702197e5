"""Decoding every odd image a scraped dataset holds: converted correctly or refused."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.datasets import decoding
from ganforge.datasets.decoding import BadImage, decode_image
from ganforge.datasets.policy import Skipped


def png(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def pixel(tensor: torch.Tensor) -> list[int]:
    return tensor[:, 0, 0].tolist()


def test_grey_is_repeated_in_rgb() -> None:
    out = decode_image(png(Image.new("L", (4, 4), 100)), 3)
    assert out.dtype == torch.uint8 and out.shape == (3, 4, 4)
    assert pixel(out) == [100, 100, 100]


def test_rgb_to_grey() -> None:
    out = decode_image(png(Image.new("RGB", (4, 4), (255, 0, 0))), 1)
    assert out.shape == (1, 4, 4) and pixel(out) == [76]  # ITU-R 601 luma of pure red


def test_palette_and_one_bit() -> None:
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([10, 200, 30] + [0, 0, 0] * 255)
    assert pixel(decode_image(png(palette), 3)) == [10, 200, 30]
    assert pixel(decode_image(png(Image.new("1", (4, 4), 1)), 3)) == [255, 255, 255]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_become_white(mode: str) -> None:
    colour = (0, 0, 0, 0) if mode == "RGBA" else (0, 0)
    out = decode_image(png(Image.new(mode, (4, 4), colour)), 3)
    assert pixel(out) == [255, 255, 255]  # not the black stored under alpha 0
    opaque = (20, 40, 60, 255) if mode == "RGBA" else (50, 255)
    expected = [20, 40, 60] if mode == "RGBA" else [50, 50, 50]
    assert pixel(decode_image(png(Image.new(mode, (4, 4), opaque)), 3)) == expected


def test_palette_with_transparency() -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    out = decode_image(png(image, transparency=0), 3)
    assert pixel(out) == [255, 255, 255]


def test_cmyk_jpeg() -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    out = decode_image(png(cmyk, "JPEG", quality=100), 3)
    r, g, b = pixel(out)
    assert r > 230 and g < 30 and b < 30


def test_sixteen_bit_is_rescaled_not_clipped() -> None:
    array = np.array([[0, 32896], [65535, 257]], dtype=np.uint16)
    out = decode_image(png(Image.fromarray(array)), 1)
    assert out[0].tolist() == [[0, 128], [255, 1]]


def test_float_image() -> None:
    image = Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32), mode="F")
    out = decode_image(png(image, "TIFF"), 1)
    assert out[0, 0, 0].item() == 128


@pytest.mark.parametrize(("data", "message"), [
    (b"", "cannot decode image"),
    (b"GIF89a not really", "cannot decode image"),
    (b"definitely not an image", "cannot decode image"),
])
def test_undecodable_is_refused_with_its_name(data: bytes, message: str) -> None:
    with pytest.raises(BadImage, match=f"bedroom:abc: {message}"):
        decode_image(data, 3, name="bedroom:abc")


def test_truncated_jpeg_is_refused() -> None:
    data = png(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(BadImage, match="cut.jpg: cannot decode image"):
        decode_image(data[: len(data) // 2], 3, name="cut.jpg")


def test_decompression_bomb_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(decoding, "MAX_PIXELS", 50 * 50)
    with pytest.raises(BadImage, match="decompression bomb"):
        decode_image(png(Image.new("L", (100, 100))), 1, name="bomb.png")


def test_file_paths_are_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(BadImage, match="broken.png"):
        decode_image(path, 3)


def test_resize_center_crop_and_range() -> None:
    image = torch.zeros(3, 20, 40, dtype=torch.uint8)
    image[:, :, 10:30] = 255  # bright centre band
    out = decoding.resize_center_crop(image, 10)
    assert out.shape == (3, 10, 10)
    assert (out[:, :, 1:9] == 255).all()  # only the bright centre survives the crop
    unit = decoding.to_unit_range(torch.tensor([0, 255], dtype=torch.uint8))
    assert unit.tolist() == [-1.0, 1.0]


def thin_png() -> bytes:
    """A PNG of 1,000,000x1 pixels that compresses to about 1 KB."""
    data = png(Image.new("L", (1_000_000, 1), 128))
    assert len(data) < 2048
    return data


@pytest.fixture
def bounded_resize(monkeypatch) -> None:
    """Make torchvision's resize fail on being asked for an oversized image, instead of
    allocating it (gigabytes for a thin image, were the bound missing)."""
    real = decoding.TF.resize

    def resize(image: torch.Tensor, size: list[int], **kwargs) -> torch.Tensor:
        short, long = sorted(image.shape[-2:])
        pixels = size[0] * int(size[0] * long / short)  # torchvision's rule
        assert pixels <= 4096 * 4096, f"asked to resize {image.shape} to {pixels} pixels"
        return real(image, size, **kwargs)

    monkeypatch.setattr(decoding.TF, "resize", resize)


@pytest.mark.parametrize(("height", "width", "size"), [
    (20, 40, 10), (40, 20, 10), (7, 3, 5), (1, 1000, 4), (3, 3, 64), (480, 640, 64)])
def test_resized_shape_is_torchvisions(height: int, width: int, size: int) -> None:
    image = torch.zeros(1, height, width, dtype=torch.uint8)
    out = decoding.TF.resize(image, [size], antialias=True)
    assert tuple(out.shape[-2:]) == decoding.resized_shape(height, width, size)


def test_an_elongated_image_is_refused_before_the_resize(bounded_resize) -> None:
    image = decode_image(thin_png(), 3, name="thin.png")  # 1,000,000 pixels: decodes
    with pytest.raises(BadImage, match=r"^thin.png: 1000000x1 pixels is too elongated to "
                                       r"resize to 64: 64000000x64 pixels would be over the "
                                       rf"limit of {4096 * 4096}$"):
        decoding.resize_center_crop(image, 64, "thin.png")


def test_the_resize_bound_leaves_ordinary_shapes_alone() -> None:
    panorama = torch.zeros(3, 64, 1024, dtype=torch.uint8)  # 16:1 at the largest size
    assert decoding.resize_center_crop(panorama, 1024).shape == (3, 1024, 1024)
    assert decoding.resize_center_crop(torch.zeros(3, 1, 1, dtype=torch.uint8),
                                       1024).shape == (3, 1024, 1024)


def image_folder(plugins, root: Path, on_error: str):
    return plugins.registry.create("dataset", "image_folder", {
        "root": str(root), "image_size": 64, "channels": 1, "on_error": on_error})


def test_an_elongated_image_follows_the_on_error_policy(plugins, tmp_path: Path,
                                                        bounded_resize) -> None:
    (tmp_path / "a-good.png").write_bytes(png(Image.new("L", (80, 60), 7)))
    thin = tmp_path / "b-thin.png"
    thin.write_bytes(thin_png())
    skipping = image_folder(plugins, tmp_path, "skip")
    assert skipping[0].shape == (1, 64, 64)
    skipped = skipping[1]
    assert isinstance(skipped, Skipped) and skipped.key == str(thin)
    assert "too elongated to resize to 64" in skipped.reason
    failing = image_folder(plugins, tmp_path, "fail")
    with pytest.raises(BadImage, match=rf"^{re.escape(str(thin))}: 1000000x1 pixels is too "
                                       r"elongated[^\n]*$"):
        failing[1]


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (no data for them)."""
    data = bytearray(png(Image.new("L", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR's CRC
    return bytes(data)


def test_the_decoded_size_is_bounded_whatever_pillows_limit(monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # e.g. another library's choice
    with pytest.raises(BadImage, match=r"^huge.png: 9000x9000 pixels is over the limit of "
                                       rf"{8192 * 8192} \(decompression bomb\?\)$"):
        decode_image(png_header_claiming(9000, 9000), 1, name="huge.png")
