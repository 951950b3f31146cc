"""Image reading and writing (spec 2.1-2.2), augmentation (2.3), pairing and patch sampling (2.4)."""
import os

import numpy as np
import pytest
from PIL import Image

import data
import utils


def test_normalise_is_a_min_max_stretch_over_all_channels():
    image = np.array([[[0.2, 0.4, 0.6]], [[0.3, 0.5, 0.2]]], np.float32)
    np.testing.assert_allclose(data.normalise(image), (image - 0.2) / 0.4, atol=1e-7)
    assert data.normalise(image).dtype == np.float32
    flat = np.full((3, 3, 3), 0.7, np.float32)
    np.testing.assert_array_equal(data.normalise(flat), np.zeros_like(flat))   # 0.001 floor
    nearly_flat = flat + np.float32(0.0005) * (np.arange(27).reshape(3, 3, 3) > 13)
    assert data.normalise(nearly_flat).max() == pytest.approx(0.5, abs=1e-3)


def test_save_truncates_toward_zero(tmp_path):
    values = np.array([[0.99999, 0.5, 1.2], [-0.1, 0.003, 1 / 255]], np.float32)[..., None]
    path = str(tmp_path / 'x.png')
    data.save_image(path, values)
    saved = np.asarray(Image.open(path))
    np.testing.assert_array_equal(saved, [[254, 127, 255], [0, 0, 1]])
    assert Image.open(path).mode == 'L'
    data.save_image(path, data.to_uint8(values))   # what evaluate.py hands its writer thread
    np.testing.assert_array_equal(np.asarray(Image.open(path)), saved)


@pytest.mark.parametrize('mode,equivalent', [
    (0, lambda a: a), (1, lambda a: a[::-1]), (2, lambda a: np.rot90(a)),
    (3, lambda a: a.transpose(1, 0, 2)), (4, lambda a: a[::-1, ::-1]), (5, lambda a: a[:, ::-1]),
    (6, lambda a: np.rot90(a, -1)), (7, lambda a: a[::-1, ::-1].transpose(1, 0, 2)),
])
def test_augmentation_table(mode, equivalent):
    array = np.arange(4 * 4 * 2).reshape(4, 4, 2)
    np.testing.assert_array_equal(data.augment(array, mode), equivalent(array))


def test_sampler_one_patch_per_item_per_pass_same_window_and_mode():
    """Each item appears once per pass; all arrays of a sample share crop and mode; passes
    after the first are reshuffled; a restored state continues the exact sequence."""
    items = [(np.full((10, 12, 1), k, np.float32) + np.arange(120).reshape(10, 12, 1) / 1000,
              np.full((10, 12, 1), k, np.float32) + np.arange(120).reshape(10, 12, 1) / 1000)
             for k in range(5)]
    sampler = data.PatchSampler(items, 4, seed=3)
    first_pass = sampler.next_batch(5)
    assert [int(p[0, 0, 0]) for p in first_pass[0]] == [0, 1, 2, 3, 4]   # sorted order first
    np.testing.assert_array_equal(first_pass[0], first_pass[1])
    passes = [sorted(int(p[0, 0, 0]) for p in sampler.next_batch(5)[0]) for _ in range(4)]
    assert all(p == [0, 1, 2, 3, 4] for p in passes)
    state = sampler.state()
    expected = sampler.next_batch(7)
    restored = data.PatchSampler(items, 4, seed=99)
    restored.restore(state)
    for a, b in zip(expected, restored.next_batch(7)):
        np.testing.assert_array_equal(a, b)


def test_sampler_uses_all_eight_modes_and_full_crop_range():
    image = np.arange(6 * 7, dtype=np.float32).reshape(6, 7, 1)
    sampler = data.PatchSampler([(image,)], 3, seed=0)
    seen_modes, corners = set(), set()
    originals = {(x, y): image[x:x + 3, y:y + 3] for x in range(4) for y in range(5)}
    for _ in range(600):
        patch = sampler.next_batch(1)[0][0]
        for (x, y), crop in originals.items():
            for mode in range(8):
                if np.array_equal(data.augment(crop, mode), patch):
                    seen_modes.add(mode)
                    corners.add((x, y))
    assert seen_modes == set(range(8))
    assert corners == set(originals)


