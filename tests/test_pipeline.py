"""pipeline.py without TensorFlow: streamed tiles equal the whole image at sizes that are not
multiples of the tile, memory beyond the uint8 buffers grows with the photo's width only (the band
of R and I), the metering copy and the memory guard."""
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import data
import exposure
import pipeline

TILE = 48
MARGINS = pipeline.Margins(decompose=16, restore=16, inner=16)   # each stand-in net reads 2 px around


class BoxNets:
    """pipeline's per-tile steps as numpy stand-ins with a receptive radius of 2 each: decompose blurs
    with a 5x5 box, restore blurs R and I again and keeps the inner window, relight multiplies by the
    ratio map."""

    @staticmethod
    def decompose_tile(image):
        from scipy.ndimage import uniform_filter
        blurred = uniform_filter(image, (5, 5, 1), mode='constant')
        return {'reflectance': image, 'illumination': blurred.mean(axis=2, keepdims=True)}

    @staticmethod
    def restore_tile(reflectance, illumination, inner):
        from scipy.ndimage import uniform_filter
        top, left, height, width = inner
        restored = uniform_filter(reflectance * illumination, (5, 5, 1), mode='constant')
        return restored[top:top + height, left:left + width]

    @staticmethod
    def relight_tile(image, stages, ratio_map, mode):
        return np.clip(stages['restored'] * ratio_map * (1.0 if mode == 'fusion' else 0.5), 0.0, 1.0)


def dark_pixels(height, width, seed=0):
    coarse = Image.fromarray((np.random.default_rng(seed).random((4, 5, 3)) * 90).astype(np.uint8))
    return np.asarray(coarse.resize((width, height), Image.BILINEAR))


@pytest.mark.parametrize('size', [(100, 130), (49, 47), (1, 200), (96, 96), (150, 40)])
def test_streamed_tiles_equal_the_whole_image(size):
    pixels = dark_pixels(*size)
    chosen = exposure.Exposure(2.5)
    whole = pipeline.enhance(BoxNets, pixels, chosen, 'fusion', 0, margins=MARGINS)
    tiled = pipeline.enhance(BoxNets, pixels, chosen, 'fusion', TILE, margins=MARGINS)
    np.testing.assert_array_equal(tiled, whole)
    stages = pipeline.decompose(BoxNets, data.normalise(pixels), TILE, MARGINS)
    np.testing.assert_array_equal(pipeline.enhance(BoxNets, pixels, chosen, 'fusion', TILE, stages=stages,
                                                   margins=MARGINS), whole)
    image = data.normalise(pixels)
    decomposed = BoxNets.decompose_tile(image)
    restored = BoxNets.restore_tile(decomposed['reflectance'], decomposed['illumination'], (0, 0) + size)
    expected = data.to_uint8(BoxNets.relight_tile(None, dict(decomposed, restored=restored),
                                                  np.full(size + (1,), 2.5, np.float32), 'fusion'))
    np.testing.assert_array_equal(whole, expected)


def test_a_cpu_that_keeps_buffers_per_shape_cuts_large_photos_into_smaller_cores(monkeypatch):
    monkeypatch.setattr(pipeline.utils, 'keeps_shape_buffers', lambda: True)
    rows = pipeline.tile_rows(3000, 4000, 1024)
    assert (len(rows), len(rows[0])) == (6, 8)        # cores of at most 512 px, not 3 x 4 of about 1000
    assert max(part.stop - part.start for row in rows for tile in row for part in tile.core) == 512
    assert len(pipeline.tile_rows(1000, 1000, 1024)) == 1          # a photo that fits one tile stays one
    monkeypatch.setattr(pipeline, 'SHAPE_KEEPING_CORE', 32)
    pixels, chosen = dark_pixels(130, 170), exposure.Exposure(2.5)
    decomposed = []

    class Counting(BoxNets):
        @staticmethod
        def decompose_tile(image):
            decomposed.append(image.shape[:2])
            return BoxNets.decompose_tile(image)
    tiled = pipeline.enhance(Counting, pixels, chosen, 'fusion', TILE, margins=MARGINS)
    np.testing.assert_array_equal(tiled, pipeline.enhance(BoxNets, pixels, chosen, 'fusion', 0, margins=MARGINS))
    assert max(max(shape) for shape in decomposed) == 32 + 2 * MARGINS.decompose     # DecomNet's blocks too
    monkeypatch.setattr(pipeline.utils, 'keeps_shape_buffers', lambda: False)
    assert (len(pipeline.tile_rows(3000, 4000, 1024)), len(pipeline.tile_rows(3000, 4000, 1024)[0])) == (3, 4)


