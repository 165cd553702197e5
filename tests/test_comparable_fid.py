"""FID comparable with published numbers (issue 16): the resize and normalisation of each
tool ganforge copies, checked against that tool's own code, and reference statistics in
the ``.npz`` files pytorch-fid and clean-fid write."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ganforge.errors import UsageError
from ganforge.evaluation.npz_stats import load_reference_npz, save_reference_npz
from ganforge.evaluation.resize import (
    RESIZE_MODES,
    RESIZE_PROTOCOLS,
    normalize_for_inception,
    pil_bicubic,
    prepare_for_inception,
    resize_for_inception,
    tf1_bilinear,
)

# (height, width, channels): GAN sizes, grey, non-square both ways (Pillow 13 resizes
# rows first when the height shrinks most), a downscale and the identity.
SHAPES = [(32, 32, 3), (64, 64, 3), (28, 28, 1), (37, 53, 3), (600, 200, 3), (512, 512, 3),
          (299, 299, 3)]


def random_image(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return image[..., 0] if shape[2] == 1 else image


def as_nchw(image: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(image))
    return (tensor[None, None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)[None])


# --- resize modes ----------------------------------------------------------------------

def test_every_mode_has_a_protocol_line_naming_its_tool() -> None:
    assert RESIZE_MODES == ("antialias", "tf1", "clean", "pytorch_fid")
    assert set(RESIZE_PROTOCOLS) == set(RESIZE_MODES)
    for mode, tool in (("antialias", "torchmetrics"), ("tf1", "torch-fidelity"),
                       ("clean", "clean-fid"), ("pytorch_fid", "pytorch-fid")):
        assert tool in RESIZE_PROTOCOLS[mode]
        assert "\n" not in RESIZE_PROTOCOLS[mode]


def test_clean_equals_clean_fids_resizer() -> None:
    resize = pytest.importorskip("cleanfid.resize")
    resizer = resize.make_resizer("PIL", False, "bicubic", (299, 299))
    for seed, shape in enumerate(SHAPES):
        image = random_image(shape, seed)
        # clean-fid opens every file with .convert("RGB"): grey is repeated to 3 channels
        rgb = np.asarray(Image.fromarray(image).convert("RGB"))
        theirs = torch.from_numpy(resizer(rgb)).permute(2, 0, 1)[None]
        ours = prepare_for_inception(as_nchw(image), 299, "clean")
        assert ours.dtype == torch.float32 and ours.shape == (1, 3, 299, 299)
        difference = (ours - (theirs - 128) / 128).abs().max().item()
        assert difference <= 1e-4 / 128, (shape, difference)
        resized = resize_for_inception(as_nchw(rgb), 299, "clean")
        assert (resized - theirs).abs().max().item() <= 1e-4, shape
        if shape[:2] != (299, 299):
            # the torch reimplementation the GPU uses (run here on the CPU)
            torch_path = pil_bicubic(as_nchw(rgb).float(), 299, backend="torch")
            assert (torch_path - theirs).abs().max().item() <= 1e-4, shape


def test_clean_equals_clean_fids_dataset_path(tmp_path: Path) -> None:
    """Through clean-fid's own file reader (``ResizeDataset``: PIL open, convert RGB,
    resize, ToTensor of float32 without rescaling), the input its network sees is ours."""
    utils = pytest.importorskip("cleanfid.utils")
    files = []
    for seed, shape in enumerate([(32, 32, 3), (28, 28, 1)]):
        files.append(tmp_path / f"{seed}.png")
        Image.fromarray(random_image(shape, seed)).save(files[-1])
    dataset = utils.ResizeDataset([str(f) for f in files], mode="clean")
    for i, file in enumerate(files):
        image = np.asarray(Image.open(file))
        theirs = dataset[i][None]
        ours = resize_for_inception(as_nchw(image).expand(-1, 3, -1, -1), 299, "clean")
        assert (ours - theirs).abs().max().item() <= 1e-4


def test_clean_keeps_values_in_range_and_is_not_quantised() -> None:
    # bicubic overshoots at a black/white edge; clean-fid clips, and does not round
    edge = torch.zeros(1, 3, 8, 8)
    edge[..., 4:] = 255
    out = resize_for_inception(edge, 299, "clean")
    assert out.min().item() == 0.0 and out.max().item() == 255.0
    assert not torch.equal(out, out.round())


def pytorch_fid_inputs(batch: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's ``InceptionV3.forward`` (resize_input and normalize_input on, as its
    ``fid_score`` builds it) up to the first block, without weights."""
    inception = pytest.importorskip("pytorch_fid.inception")

    class Capture(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    model = inception.InceptionV3.__new__(inception.InceptionV3)
    nn.Module.__init__(model)
    model.resize_input, model.normalize_input = True, True
    model.blocks = nn.ModuleList([Capture()])
    model.output_blocks, model.last_needed_block = [0], 0
    return model(batch)[0]


def test_pytorch_fid_equals_pytorch_fids_own_code() -> None:
    transforms = pytest.importorskip("torchvision.transforms")
    for seed, size in enumerate((32, 64, 28, 299)):
        images = [random_image((size, size, 3), seed * 10 + i) for i in range(3)]
        # pytorch-fid's ImagePathDataset: Image.open(...).convert("RGB") then ToTensor()
        batch = torch.stack([transforms.ToTensor()(Image.fromarray(i)) for i in images])
        theirs = pytorch_fid_inputs(batch)
        ours = prepare_for_inception(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2),
                                     299, "pytorch_fid")
        assert torch.equal(ours, theirs), size