def write(path, array, mode=None, **kwargs):
    Image.fromarray(array, mode).save(path, **kwargs) if mode else Image.fromarray(array).save(path, **kwargs)
    return str(path)


def test_find_pairs_names_the_first_mismatches(tmp_path):
    for sub, names in (('low', ['1.png', '2.png', '3.png']), ('high', ['1.png', '3.png', '4.png'])):
        os.makedirs(tmp_path / sub)
        for name in names:
            write(tmp_path / sub / name, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(utils.UserError, match=r'no partner in .*high for 2\.png.*no partner in .*low for 4\.png'):
        data.find_pairs(str(tmp_path / 'low'), str(tmp_path / 'high'))


def test_pairs_are_in_python_string_order(tmp_path):
    for sub in ('low', 'high'):
        os.makedirs(tmp_path / sub)
        for name in ('2.png', '10.png', '1.png', '100.png'):
            write(tmp_path / sub / name, np.zeros((4, 4, 3), np.uint8))
    pairs = data.find_pairs(str(tmp_path / 'low'), str(tmp_path / 'high'))
    assert [os.path.basename(p) for p, _ in pairs] == ['1.png', '10.png', '100.png', '2.png']


def test_read_image_modes(tmp_path):
    rgb = (np.arange(5 * 6 * 3) % 256).astype(np.uint8).reshape(5, 6, 3)
    gray = rgb[..., 0]
    array, notes = data.read_image(write(tmp_path / 'rgb.png', rgb))
    np.testing.assert_array_equal(array, rgb / np.float32(255))
    assert notes == [] and array.dtype == np.float32
    array, _ = data.read_image(write(tmp_path / 'gray.png', gray))
    np.testing.assert_array_equal(array, np.repeat(gray[..., None], 3, 2) / np.float32(255))
    rgba = np.concatenate([rgb, np.full((5, 6, 1), 7, np.uint8)], axis=2)
    array, notes = data.read_image(write(tmp_path / 'rgba.png', rgba))
    np.testing.assert_array_equal(array, rgb / np.float32(255))
    assert notes == ['alpha channel dropped']
    palette = Image.fromarray(rgb).convert('P', palette=Image.ADAPTIVE, colors=8)
    palette.save(tmp_path / 'palette.png')
    np.testing.assert_array_equal(data.read_image(str(tmp_path / 'palette.png'))[0],
                                  np.asarray(palette.convert('RGB')) / np.float32(255))
    sixteen = (np.arange(30).reshape(5, 6) * 2000).astype(np.uint16)
    array, _ = data.read_image(write(tmp_path / 'sixteen.png', sixteen))
    np.testing.assert_allclose(array[..., 1], sixteen / 65535.0, atol=1e-7)
    assert array.max() > 0.88   # 58000 / 65535, not clipped at 255/65535


def test_read_image_applies_exif_orientation(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    image[0, 0] = 255                                  # a marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6                                   # "rotate 90 CW to display"
    path = str(tmp_path / 'rotated.jpg')
    Image.fromarray(image).save(path, exif=exif, quality=100)
    array, _ = data.read_image(path)
    assert array.shape == (6, 4, 3)                    # displayed portrait
    assert array[0, -1].mean() > 0.5                   # the marker moved to the top-right


@pytest.mark.parametrize('content,reason', [
    (b'', 'empty file'), (b'hello, I am text', 'not an image file'),
    (None, 'corrupt or truncated'),
])
def test_unreadable_files_raise_one_line_errors(tmp_path, content, reason):
    path = tmp_path / 'bad.png'
    if content is None:
        write(path, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        content = path.read_bytes()[:300]
    path.write_bytes(content)
    with pytest.raises(data.ImageError, match=reason) as error:
        data.read_image(str(path))
    assert str(path) in str(error.value) and '\n' not in str(error.value)


def test_decompression_bomb_is_refused_unless_the_limit_is_raised(tmp_path):
    path = write(tmp_path / 'big.png', np.zeros((300, 400), np.uint8))
    with pytest.raises(data.ImageError, match='above the limit of 100000'):
        data.read_image(path, max_pixels=100000)
    assert data.read_image(path, max_pixels=120000)[0].shape == (300, 400, 3)


def test_authors_split_takes_the_slices_and_refuses_too_few_pairs():
    names, pairs = [str(i) for i in range(480)], list(range(480))
    train, samples = data.split_for_authors('root', names, pairs, slice(0, 466), slice(467, 480))
    assert train == list(range(466)) and len(samples) == 13 and samples[0] == ('467', 467)
    with pytest.raises(utils.UserError, match='needs >= 480 pairs, root/our485 has 479'):
        data.split_for_authors('root', names[:479], pairs[:479], slice(0, 466), slice(467, 480))


def test_the_metering_filters_equal_scipys_and_numpys():
    """data.gaussian and box_mean (OpenCV) against scipy.ndimage with mode 'nearest', in float64 and
    float32; data.channel_maximum against max(axis=2); data.percentile (one partition of a window) against
    np.percentile, with ties."""
    from scipy.ndimage import gaussian_filter, uniform_filter
    rng = np.random.default_rng(3)
    image = rng.random((61, 83)) * 255
    for sigma in (0.5, 1.0, 1.875, 7.5):
        np.testing.assert_allclose(data.gaussian(image, sigma), gaussian_filter(image, sigma, mode='nearest'),
                                   atol=1e-9)
        single = data.gaussian(image.astype(np.float32), sigma)
        assert single.dtype == np.float32
        np.testing.assert_allclose(single, gaussian_filter(image, sigma, mode='nearest'), atol=2e-3)
    colour = rng.random((20, 30, 3))
    np.testing.assert_allclose(data.gaussian(colour, 2.0), gaussian_filter(colour, (2.0, 2.0, 0), mode='nearest'),
                               atol=1e-12)
    np.testing.assert_allclose(data.box_mean(image, 15), uniform_filter(image, 15, mode='nearest'), atol=1e-9)
    np.testing.assert_array_equal(data.channel_maximum(colour), colour.max(axis=2))
    for size in (1, 2, 5, 40_000, 300_000):
        for values in (rng.random(size).astype(np.float32), np.round(rng.random(size) * 3)):
            for q in (0, 0.5, 20, 50, 99, 99.5, 100):
                assert data.percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-6, abs=1e-9)
    sorted_values = np.sort(rng.random(300_000))                  # a strided sample of an ordered array
    assert data.percentile(sorted_values, 50) == np.percentile(sorted_values, 50)


def test_percentile_partitions_a_window_of_a_periodic_array(monkeypatch):
    """data.percentile on values whose pattern repeats at the step a strided sample would take (a
    codec's blocks, an image's channels) equals np.percentile and partitions only the window between
    its sampled quantiles: its random sample sees every phase (a strided one saw one, missed the
    rank and partitioned everything: 28 ms on a 720p frame's noise, not 6)."""
    rng = np.random.default_rng(5)
    count = 60 * data.PERCENTILE_SAMPLE
    values = (rng.random(count) + 10.0 * (np.arange(count) % 12 == 0)).astype(np.float32)
    expected = {q: np.percentile(values, q) for q in (20, 50, 80)}
    partitioned, partition = [], np.partition
    monkeypatch.setattr(np, 'partition', lambda array, kth: partitioned.append(array.size) or partition(array, kth))
    for q, value in expected.items():
        assert data.percentile(values, q) == pytest.approx(value, rel=1e-6)
    assert len(partitioned) == 3 and max(partitioned) < 0.1 * count, partitioned
