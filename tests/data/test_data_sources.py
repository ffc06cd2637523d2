"""Data sources (Galaxy Zoo JPEG folders, Galaxy10 HDF5, synthetic galaxies) and ImageBatches."""

from __future__ import annotations

import csv
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gangal_core.data.batches import ImageBatches
from gangal_core.data.sources import DataSource, downscale_nearest, open_data_source
from gangal_core.errors import ConfigError, GangalError, ImageFormatError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))  # before `pip install -e .` has them

import gangal_galaxyzoo as gz
import gangal_galaxyzoo.galaxy10 as g10
import gangal_synthetic_galaxies as syn

REAL = Path(__file__).resolve().parents[3] / "shared/data/galaxyzoo2-sample"


# ---- helpers ------------------------------------------------------------------------------
class ArraySource(DataSource):
    """Random uint8 images held in memory; counts its reads."""

    name = "arrays"

    def __init__(self, n: int = 10, resolution: int = 53, seed: int = 0) -> None:
        self.images = np.random.default_rng(seed).integers(
            0, 256, (n, 3, resolution, resolution), dtype=np.uint8
        )
        self.resolution = resolution
        self.reads = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: int) -> np.ndarray:
        with self._lock:
            self.reads += 1
        return self.images[index]


def _flip(image: np.ndarray, h: bool, v: bool) -> np.ndarray:
    return image[..., :: -1 if v else 1, :: -1 if h else 1]


def _kaggle_folder(root: Path, ids=(9, 100, 25, 1000, 42), size: int = 424) -> Path:
    """A Kaggle-layout folder of smooth JPEGs plus training_solutions_rev1.csv."""
    images = root / gz.KAGGLE_FOLDER
    images.mkdir(parents=True)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    for k, gid in enumerate(ids):
        rgb = np.stack(
            [np.add.outer(ramp, ramp) / 2, np.tile(ramp, (size, 1)), np.full((size, size), 20.0 * k)], -1
        )
        Image.fromarray(rgb.astype(np.uint8)).save(images / f"{gid}.jpg", quality=90)
    with open(root / gz.KAGGLE_CATALOGUE, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["GalaxyID", "Class1.1", "Class1.3"])
        for k, gid in enumerate(ids):
            writer.writerow([gid, k / 4, 0.1 * (k % 2)])
    return root


# ---- nearest downscaling and ImageBatches -------------------------------------------------
@pytest.mark.parametrize(("native", "size"), [(424, 64), (424, 128), (128, 64), (69, 64), (256, 64), (53, 8)])
def test_downscale_nearest_matches_pil(native: int, size: int) -> None:
    # Pillow agrees wherever an output pixel's centre is not exactly on an input pixel edge, and
    # on such ties as well when native / size is exact (128 -> 64); these sizes are those cases.
    image = np.random.default_rng(native + size).integers(0, 256, (3, native, native), dtype=np.uint8)
    ours = downscale_nearest(image, size)
    pil = np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.NEAREST)) for c in image])
    np.testing.assert_array_equal(ours, pil)


@pytest.mark.parametrize(
    ("native", "size", "commutes"), [(424, 64, True), (424, 128, True), (128, 64, False)]
)
def test_nearest_commutes_with_flips_only_without_ties(native: int, size: int, commutes: bool) -> None:
    # 424 -> 64 or 128 never puts an output pixel centre on an input edge, so flipping before or after
    # downscaling is the same; 128 -> 64 picks the odd rows, which a flip turns into the even ones.
    image = np.random.default_rng(1).integers(0, 256, (3, native, native), dtype=np.uint8)
    for h, v in ((True, False), (False, True), (True, True)):
        same = np.array_equal(
            downscale_nearest(_flip(image, h, v), size), _flip(downscale_nearest(image, size), h, v)
        )
        assert same is commutes