def test_pytorch_fid_written_out() -> None:
    g = torch.Generator().manual_seed(0)
    for size in (32, 64, 100):
        images = torch.randint(0, 256, (2, 3, size, size), generator=g, dtype=torch.uint8)
        unit = images.float() / 255
        expected = 2 * F.interpolate(unit, size=(299, 299), mode="bilinear",
                                     align_corners=False) - 1
        ours = prepare_for_inception(images, 299, "pytorch_fid")
        assert torch.equal(ours, expected)
        # the two public steps give the same up to float32 rounding
        two_steps = normalize_for_inception(resize_for_inception(images, 299, "pytorch_fid"),
                                            "pytorch_fid")
        torch.testing.assert_close(two_steps, expected, rtol=0, atol=1e-6)
        # and pytorch-fid's 2x/255-1 is not the (x-128)/128 of the other tools
        assert not torch.allclose(two_steps, (two_steps * 127.5 + 127.5 - 128) / 128,
                                  atol=1e-3)


def test_division_by_255_is_torchvisions_on_any_device() -> None:
    values = torch.arange(256)
    to_tensor = values.to(torch.float32).div(255)
    via_reciprocal = values.to(torch.float64).mul(1 / 255).to(torch.float32)
    assert torch.equal(to_tensor, via_reciprocal)
    assert torch.equal(prepare_for_inception(values.view(1, 1, 16, 16), 16, "pytorch_fid"),
                       (2 * to_tensor - 1).view(1, 1, 16, 16).expand(-1, 3, -1, -1))


def test_normalisations() -> None:
    x = torch.tensor([0.0, 128.0, 255.0])
    for mode in ("antialias", "tf1", "clean"):
        assert normalize_for_inception(x, mode).tolist() == [-1.0, 0.0, 127 / 128]
    assert normalize_for_inception(x, "pytorch_fid").tolist() == pytest.approx(
        [-1.0, 1 / 255, 1.0], abs=1e-7)
    with pytest.raises(ValueError, match="unknown resize mode 'bicubic'"):
        prepare_for_inception(torch.zeros(1, 3, 8, 8), 299, "bicubic")
    with pytest.raises(ValueError, match="unknown backend 'cv2'"):
        pil_bicubic(torch.zeros(1, 3, 8, 8), 299, backend="cv2")


def test_tf1_and_antialias_unchanged() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 32, 32), generator=g).float()
    tf1 = resize_for_inception(images, 299, "tf1")
    assert torch.equal(tf1, tf1_bilinear(images, 299))
    assert torch.equal(prepare_for_inception(images, 299, "tf1"), (tf1 - 128) / 128)
    antialias = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False,
                              antialias=True)
    assert torch.equal(resize_for_inception(images, 299, "antialias"), antialias)
    assert torch.equal(prepare_for_inception(images, 299, "antialias"),
                       (antialias - 128) / 128)
    fidelity = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")
    theirs = fidelity.interpolate_bilinear_2d_like_tensorflow1x(images, size=(299, 299),
                                                                align_corners=False)
    torch.testing.assert_close(tf1, theirs, rtol=1e-5, atol=5e-3)


