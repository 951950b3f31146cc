"""Metrics (spec 8) and weights stored as .npz parts."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import data
import utils
from conftest import LOL, needs_lol


def test_metrics_follow_the_spec_protocol():
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    output = np.clip(truth.astype(int) + rng.integers(-9, 10, truth.shape), 0, 255).astype(np.uint8)
    mse = np.mean((truth.astype(np.float64) - output) ** 2)
    assert utils.psnr(truth, output) == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-9)
    assert utils.ssim_metric(truth, output) == pytest.approx(structural_similarity(
        truth, output, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255), abs=1e-12)


@needs_lol
def test_metrics_reproduce_the_spec_table():
    """Spec 8, pairs A (eval15 low/1 vs high/1) and B (low x 4.967, clipped, truncated)."""
    low = np.asarray(Image.open(os.path.join(LOL, 'eval15', 'low', '1.png')))
    high = data.read_uint8_rgb(os.path.join(LOL, 'eval15', 'high', '1.png'))
    np.testing.assert_array_equal(high, np.asarray(Image.open(os.path.join(LOL, 'eval15', 'high', '1.png'))))
    gained = np.clip(low.astype(np.float32) * np.float32(4.967), 0, 255).astype(np.uint8)
    assert utils.psnr(high, low) == pytest.approx(7.2193, abs=1e-4)
    assert utils.ssim_metric(high, low) == pytest.approx(0.2340, abs=1e-4)
    assert utils.psnr(high, gained) == pytest.approx(18.1131, abs=2e-3)
    assert utils.ssim_metric(high, gained) == pytest.approx(0.6639, abs=2e-3)


def test_npz_parts_merge_into_one_set_of_named_arrays(tmp_path):
    first = {'Net/a/weights': np.arange(6, dtype=np.float32).reshape(2, 3)}
    second = {'Net/b/biases': np.ones(3, np.float32), 'Net/c/biases': np.zeros(2, np.float32)}
    np.savez(tmp_path / 'part0.npz', **first)
    np.savez(tmp_path / 'part1.npz', **second)
    merged = utils.load_npz_parts([str(tmp_path / 'part0.npz'), str(tmp_path / 'part1.npz')])
    assert sorted(merged) == sorted({**first, **second})
    for name, value in {**first, **second}.items():
        np.testing.assert_array_equal(merged[name], value)


MAPPED_PROBE = '''
import ctypes, sys
import numpy as np
sys.path.insert(0, %r)
import utils
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost'.split()]
libc = ctypes.CDLL('libc.so.6')
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == 'map':
    assert utils.map_large_allocations()
np.ones(30 << 20, np.uint8)              # freeing a mapped 30 MB raises glibc's dynamic threshold
before = libc.mallinfo2().hblkhd
kept = np.ones(5 << 20, np.uint8)
print(libc.mallinfo2().hblkhd - before)
'''


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='mallopt and mallinfo2 are glibc\'s')
def test_large_arrays_are_mapped_after_map_large_allocations():
    """After utils.map_large_allocations a 5 MB array is mapped on its own (glibc's mallinfo2),
    where glibc's dynamic threshold, raised by a freed 30 MB array, serves it from the heap."""
    probe = MAPPED_PROBE % os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mapped = [int(subprocess.run([sys.executable, '-c', probe, how], capture_output=True, text=True,
                                 check=True).stdout) for how in ('default', 'map')]
    assert mapped[0] < 5 << 20 <= mapped[1]