def test_batches_shapes_ranges_and_repeatability() -> None:
    source = ArraySource(n=10)
    batches = ImageBatches(source, resolutions=(8, 16), batch_size=4, seed=3, workers=2)
    epoch = list(batches.epoch(0))
    assert len(epoch) == len(batches) == 2  # the incomplete last batch is dropped
    for b8, b16 in epoch:
        assert b8.shape == (4, 3, 8, 8) and b16.shape == (4, 3, 16, 16)
        assert b8.dtype == b16.dtype == torch.float32
        assert 0.0 <= float(b8.min()) and float(b16.max()) <= 1.0
    again = ImageBatches(source, resolutions=(8, 16), batch_size=4, seed=3, cache="none", workers=1)
    for (a8, a16), (c8, c16) in zip(epoch, again.epoch(0), strict=True):
        assert np.array_equal(a8.numpy(), c8.numpy()) and np.array_equal(a16.numpy(), c16.numpy())
    other = [b[0].numpy() for b in batches.epoch(1)]
    assert not all(np.array_equal(a[0].numpy(), o) for a, o in zip(epoch, other, strict=True))
    resumed = list(batches.epoch(0, start=1))
    assert np.array_equal(resumed[0][1].numpy(), epoch[1][1].numpy())
    batches.close()


@pytest.mark.parametrize("native", [53, 16])  # 53 -> 8, 16 commute with flips; 16 -> 8 does not
def test_batches_flip_both_resolutions_of_an_item_alike(native: int) -> None:
    source = ArraySource(n=24, resolution=native)
    truth = {r: downscale_nearest(source.images, r).astype(np.float32) / 255 for r in (8, 16)}
    batches = ImageBatches(source, resolutions=(8, 16), batch_size=8, seed=0, workers=1)
    seen = set()
    for epoch in range(2):
        for b8, b16 in batches.epoch(epoch):
            for small, large in zip(b8.numpy(), b16.numpy(), strict=True):
                matches = [
                    (k, h, v)
                    for k in range(len(source))
                    for h in (False, True)
                    for v in (False, True)
                    if np.array_equal(_flip(large, h, v), truth[16][k])
                ]
                assert len(matches) == 1  # one source image, one way to unflip it
                k, h, v = matches[0]
                np.testing.assert_array_equal(_flip(small, h, v), truth[8][k])  # the same flips at 8x8
                seen.add((h, v))
    assert len(seen) == 4


def test_disk_cache_is_reused_without_decoding(tmp_path: Path) -> None:
    source = ArraySource(n=8)
    first = ImageBatches(source, resolutions=(8,), batch_size=4, cache=tmp_path, workers=2)
    expected = [b[0].numpy() for b in first.epoch(0)]
    first.close()
    assert source.reads >= len(source)
    second = ImageBatches(source, resolutions=(8,), batch_size=4, cache=tmp_path, workers=2)
    before = source.reads
    got = [b[0].numpy() for b in second.epoch(0)]
    assert source.reads == before  # the epoch decoded nothing
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_opening_a_filled_disk_cache_reads_nothing(tmp_path: Path) -> None:
    source = ArraySource(n=8)
    list(ImageBatches(source, resolutions=(8,), batch_size=4, cache=tmp_path, workers=1).epoch(0))
    before = source.reads
    list(ImageBatches(source, resolutions=(8,), batch_size=4, cache=tmp_path, workers=1).epoch(0))
    assert source.reads == before


# ---- synthetic galaxies -----------------------------------------------------------------
def test_synthetic_images_do_not_depend_on_read_order_or_thread() -> None:
    a, b = syn.SyntheticGalaxies(n=6, seed=7), syn.SyntheticGalaxies(n=6, seed=7)
    forward = [a.read(i) for i in range(6)]
    with ThreadPoolExecutor(2) as pool:
        backward = dict(zip(range(5, -1, -1), pool.map(b.read, range(5, -1, -1)), strict=True))
    for i in range(6):
        assert forward[i].shape == (3, 128, 128) and forward[i].dtype == np.float32
        assert 0.0 <= forward[i].min() and forward[i].max() <= 1.0
        np.testing.assert_array_equal(forward[i], backward[i])
    other = syn.SyntheticGalaxies(n=6, seed=8).read(0)
    assert not np.array_equal(other, forward[0])
    assert not np.array_equal(forward[0], forward[1])