def test_decomnet_runs_once_per_pixel_and_the_restoration_on_windows_around_the_cores(monkeypatch):
    """Each net's share of the work: DecomNet's blocks (their cores) cover every pixel once, the band
    kept from one row of tiles to the next; the restoration reads each core with MARGINS.restore
    around it (clipped to the image) and gives its inner window."""
    height, width = 480, 400
    covered = np.zeros((height, width), int)
    original = pipeline.Band._decompose

    def counting(band, top, bottom, left, right):
        covered[top:bottom, left:right] += 1
        return original(band, top, bottom, left, right)
    monkeypatch.setattr(pipeline.Band, '_decompose', counting)
    windows = []

    class Counting(BoxNets):
        @staticmethod
        def restore_tile(reflectance, illumination, inner):
            windows.append((reflectance.shape[:2], inner))
            return BoxNets.restore_tile(reflectance, illumination, inner)
    pipeline.enhance(Counting, dark_pixels(height, width), exposure.Exposure(2.0), 'fusion', 96, margins=MARGINS)
    assert (covered == 1).all()
    tiles = [tile for row in pipeline.tile_rows(height, width, 96, MARGINS) for tile in row]
    assert len(windows) == len(tiles) == 5 * 5
    for (shape, inner), tile in zip(windows, tiles):
        assert shape == tuple(window.stop - window.start for window in tile.window)
        assert inner[2:] == tuple(part.stop - part.start for part in tile.inner)
    middle = tiles[6]                   # an inner tile: full margins; 400 px in 5 equal cores of 80
    assert [window.stop - window.start for window in middle.window] == [96 + 2 * 16, 80 + 2 * 16]


def extra_peak(pixels):
    """Peak bytes traced while enhancing, beyond the input and the output buffers."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    output = pipeline.enhance(BoxNets, pixels, exposure.Exposure(2.0), 'fusion', TILE, margins=MARGINS)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - output.nbytes


def test_memory_beyond_the_uint8_buffers_grows_with_the_width_only():
    small, higher, wider = dark_pixels(200, 300), dark_pixels(800, 300), dark_pixels(200, 1200)   # 4x the pixels
    extra_small, extra_higher, extra_wider = extra_peak(small), extra_peak(higher), extra_peak(wider)
    assert extra_higher < 1.3 * extra_small                     # a tile and a band of R and I
    band = pipeline.BAND_BYTES_PER_PIXEL * (TILE + 2 * MARGINS.restore) * 1200
    assert extra_wider < 1.3 * extra_small + band               # the band is as wide as the photo
    assert extra_higher < 0.5 * higher.nbytes * 4               # a float32 copy would be 4x the pixels


def test_the_metering_copy_is_a_box_downscale_of_the_whole_photo():
    pixels = dark_pixels(2200, 1800)                               # 3.96 MP: factor 2
    copy, factor = pipeline.metering_copy(pixels)
    assert factor == 2 and copy.shape == (1100, 900, 3) and copy.dtype == np.float32
    np.testing.assert_allclose(copy[10, 20], pixels[20:22, 40:42].reshape(-1, 3).mean(0) / 255, rtol=1e-6)
    small = dark_pixels(1000, 1000)                                # <= METER_MAX_PIXELS
    assert pipeline.metering_copy(small)[1] == 1
    np.testing.assert_array_equal(pipeline.metering_copy(small)[0], data.to_float(small))


def test_the_memory_guard_counts_what_a_cpu_keeps_per_tile_shape(monkeypatch):
    monkeypatch.setattr(pipeline.utils, 'keeps_shape_buffers', lambda: False)
    plain = pipeline.peak_bytes(3000, 4000, 512)                   # the same 512-px cores, nothing kept
    monkeypatch.setattr(pipeline.utils, 'keeps_shape_buffers', lambda: True)
    # 4000 = 7 x 512 + 416, 3000 = 5 x 512 + 440: windows 608, 704 and 512 px wide, 608, 704 and 536 high
    shapes = (608 + 704 + 536) * (608 + 704 + 512)
    assert pipeline.peak_bytes(3000, 4000, 1024) == plain + pipeline.SHAPE_BYTES_PER_PIXEL * shapes
    monkeypatch.setattr(pipeline, 'RETAINED_LIMIT', 100 << 20)      # sessions.py reopens past it
    assert pipeline.peak_bytes(3000, 4000, 1024) == plain + (100 << 20)


def test_the_memory_guard_refuses_a_photo_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.utils, 'keeps_shape_buffers', lambda: False)     # 1024-px cores
    path = tmp_path / 'big.png'
    Image.new('RGB', (4000, 3000)).save(path)
    needed = pipeline.peak_bytes(3000, 4000, 1024)
    core = 1008                          # 4000 = 3 x 1008 + 976 and 3000 = 2 x 1008 + 984: 4 x 3 equal cores
    window = (core + 2 * pipeline.MARGINS.restore) ** 2            # an inner tile's restoration window
    band = (core + 2 * pipeline.MARGINS.restore) * 4000
    assert needed == (12e6 * pipeline.PHOTO_BYTES_PER_PIXEL + band * pipeline.BAND_BYTES_PER_PIXEL
                      + window * pipeline.TILE_BYTES_PER_PIXEL)
    with pytest.raises(data.ImageError) as error:
        data.read_pixels(str(path), check_size=pipeline.memory_check(1024, available=needed - 1))
    assert str(error.value).startswith('%s: 4000x3000 = 12.0 MP needs about %.1f GiB, this machine has'
                                       % (path, needed / 2 ** 30))
    pixels, _ = data.read_pixels(str(path), check_size=pipeline.memory_check(1024, available=needed))
    assert pixels.shape == (3000, 4000, 3)
