"""pipeline.py without TensorFlow: streamed tiles equal the whole image at sizes that are not
multiples of the tile, memory beyond the uint8 buffers does not grow with the photo, the metering
copy and the memory guard."""
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import data
import exposure
import pipeline

TILE, MARGIN = 48, 16


class BoxNets:
    """pipeline's per-tile steps as numpy stand-ins with a receptive radius of 2 (<= MARGIN):
    decompose blurs with a 5x5 box, relight multiplies by the ratio map."""

    @staticmethod
    def decompose_tile(image):
        from scipy.ndimage import uniform_filter
        blurred = uniform_filter(image, (5, 5, 1), mode='constant')
        return {'reflectance': image, 'illumination': blurred.mean(axis=2, keepdims=True), 'restored': blurred}

    @staticmethod
    def relight_tile(image, stages, ratio_map, mode):
        return np.clip(stages['restored'] * ratio_map * (1.0 if mode == 'fusion' else 0.5), 0.0, 1.0)


def dark_pixels(height, width, seed=0):
    coarse = Image.fromarray((np.random.default_rng(seed).random((4, 5, 3)) * 90).astype(np.uint8))
    return np.asarray(coarse.resize((width, height), Image.BILINEAR))


@pytest.mark.parametrize('size', [(100, 130), (49, 47), (1, 200), (96, 96)])
def test_streamed_tiles_equal_the_whole_image(size):
    pixels = dark_pixels(*size)
    chosen = exposure.Exposure(2.5)
    whole = pipeline.enhance(BoxNets, pixels, chosen, 'fusion', 0, MARGIN)
    tiled = pipeline.enhance(BoxNets, pixels, chosen, 'fusion', TILE, MARGIN)
    np.testing.assert_array_equal(tiled, whole)
    stages = pipeline.decompose(BoxNets, data.normalise(pixels), TILE, MARGIN)
    np.testing.assert_array_equal(pipeline.enhance(BoxNets, pixels, chosen, 'fusion', TILE, MARGIN,
                                                   stages=stages), whole)
    expected = data.to_uint8(BoxNets.relight_tile(None, BoxNets.decompose_tile(data.normalise(pixels)),
                                                  np.full(size + (1,), 2.5, np.float32), 'fusion'))
    np.testing.assert_array_equal(whole, expected)


def extra_peak(pixels):
    """Peak bytes traced while enhancing, beyond the input and the output buffers."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    output = pipeline.enhance(BoxNets, pixels, exposure.Exposure(2.0), 'fusion', TILE, MARGIN)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - output.nbytes


def test_memory_beyond_the_uint8_buffers_does_not_grow_with_the_photo():
    small, large = dark_pixels(200, 300), dark_pixels(400, 600)      # 4x the pixels
    extra_small, extra_large = extra_peak(small), extra_peak(large)
    # the tiles' float copies only: about (48 + 32)^2 px x 3 channels x a few float32 arrays
    assert extra_large < 1.3 * extra_small
    assert extra_large < 0.5 * large.nbytes * 4                     # a float32 copy would be 4x the pixels


def test_the_metering_copy_is_a_box_downscale_of_the_whole_photo():
    pixels = dark_pixels(2200, 1800)                               # 3.96 MP: factor 2
    copy, factor = pipeline.metering_copy(pixels)
    assert factor == 2 and copy.shape == (1100, 900, 3) and copy.dtype == np.float32
    np.testing.assert_allclose(copy[10, 20], pixels[20:22, 40:42].reshape(-1, 3).mean(0) / 255, rtol=1e-6)
    small = dark_pixels(1000, 1000)                                # <= METER_MAX_PIXELS
    assert pipeline.metering_copy(small)[1] == 1
    np.testing.assert_array_equal(pipeline.metering_copy(small)[0], data.to_float(small))


def test_the_memory_guard_refuses_a_photo_before_decoding(tmp_path):
    path = tmp_path / 'big.png'
    Image.new('RGB', (4000, 3000)).save(path)
    needed = pipeline.peak_bytes(3000, 4000, 768)
    assert needed == 12e6 * pipeline.PHOTO_BYTES_PER_PIXEL + 1024 ** 2 * pipeline.TILE_BYTES_PER_PIXEL   # 768 + 2 x 128
    with pytest.raises(data.ImageError) as error:
        data.read_pixels(str(path), check_size=pipeline.memory_check(768, available=needed - 1))
    assert str(error.value).startswith('%s: 4000x3000 = 12.0 MP needs about %.1f GiB, this machine has'
                                       % (path, needed / 2 ** 30))
    pixels, _ = data.read_pixels(str(path), check_size=pipeline.memory_check(768, available=needed))
    assert pixels.shape == (3000, 4000, 3)