def test_synthetic_truth_matches_parameters_and_is_cheap() -> None:
    source = syn.SyntheticGalaxies(n=300, seed=1)
    truth = source.truth()
    expected = {"ellipticity", "angle", "half_light_radius", "bulge_fraction", "flux", "x0", "y0", "psf_fwhm"}
    assert expected <= set(truth) and all(len(v) == 300 for v in truth.values())
    assert ((0 <= truth["angle"]) & (truth["angle"] < 180)).all()
    assert ((0 <= truth["ellipticity"]) & (truth["ellipticity"] < 1)).all()
    assert ((0 <= truth["bulge_fraction"]) & (truth["bulge_fraction"] <= 1)).all()
    p = source.parameters(17)
    assert truth["ellipticity"][17] == p.ellipticity and truth["x0"][17] == p.x0
    assert truth["half_light_radius"][17] == pytest.approx(p.half_light_radius, rel=1e-9)
    # half the light inside: between the bulge's and the disk's half-light radii, and 10-20 % of the width
    lo, hi = (
        np.minimum(truth["bulge_radius"], truth["disk_radius"]),
        np.maximum(truth["bulge_radius"], truth["disk_radius"]),
    )
    assert ((lo <= truth["half_light_radius"]) & (truth["half_light_radius"] <= hi)).all()
    assert 0.1 * 128 < 2.3 * np.median(truth["disk_radius"]) < 0.2 * 128


def test_half_light_radius_holds_half_the_light() -> None:
    galsim = pytest.importorskip("galsim")
    from scipy.special import gammaincinv

    assert syn._B_DEV == pytest.approx(gammaincinv(8.0, 0.5))
    assert syn._B_EXP == pytest.approx(gammaincinv(2.0, 0.5))
    bt, rb, rd = 0.4, 2.0, 6.0
    r = float(syn.half_light_radius(bt, rb, rd))
    profile = galsim.Add(
        galsim.DeVaucouleurs(half_light_radius=rb, flux=bt),
        galsim.Exponential(half_light_radius=rd, flux=1 - bt),
    )
    assert profile.calculateHLR(size=1024, scale=0.1) == pytest.approx(r, rel=1e-3)


def _moments(image: np.ndarray) -> tuple[float, float, float, float]:
    """Centre, ellipticity 1 - sqrt(minor/major), angle (degrees, +x towards +y) of ``image[y, x]``."""
    y, x = np.mgrid[: image.shape[0], : image.shape[1]]
    f = image.sum()
    xc, yc = (image * x).sum() / f, (image * y).sum() / f
    mxx, myy, mxy = ((image * d).sum() / f for d in ((x - xc) ** 2, (y - yc) ** 2, (x - xc) * (y - yc)))
    eig = np.linalg.eigvalsh([[mxx, mxy], [mxy, myy]])
    return xc, yc, 1 - np.sqrt(eig[0] / eig[1]), np.degrees(0.5 * np.arctan2(2 * mxy, mxx - myy)) % 180