def test_the_target_size_passes_through_every_mode() -> None:
    images = torch.randint(0, 256, (2, 3, 299, 299)).float()
    for mode in RESIZE_MODES:
        assert torch.equal(resize_for_inception(images, 299, mode), images)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_clean_and_pytorch_fid_are_the_same_on_the_gpu() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 64, 64), generator=g, dtype=torch.uint8)
    clean = prepare_for_inception(images, 299, "clean")  # Pillow itself
    assert torch.equal(prepare_for_inception(images.cuda(), 299, "clean").cpu(), clean)
    big = torch.randint(0, 256, (2, 3, 512, 512), generator=g).float()
    assert torch.equal(pil_bicubic(big.cuda(), 299).cpu(), pil_bicubic(big, 299))
    cpu = prepare_for_inception(images, 299, "pytorch_fid")
    gpu = prepare_for_inception(images.cuda(), 299, "pytorch_fid").cpu()
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-6)


# --- reference statistics in .npz files ------------------------------------------------

def statistics(d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    features = np.random.default_rng(seed).normal(size=(40, d))
    return features.mean(0), np.cov(features, rowvar=False)


def test_round_trip(tmp_path: Path) -> None:
    mu, sigma = statistics()
    path = save_reference_npz(tmp_path / "ref.npz", mu, sigma)
    loaded_mu, loaded_sigma = load_reference_npz(path, dim=6)
    assert loaded_mu.dtype == np.float64 and loaded_sigma.dtype == np.float64
    assert np.array_equal(loaded_mu, mu) and np.array_equal(loaded_sigma, sigma)
    # tensors too, and the file is replaced whole with no temporary left behind
    save_reference_npz(path, torch.from_numpy(mu + 1), torch.from_numpy(sigma).float())
    assert np.array_equal(load_reference_npz(path)[0], mu + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npz"]
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["mu", "sigma"]
        assert npz["mu"].dtype == np.float64


def test_files_the_tools_write_load_and_ours_load_in_them(tmp_path: Path) -> None:
    mu, sigma = statistics()
    np.savez_compressed(tmp_path / "pytorch_fid.npz", mu=mu, sigma=sigma)  # fid_score
    np.savez(tmp_path / "plain.npz", mu=mu.astype(np.float32), sigma=sigma.astype(np.float32))
    for name in ("pytorch_fid.npz", "plain.npz"):
        loaded_mu, loaded_sigma = load_reference_npz(tmp_path / name)
        np.testing.assert_allclose(loaded_mu, mu, rtol=1e-6)
        np.testing.assert_allclose(loaded_sigma, sigma, rtol=1e-6, atol=1e-7)
    ours = save_reference_npz(tmp_path / "ours.npz", mu, sigma)
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    their_mu, their_sigma = fid_score.compute_statistics_of_path(str(ours), None, 1, 6, "cpu")
    assert np.array_equal(their_mu, mu) and np.array_equal(their_sigma, sigma)


def _mark(path: str) -> str:
    Path(path).write_text("unpickled")
    return path


class Payload:
    """Writes a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _mark, (str(self.marker),)


def test_a_pickled_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _, sigma = statistics()
    path = tmp_path / "evil.npz"
    np.savez(path, mu=np.array([Payload(marker)] * 6, dtype=object), sigma=sigma)
    assert not marker.exists()
    with pytest.raises(UsageError, match=r"evil\.npz: 'mu' is an object \(pickled\) array; "
                                         r"refusing to unpickle it"):
        load_reference_npz(path)
    assert not marker.exists()
    # the file really would run code if it were unpickled
    with np.load(path, allow_pickle=True) as npz:
        npz["mu"]
    assert marker.exists()


def refusal(path: Path) -> str:
    with pytest.raises(UsageError) as info:
        load_reference_npz(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_files_that_are_not_statistics_archives(tmp_path: Path) -> None:
    assert "no such file" in refusal(tmp_path / "absent.npz")
    assert "not a file" in refusal(tmp_path)
    mu, sigma = statistics()
    np.save(tmp_path / "mu.npy", mu)
    assert "not an .npz archive" in refusal(tmp_path / "mu.npy")
    marker = tmp_path / "marker"
    (tmp_path / "stats.pkl").write_bytes(pickle.dumps({"mu": Payload(marker)}))
    assert "not an .npz archive" in refusal(tmp_path / "stats.pkl")
    assert not marker.exists()
    (tmp_path / "text.npz").write_text("mu sigma")
    assert "not an .npz archive" in refusal(tmp_path / "text.npz")
    with zipfile.ZipFile(tmp_path / "junk.npz", "w") as archive:
        archive.writestr("mu.npy", b"not an npy file")
        archive.writestr("sigma.npy", b"nor this")
    assert "damaged or not a NumPy archive" in refusal(tmp_path / "junk.npz")
    np.savez(tmp_path / "short.npz", mu=mu, sigma=sigma)
    with zipfile.ZipFile(tmp_path / "short.npz") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as archive:
        archive.writestr("mu.npy", members["mu.npy"])
        archive.writestr("sigma.npy", members["sigma.npy"][:-16])  # data cut short
    assert "damaged or not a NumPy archive" in refusal(tmp_path / "short.npz")


def test_missing_keys_name_what_is_there(tmp_path: Path) -> None:
    features = np.zeros((4, 6))
    np.savez(tmp_path / "kid.npz", feats=features)  # clean-fid's KID statistics
    message = refusal(tmp_path / "kid.npz")
    assert "no 'mu' or 'sigma' array; the file holds 'feats'" in message
    np.savez(tmp_path / "half.npz", mu=np.zeros(6), m=np.zeros(2))
    assert "no 'sigma' array; the file holds 'm', 'mu'" in refusal(tmp_path / "half.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    assert "the file holds no arrays" in refusal(tmp_path / "empty.npz")


@pytest.mark.parametrize(("mu", "sigma", "expected"), [
    (np.zeros((1, 6)), np.eye(6), "'mu' must be a vector of D values, got shape 1x6"),
    (np.float64(0), np.eye(6), "'mu' must be a vector of D values, got shape a scalar"),
    (np.zeros(6), np.zeros((6, 5)), "'sigma' must be a square DxD matrix, got shape 6x5"),
    (np.zeros(6), np.zeros(36), "'sigma' must be a square DxD matrix, got shape 36"),
    (np.zeros(6), np.eye(5), "'mu' has 6 values but 'sigma' is 5x5"),
    (np.array(["a"] * 6), np.eye(6), "'mu' has dtype <U1, not real numbers"),
    (np.zeros(6), np.eye(6).astype(complex), "'sigma' has dtype complex128, not real"),
    (np.array([0, np.nan, 0, 0, 0, 0]), np.eye(6), "'mu' has 1 non-finite value(s)"),
    (np.zeros(6), np.diag([1, 1, np.inf, 1, 1, 1]), "'sigma' has 1 non-finite value(s)"),
    (np.zeros(6), np.triu(np.ones((6, 6))), "'sigma' is not symmetric (max |sigma - sigma.T| "
                                            "= 1, max |sigma| = 1); not a covariance"),
    (np.zeros(6), np.diag([1, -1, 1, 1, 1, 1.0]), "'sigma' has 1 negative variance(s)"),
])
def test_bad_arrays_are_refused(tmp_path: Path, mu: np.ndarray, sigma: np.ndarray,
                                expected: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, mu=mu, sigma=sigma)
    assert expected in refusal(path)


def test_symmetry_allows_rounding_and_the_dimension_is_checked(tmp_path: Path) -> None:
    mu, sigma = statistics()
    nudged = sigma.copy()
    nudged[0, 1] *= 1 + 1e-7  # as float32 storage or another summation order leaves it
    np.savez(tmp_path / "ok.npz", mu=mu, sigma=nudged)
    load_reference_npz(tmp_path / "ok.npz")
    with pytest.raises(UsageError, match="statistics of 6 features, but the extractor gives "
                                         "2048"):
        load_reference_npz(tmp_path / "ok.npz", dim=2048)


def test_saving_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    mu, sigma = statistics()
    with pytest.raises(UsageError, match=r"stats\.txt: the name must end in \.npz"):
        save_reference_npz(tmp_path / "stats.txt", mu, sigma)
    with pytest.raises(UsageError, match="'mu' has 6 values but 'sigma' is 5x5"):
        save_reference_npz(tmp_path / "a.npz", mu, np.eye(5))
    with pytest.raises(UsageError, match="'sigma' is not symmetric"):
        save_reference_npz(tmp_path / "a.npz", mu, np.triu(np.ones((6, 6))))
    with pytest.raises(UsageError, match="does not exist"):
        save_reference_npz(tmp_path / "missing" / "a.npz", mu, sigma)
    assert list(tmp_path.iterdir()) == []