@pytest.mark.parametrize(("angle", "bulge_fraction"), [(30.0, 0.0), (120.0, 0.3), (165.0, 0.7)])
def test_truth_conventions_by_moments_and_photutils(angle: float, bulge_fraction: float) -> None:
    # bright, noiseless, unsaturated, e = 0.6, PSF FWHM 2 px against a 10 px disk
    p = syn.GalaxyParameters(
        ellipticity=0.6, angle=angle, bulge_fraction=bulge_fraction, bulge_radius=3.0, disk_radius=10.0,
        flux=60.0, x0=65.3, y0=61.2, psf_fwhm=2.0, sky=0.0, noise_sigma=0.0,
        bulge_colour=(1.2, 1.0, 0.8), disk_colour=(0.9, 1.0, 1.1),
    )  # fmt: skip
    image = syn.render_galaxy(p, 128).mean(axis=0).astype(np.float64)
    assert image.max() < 1.0
    xc, yc, e, a = _moments(image)
    # moments reach the stamp's edges, where the de Vaucouleurs wings are cut off asymmetrically
    assert (xc, yc) == (pytest.approx(65.3, abs=0.1), pytest.approx(61.2, abs=0.1))
    assert abs((a - angle + 90) % 180 - 90) < 0.5  # degrees
    assert 0.54 < e <= 0.6  # the PSF makes the light a little rounder, most so for small bulges
    from photutils.isophote import Ellipse, EllipseGeometry

    guess = EllipseGeometry(x0=64.0, y0=62.0, sma=10.0, eps=0.4, pa=np.radians(angle) + 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        isophotes = Ellipse(image, geometry=guess).fit_image(sma0=10.0, minsma=8.0, maxsma=18.0, step=0.2)
    assert len(isophotes) >= 3
    assert np.all(np.abs((np.degrees(isophotes.pa) - angle + 90) % 180 - 90) < 0.5)
    assert np.all(np.abs(isophotes.eps - 0.6) < 0.06) and abs(isophotes.eps[-1] - 0.6) < 0.02
    assert np.allclose(isophotes.x0, 65.3, atol=0.05) and np.allclose(isophotes.y0, 61.2, atol=0.05)


def test_population_truth_agrees_with_noiseless_images() -> None:
    source = syn.SyntheticGalaxies(n=12, seed=2)
    truth = source.truth()
    checked = 0
    for i in np.nonzero(truth["ellipticity"] > 0.3)[0][:4]:
        xc, yc, e, a = _moments(source.render(int(i), noise=False).mean(axis=0).astype(np.float64))
        assert abs((a - truth["angle"][i] + 90) % 180 - 90) < 2.0
        assert abs(xc - truth["x0"][i]) < 0.1 and abs(yc - truth["y0"][i]) < 0.1
        assert (
            truth["ellipticity"][i] - 0.15 < e <= truth["ellipticity"][i] + 0.02
        )  # small, PSF-rounded galaxies
        checked += 1
    assert checked >= 2


def test_synthetic_options_errors_and_truth_csv(tmp_path: Path) -> None:
    source = syn.open_synthetic(None, n="5", seed=3, resolution=64)
    assert len(source) == 5 and source.read(4).shape == (3, 64, 64)
    assert source.fingerprint() != syn.open_synthetic(None, n=5, seed=4, resolution=64).fingerprint()
    with pytest.raises(ConfigError, match="takes no path"):
        syn.open_synthetic(tmp_path)
    for bad in ({"n": 0}, {"seed": -1}, {"resolution": "big"}, {"n": 2.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            syn.open_synthetic(None, **bad)
    syn.write_truth_csv(source, tmp_path / "truth.csv")
    with open(tmp_path / "truth.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == list(range(5))
    assert float(rows[2]["angle"]) == source.truth()["angle"][2]


# ---- Galaxy Zoo JPEG folders ------------------------------------------------------------
def test_galaxyzoo_kaggle_folder_reads_in_galaxyid_order(tmp_path: Path) -> None:
    root = _kaggle_folder(tmp_path / "gz2")
    source = gz.open_galaxyzoo(root)
    assert len(source) == 5 and source.resolution == 424
    assert [source.label(i) for i in range(5)] == ["9.jpg", "25.jpg", "42.jpg", "100.jpg", "1000.jpg"]
    image = source.read(0)
    assert image.shape == (3, 424, 424) and image.dtype == np.uint8
    ramp = np.linspace(0, 255, 424)
    assert np.abs(image[1].astype(float) - ramp[None, :]).mean() < 3  # green rises along x (columns)
    direct = gz.open_galaxyzoo(root / gz.KAGGLE_FOLDER)  # the folder of JPEGs itself
    np.testing.assert_array_equal(direct.read(3), source.read(3))
    described = source.describe()
    assert described["n_images"] == 5 and described["path"] == str((root / gz.KAGGLE_FOLDER).resolve())


def test_galaxyzoo_selection_and_limit(tmp_path: Path) -> None:
    root = _kaggle_folder(tmp_path)
    # ids 9, 100, 25, 1000, 42 have Class1.1 = 0, .25, .5, .75, 1 and Class1.3 = 0, .1, 0, .1, 0
    chosen = gz.open_galaxyzoo(root, select="Class1.1>0.3 & Class1.3 < 0.05")
    assert [chosen.label(i) for i in range(len(chosen))] == ["25.jpg", "42.jpg"]
    assert len(gz.open_galaxyzoo(root, select="Class1.1>=0.25", limit="2")) == 2
    assert gz.open_galaxyzoo(root, limit=3).label(2) == "42.jpg"
    inner = gz.open_galaxyzoo(
        root / gz.KAGGLE_FOLDER, select="Class1.1>0.3 & Class1.3<0.05"
    )  # catalogue one up
    assert inner.describe()["catalogue"] == str(root / gz.KAGGLE_CATALOGUE)
    plain = gz.open_galaxyzoo(root)
    assert plain.fingerprint() != chosen.fingerprint()
    assert chosen.describe()["select"] == "Class1.1>0.3 & Class1.3<0.05"
    split = root / "split.csv"
    split.write_text("GalaxyID\n1000\n9\n777\n")
    listed = gz.open_galaxyzoo(root, catalogue="split.csv")  # relative to PATH; no select: keep those listed
    assert [listed.label(i) for i in range(len(listed))] == ["9.jpg", "1000.jpg"]


def test_galaxyzoo_errors(tmp_path: Path) -> None:
    root = _kaggle_folder(tmp_path / "gz2", ids=(1, 2))
    plain = tmp_path / "plain"  # a folder of JPEGs, without the Kaggle catalogue
    plain.mkdir()
    Image.new("RGB", (8, 8)).save(plain / "5.jpg")
    (plain / "labels.csv").write_text("GalaxyID,spiral\n5,1\n")
    cases = [
        ((tmp_path / "nowhere",), {}, ConfigError, "no such file or folder"),
        ((None,), {}, ConfigError, "needs a path"),
        ((root,), {"select": "Class9.9>0.5"}, ConfigError, r"no column 'Class9.9'.*Class1.1, Class1.3"),
        ((root,), {"select": "Class1.1 >> 0.5"}, ConfigError, "cannot read the term"),
        ((root,), {"select": "Class1.1 > high"}, ConfigError, "COLUMN OP NUMBER"),
        ((root,), {"select": "Class1.1>5"}, ConfigError, "no image is left"),
        ((root,), {"limit": 0}, ConfigError, "limit=0"),
        ((root,), {"catalogue": "missing.csv"}, ConfigError, "missing.csv.*no such file"),
        ((plain,), {"select": "spiral==1"}, ConfigError, r"needs a catalogue.*\(it holds labels\.csv\)"),
    ]
    for args, options, error, message in cases:
        with pytest.raises(error, match=message):
            gz.open_galaxyzoo(*args, **options)
    (root / "noid.csv").write_text("id,spiral\n1,1\n")
    with pytest.raises(ConfigError, match=r"GalaxyID column.*found columns: id, spiral"):
        gz.open_galaxyzoo(root, catalogue=root / "noid.csv", select="spiral==1")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    with pytest.raises(ImageFormatError, match=r"holds no <GalaxyID>\.jpg images.*notes\.txt"):
        gz.open_galaxyzoo(empty)
    Image.new("RGB", (40, 40)).save(root / gz.KAGGLE_FOLDER / "3.jpg")
    (root / gz.KAGGLE_FOLDER / "4.jpg").write_bytes(b"not a jpeg")
    source = gz.open_galaxyzoo(root)
    with pytest.raises(ImageFormatError, match=r"3\.jpg is 40x40 pixels, expected 424x424"):
        source.read(2)
    with pytest.raises(ImageFormatError, match=r"4\.jpg is not a readable JPEG"):
        source.read(3)
    Image.new("RGB", (30, 20)).save(root / gz.KAGGLE_FOLDER / "0.jpg")
    with pytest.raises(ImageFormatError, match=r"0\.jpg is 30x20 pixels; expected square"):
        gz.open_galaxyzoo(root)
    (root / gz.KAGGLE_FOLDER / "galaxy.jpg").write_bytes(b"")
    with pytest.raises(ImageFormatError, match=r"galaxy\.jpg is not named <GalaxyID>\.jpg"):
        gz.open_galaxyzoo(root)


def test_wrong_image_size_stops_batches_with_the_file_name(tmp_path: Path) -> None:
    root = _kaggle_folder(tmp_path, ids=(1, 2, 3, 4))
    Image.new("RGB", (100, 100)).save(root / gz.KAGGLE_FOLDER / "3.jpg")
    batches = ImageBatches(gz.open_galaxyzoo(root), resolutions=(64,), batch_size=4, workers=2)
    with pytest.raises(ImageFormatError, match=r"3\.jpg is 100x100 pixels"):
        next(iter(batches.epoch(0)))
    batches.close()


# ---- Galaxy10 HDF5 ------------------------------------------------------------------------
def _galaxy10_file(path: Path, n: int = 12, size: int = 20, **datasets) -> np.ndarray:
    h5py = pytest.importorskip("h5py")
    images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    with h5py.File(path, "w") as fh:
        fh["images"] = images
        fh["ans"] = np.arange(n) % 4
        for key, value in datasets.items():
            fh[key] = value
    return images


@pytest.mark.parametrize("max_in_memory", [g10.MAX_IN_MEMORY, 0])  # in memory, then read lazily
def test_galaxy10_reads_and_selects(tmp_path: Path, max_in_memory: int) -> None:
    images = _galaxy10_file(tmp_path / "g10.h5", redshift=np.linspace(0, 0.2, 12))
    source = g10.Galaxy10Source(tmp_path / "g10.h5", select="ans==3", max_in_memory=max_in_memory)
    assert len(source) == 3 and source.resolution == 20 and source.label(1) == "g10.h5[7]"
    np.testing.assert_array_equal(source.read(1), images[7].transpose(2, 0, 1))
    with ThreadPoolExecutor(2) as pool:  # concurrent reads
        got = list(pool.map(source.read, [0, 1, 2] * 4))
    np.testing.assert_array_equal(got[5], images[11].transpose(2, 0, 1))
    both = g10.Galaxy10Source(tmp_path / "g10.h5", select="ans>=2 & redshift<0.1", limit=1)
    assert both.label(0) == "g10.h5[2]"
    assert both.fingerprint() != source.fingerprint()
    batch = next(iter(ImageBatches(source, resolutions=(8, 16), batch_size=2, workers=2).epoch(0)))
    assert batch[1].shape == (2, 3, 16, 16)


def test_galaxy10_through_the_factory_and_errors(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    _galaxy10_file(tmp_path / "g10.hdf5")
    assert len(gz.open_galaxyzoo(tmp_path / "g10.hdf5", limit=5)) == 5
    with pytest.raises(ConfigError, match=r"no column 'label'.*ans"):
        gz.open_galaxyzoo(tmp_path / "g10.hdf5", select="label==1")
    with pytest.raises(ConfigError, match="kept none of the 12 images"):
        gz.open_galaxyzoo(tmp_path / "g10.hdf5", select="ans==9")
    with pytest.raises(ConfigError, match="carries its own labels"):
        gz.open_galaxyzoo(tmp_path / "g10.hdf5", catalogue="x.csv")
    with h5py.File(tmp_path / "other.h5", "w") as fh:
        fh["pictures"] = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(ImageFormatError, match=r"no dataset 'images'.*pictures"):
        gz.open_galaxyzoo(tmp_path / "other.h5")
    with h5py.File(tmp_path / "flat.h5", "w") as fh:
        fh["images"] = np.zeros((2, 3, 4, 4), np.uint8)
    with pytest.raises(ImageFormatError, match=r"shape \(2, 3, 4, 4\); expected \(N, H, H, 3\)"):
        gz.open_galaxyzoo(tmp_path / "flat.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(ImageFormatError, match="not a readable HDF5 file"):
        gz.open_galaxyzoo(tmp_path / "junk.h5")


def test_galaxy10_without_h5py_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "g10.h5").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "gangal\[galaxy10\]"'):
        gz.open_galaxyzoo(tmp_path / "g10.h5")


# ---- through the plugin registry (needs the entry points installed) ----------------------
def test_sources_are_registered(tmp_path: Path) -> None:
    root = _kaggle_folder(tmp_path, ids=(1, 2, 3))
    zoo = open_data_source(f"galaxyzoo:{root}", select="Class1.1>0.1")
    assert isinstance(zoo, gz.GalaxyZooSource) and len(zoo) == 2
    synthetic = open_data_source("synthetic", n=4, seed=1)
    assert len(synthetic) == 4 and synthetic.truth()["angle"].shape == (4,)
    with pytest.raises(GangalError, match="takes no path"):
        open_data_source(f"synthetic:{tmp_path}")
    with pytest.raises(ConfigError, match="colour"):
        open_data_source("synthetic", colour="red")


# ---- the real sample ----------------------------------------------------------------------
@pytest.mark.realdata
def test_real_galaxyzoo_sample() -> None:
    source = gz.open_galaxyzoo(REAL)
    assert len(source) == 1400 and source.resolution == 424
    assert source.read(0).shape == (3, 424, 424)
    spirals = gz.open_galaxyzoo(REAL, catalogue=REAL / "labels.csv", select="spiral==1")
    assert 0 < len(spirals) < len(source)
    assert set(spirals.ids) <= set(source.ids)
    batches = ImageBatches(spirals, resolutions=(64, 128), batch_size=16, workers=2)
    b64, b128 = next(iter(batches.epoch(0)))
    assert b64.shape == (16, 3, 64, 64) and b128.shape == (16, 3, 128, 128)
    assert 0.0 <= float(b64.min()) and float(b128.max()) <= 1.0 and float(b128.std()) > 0.01
    batches.close()
