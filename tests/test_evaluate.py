"""evaluate.py end to end: outputs, the metrics table, the demo, naming rules, tiling."""
import os
import re
import struct

import numpy as np
import pytest
from PIL import Image

import brightness
import data
import evaluate
import exposure
import pipeline
import sessions
import utils
from conftest import write_pairs


def run_cli(capsys, *argv):
    status = evaluate.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def table_rows(text):
    """{image: (ratio, psnr, ssim)} parsed from the printed table."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r'^(\S+\.\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$', line)
        if match:
            rows[match.group(1)] = tuple(float(v) for v in match.groups()[1:])
    return rows


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('pairs'))
    write_pairs(root, 2, (40, 56), seed=4)
    write_pairs(root, 1, (33, 17), seed=5, start=3)     # odd size
    return root


@pytest.mark.parametrize('extra,mode,ratio_text', [
    ([], 'plain', 'from the decomposed ground truth'),
    (['--ratio', '3.5'], 'fusion', '3.5 (fixed)'),
    (['--ratio', '2', '--mode', 'plain'], 'plain', '2 (fixed)'),
])
def test_folder_with_ground_truth_prints_metrics_of_the_written_files(
        random_checkpoints, pairs, tmp_path, capsys, extra, mode, ratio_text):
    output = str(tmp_path / 'out')
    status, out, _ = run_cli(capsys, '--input', os.path.join(pairs, 'low'), '--high', os.path.join(pairs, 'high'),
                             '--output', output, '--checkpoint_dir', random_checkpoints, '--no_progress', *extra)
    assert status == 0
    assert utils.METRIC_PROTOCOL in out
    assert 'mode %s, ratio %s' % (mode, ratio_text) in out
    assert 'precision float32' in out       # scored against ground truth: the authors' float32 on any CPU
    rows = table_rows(out)
    assert sorted(rows) == ['1.png', '2.png', '3.png']
    assert sorted(os.listdir(output)) == ['1_kindle.png', '2_kindle.png', '3_kindle.png', 'kindle_ratios.csv']
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    for name, (ratio, psnr, ssim) in rows.items():
        written = np.asarray(Image.open(os.path.join(output, name.replace('.png', '_kindle.png'))))
        truth = np.asarray(Image.open(os.path.join(pairs, 'high', name)))
        assert written.shape == truth.shape
        assert psnr == pytest.approx(peak_signal_noise_ratio(truth, written, data_range=255), abs=1e-4)
        assert ssim == pytest.approx(structural_similarity(
            truth, written, channel_axis=-1, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=255), abs=1e-4)
        if extra:
            assert ratio == float(extra[1])
    means = re.search(r'mean \(3 images\)\s+([\d.]+)\s+([\d.]+)', out).groups()
    assert float(means[0]) == pytest.approx(np.mean([r[1] for r in rows.values()]), abs=1e-4)


def test_ground_truth_ratio_is_the_plain_mode_estimator(random_checkpoints, pairs):
    kind = evaluate.KinD(random_checkpoints)
    low = data.load_image(os.path.join(pairs, 'low', '1.png'))
    high = data.load_image(os.path.join(pairs, 'high', '1.png'))
    expected = np.mean(kind.illumination(high) / (kind.illumination(low) + np.float32(1e-4)))
    assert kind.ground_truth_ratio(low, high) == pytest.approx(float(expected), rel=1e-6)
    plain = kind.enhance(low, 2.0, 'plain')
    assert plain.shape == low.shape and plain.dtype == np.float32
    kind.close()


def test_single_file_input_and_enhance_function(random_checkpoints, pairs, tmp_path, capsys):
    path = os.path.join(pairs, 'low', '3.png')
    status, out, _ = run_cli(capsys, '--input', path, '--output', str(tmp_path), '--ratio', '5',
                             '--checkpoint_dir', random_checkpoints, '--no_progress')
    assert status == 0 and sorted(os.listdir(tmp_path)) == ['3_kindle.png', 'kindle_ratios.csv']
    written = np.asarray(Image.open(tmp_path / '3_kindle.png'))
    expected = evaluate.enhance(data.load_image(path), checkpoint_dir=random_checkpoints)   # same precision: auto
    np.testing.assert_array_equal(written, data.to_uint8(expected))


def test_demo_runs_without_any_data(random_checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_cli(capsys, '--checkpoint_dir', random_checkpoints, '--no_progress')
    assert status == 0
    assert 'demo: no LOLdataset/eval15 found' in out
    rows = table_rows(out)
    assert sorted(rows) == sorted(n + '.png' for n in evaluate.DEMO_IMAGES)
    assert 'ratio auto (a tone curve' in out       # photos: --ratio auto is the default
    assert all(exposure.ALPHA_RANGE[0] <= r[0] <= exposure.ALPHA_RANGE[1] for r in rows.values())
    for name in evaluate.DEMO_IMAGES:
        assert os.path.isfile(tmp_path / 'results' / (name + '_kindle.png'))


def test_low_light_simulation_is_dark_noisy_and_seeded():
    import skimage.data
    original = skimage.data.coffee()
    dark = evaluate.simulate_low_light(original, np.random.default_rng(0))
    again = evaluate.simulate_low_light(original, np.random.default_rng(0))
    np.testing.assert_array_equal(dark, again)
    assert dark.dtype == np.uint8 and dark.shape == original.shape
    # a 0.08 exposure under a 2.2 gamma scales mid-tones by 0.08 ** (1 / 2.2) ~ 0.32
    assert 0.2 < dark.mean() / original.mean() < 0.45
    noise_free = np.round(255 * ((original / 255.0) ** 2.2 * 0.08) ** (1 / 2.2))
    assert 1.0 < np.std(dark - noise_free) < 10.0


def test_output_names_never_overwrite(random_checkpoints, tmp_path, capsys):
    folder = tmp_path / 'photos'
    folder.mkdir()
    image = np.random.default_rng(0).integers(0, 60, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(image).save(folder / 'a.png')
    Image.fromarray(image).save(folder / 'a.bmp')             # same stem
    Image.fromarray(image).save(folder / 'b_kindle.png')      # looks like an output
    (folder / 'b.png').write_bytes((folder / 'b_kindle.png').read_bytes())
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    status, out, _ = run_cli(capsys, '--input', str(folder), '--output', str(folder),
                             '--checkpoint_dir', random_checkpoints, '--no_progress')
    assert status == 0
    for name, content in before.items():
        assert (folder / name).read_bytes() == content          # no input was touched
    produced = sorted(set(os.listdir(folder)) - set(before))
    assert produced == ['a_kindle-1.png', 'a_kindle.png', 'b_kindle-1.png', 'b_kindle_kindle.png', 'kindle_ratios.csv']


def test_a_session_that_kept_too_much_for_new_shapes_is_reopened_with_the_same_numbers(random_checkpoints,
                                                                                      monkeypatch):
    kind = evaluate.KinD(random_checkpoints, tile_size=0)
    rng = np.random.default_rng(0)
    images = [rng.random(shape + (3,), np.float32) for shape in ((40, 56), (48, 40), (32, 64))]
    expected = [kind.enhance(image, 3.0) for image in images]     # every output run once: not counted
    kind.session.reopen()
    grown = iter(range(0, 1 << 40, 100 << 20))     # the process grows by 100 MiB over each counted run
    monkeypatch.setattr(utils, 'resident_bytes', lambda: next(grown))
    monkeypatch.setattr(pipeline, 'RETAINED_LIMIT', 250 << 20)
    monkeypatch.setattr(sessions, 'RETAINED_FLOOR', 1 << 40)
    reopened = kind.session.reopened
    first = [kind.enhance(images[0], 3.0) for _ in range(2)]       # 3 new shapes, then none
    assert (kind.session.retained, kind.session.reopened) == (300 << 20, reopened)
    second = kind.enhance(images[1], 3.0)             # its first run finds 300 MiB kept: reopened first
    assert (kind.session.retained, kind.session.reopened) == (300 << 20, reopened + 1)
    monkeypatch.setattr(pipeline, 'RETAINED_LIMIT', 1 << 40)
    monkeypatch.setattr(sessions, 'RETAINED_FLOOR', 250 << 20)
    monkeypatch.setattr(sessions, 'RESIDENT_HIGH', 1 << 41)        # the floor binds only above this
    third = kind.enhance(images[2], 3.0)
    assert (kind.session.retained, kind.session.reopened) == (600 << 20, reopened + 1)
    monkeypatch.setattr(sessions, 'RESIDENT_HIGH', 0)
    again = kind.enhance(images[0], 3.0)
    assert (kind.session.retained, kind.session.reopened) == (300 << 20, reopened + 2)
    for output, image in zip(first + [second, third, again], [0, 0, 1, 2, 0]):
        np.testing.assert_array_equal(output, expected[image])
    kind.close()


def _inter_op_threads():
    """Thread ids of TensorFlow's inter-op threads (per-session pools name theirs tf_Compute)."""
    def name(thread):
        with open('/proc/self/task/%s/comm' % thread) as stream:
            return stream.read().strip()
    return {thread for thread in os.listdir('/proc/self/task') if name(thread) == 'tf_Compute'}


@pytest.mark.skipif(not os.path.isdir('/proc/self/task'), reason='needs Linux /proc')
def test_a_session_runs_on_one_inter_op_thread_of_its_own_that_closes_with_it(random_checkpoints):
    """oneDNN keeps a primitive (and its buffers) per shape in each thread that ran it: one inter-op
    thread keeps one copy, and reopening frees it only if the thread closes with the session."""
    image = np.random.default_rng(1).random((40, 56, 3), np.float32)
    before = _inter_op_threads()
    kind = evaluate.KinD(random_checkpoints, tile_size=0)
    kind.enhance(image, 3.0)
    first = _inter_op_threads() - before
    assert len(first) == 1
    kind.session.reopen()
    kind.enhance(image, 3.0)
    second = _inter_op_threads() - before
    assert len(second) == 1 and not second & first
    kind.close()


def test_tiles_cover_the_image_on_the_grid():
    """Cores of the tile size on the 16-px grid, the restoration's windows MARGINS.restore and the
    inner windows MARGINS.inner around them (clipped to the image)."""
    margins = pipeline.MARGINS
    # DecomNet's radius 13; the inner window max(decoder's last levels 15, gray trick 12, adjustment 4)
    # and the restoration encoder's reach of 78 px beyond it (each level cut; its radius is 108)
    assert margins == (16, 96, 16)
    spans = pipeline.spans(1000, 256, margins)
    assert [core for _, _, core in spans] == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    # the fewest cores of at most the tile size, equal on the grid (not 3 full ones and a thin one)
    assert [core for _, _, core in pipeline.spans(1800, 512, margins)] == [
        (0, 464), (464, 928), (928, 1392), (1392, 1800)]
    assert [core for _, _, core in pipeline.spans(4000, 1024, margins)] == [
        (0, 1008), (1008, 2016), (2016, 3024), (3024, 4000)]
    for length in range(16, 3000, 7):
        cores = [core for _, _, core in pipeline.spans(length, 256, margins)]
        assert len(cores) == -(-length // 256) and max(stop - start for start, stop in cores) <= 256
    assert all(part[0] % 16 == 0 for span in spans for part in span)
    for (window, inner, core) in spans:
        assert core[0] - window[0] in (0, 96) and window[1] - core[1] in (0, 96)
        assert core[0] - inner[0] in (0, 16) and inner[1] - core[1] in (0, 16)


@pytest.mark.slow
def test_tiled_equals_untiled_on_a_large_image(random_checkpoints):
    """1200x1800 in 512-px tiles (3 x 4 tiles) equals the whole-image result."""
    rng = np.random.default_rng(0)
    coarse = rng.random((12, 18, 3)).astype(np.float32)
    smooth = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((1800, 1200), Image.BICUBIC))
    image = data.normalise(smooth / 255.0 * 0.2 + rng.normal(0, 0.01, smooth.shape))
    kind = evaluate.KinD(random_checkpoints, tile_size=0)
    whole = kind.enhance(image, 5.0, 'fusion')
    kind.tile_size = 512
    tiled = kind.enhance(image, 5.0, 'fusion')
    assert np.abs(tiled - whole).max() <= 1.0 / 255
    assert np.abs(tiled - whole).max() < 1e-5     # in fact equal to float32 round-off
    kind.close()


def test_stages_are_the_pipeline_s_intermediates_tiled_or_not(random_checkpoints):
    """KinD.stages gives R, I, R-hat and I-hat whose product is the plain output, and tiles like enhance."""
    rng = np.random.default_rng(3)
    image = data.normalise(rng.random((200, 296, 3)) * 0.2)
    kind = evaluate.KinD(random_checkpoints, tile_size=0)
    whole = kind.stages(image, 4.0)
    assert set(whole) == set(evaluate.STAGES)
    assert [whole[name].shape[-1] for name in evaluate.STAGES] == [3, 1, 3, 1]
    np.testing.assert_array_equal(whole['restored'] * whole['adjusted'], kind.enhance(image, 4.0, 'plain'))
    kind.tile_size = 64
    tiled = kind.stages(image, 4.0)
    for name in evaluate.STAGES:
        assert np.abs(tiled[name] - whole[name]).max() < 1e-5, name
    subset = kind.stages(image, 4.0, names=('adjusted',))
    assert list(subset) == ['adjusted'] and np.abs(subset['adjusted'] - whole['adjusted']).max() < 1e-5
    assert np.abs(kind.adjust(image, kind.decompose(image), 4.0) - whole['adjusted']).max() < 1e-5   # stored I
    with pytest.raises(utils.UserError, match='restord'):
        kind.stages(image, 4.0, names=('restord',))
    kind.close()


def constant_brightness_fit(mean):
    """A brightness fit (auto_ratio.json) that predicts the output mean `mean` for every input."""
    import brightness
    count = len(brightness.FEATURE_NAMES)
    return {'feature_names': list(brightness.FEATURE_NAMES), 'feature_mean': [0.0] * count,
            'feature_scale': [1.0] * count, 'weights': [0.0] * count, 'intercept': np.log(mean),
            'clip': [np.log(mean)] * 2}


def test_metering_with_or_without_the_fit_whole_and_tiled(random_checkpoints, pairs, tmp_path, capsys):
    import json
    import shutil
    checkpoints = tmp_path / 'ck'
    shutil.copytree(random_checkpoints, checkpoints)
    fit_file = checkpoints / 'illumination_adjust_net_train' / 'auto_ratio.json'
    common = ['--input', os.path.join(pairs, 'low'), '--output', str(tmp_path / 'o'),
              '--checkpoint_dir', str(checkpoints), '--no_progress', '--ratio', 'auto']
    status, out, _ = run_cli(capsys, *common)                   # no fit: metered without the regression
    assert status == 0 and 'ratio auto (a tone curve' in out
    fit_file.write_text(json.dumps({'log_scale': 0.5, 'exponent': -0.75}))     # an older version's fit
    status, out, _ = run_cli(capsys, *common)
    assert status == 1 and "not a fit of this version's brightness features" in out
    fit_file.write_text(json.dumps(constant_brightness_fit(0.4)))
    pixels = data.read_pixels(os.path.join(pairs, 'low', '2.png'))[0]
    raw, image = data.to_float(pixels), data.normalise(pixels)
    results = {}
    for tile_size in (0, 32):                      # whole, and 4 tiles
        kind = evaluate.KinD(str(checkpoints), tile_size=tile_size)
        for mode in evaluate.MODES:
            # --ratio global: the metering of full passes at each alpha (enhance) chooses the same alpha
            output, chosen = kind.enhance_pixels(pixels, 'global', mode)
            expected = brightness.choose_ratio(raw, lambda a: kind.enhance(image, a, mode),
                                               brightness.lol_prediction(kind.brightness_fit(), raw))
            assert chosen.alpha == pytest.approx(expected, rel=1e-4) and chosen.source == 'global'
            np.testing.assert_array_equal(output, data.to_uint8(kind.enhance(image, chosen, mode)))
            # --ratio auto: the tone curve, whose file is the file of that curve
            output, chosen = kind.enhance_pixels(pixels, 'auto', mode)
            assert isinstance(chosen, exposure.ToneCurve)
            assert exposure.ALPHA_RANGE[0] <= chosen.alpha <= exposure.ALPHA_RANGE[1]
            np.testing.assert_array_equal(output, data.to_uint8(kind.enhance(image, chosen, mode)))
            np.testing.assert_array_equal(output, kind.enhance_pixels(pixels, chosen.at(chosen.alpha), mode)[0])
            results.setdefault(mode, []).append((output, chosen.alpha))
        kind.close()
    for (whole, alpha_whole), (tiled, alpha_tiled) in results.values():
        assert alpha_tiled == pytest.approx(alpha_whole, rel=1e-3) and np.abs(tiled.astype(int) - whole).max() <= 1
    status, out, _ = run_cli(capsys, *common, '--high', os.path.join(pairs, 'high'), '--overwrite')
    assert status == 0 and 'ratio auto (a tone curve' in out
    assert table_rows(out)['2.png'][0] == pytest.approx(results['fusion'][0][1], abs=1e-4)


def test_the_ratio_table_lists_each_image_and_is_never_overwritten(random_checkpoints, pairs, tmp_path, capsys):
    import csv
    output = tmp_path / 'o'
    common = ['--input', os.path.join(pairs, 'low'), '--output', str(output), '--checkpoint_dir',
              random_checkpoints, '--no_progress', '--ratio', '2.5', '--mode', 'plain']
    status, out, _ = run_cli(capsys, *common)
    assert status == 0 and 'kindle_ratios.csv' in out
    rows = list(csv.DictReader(open(output / 'kindle_ratios.csv')))
    assert [r['image'] for r in rows] == sorted(os.listdir(os.path.join(pairs, 'low')))
    for row in rows:
        saved = data.read_uint8_rgb(str(output / row['output']))
        raw = data.read_uint8_rgb(os.path.join(pairs, 'low', row['image']))
        assert float(row['alpha']) == 2.5 and row['mode'] == 'plain' and row['status'] == 'ok'
        assert float(row['output_mean']) == pytest.approx(saved.mean() / 255.0, abs=1e-4)
        assert float(row['input_mean']) == pytest.approx(raw.mean() / 255.0, abs=1e-4)
    status, out, _ = run_cli(capsys, *common[:-2], '--ratio', '3')
    assert status == 0 and 'kindle_ratios-1.csv' in out
    assert {r['alpha'] for r in csv.DictReader(open(output / 'kindle_ratios.csv'))} == {'2.5'}
    assert {r['alpha'] for r in csv.DictReader(open(output / 'kindle_ratios-1.csv'))} == {'3'}


def test_box_downscale_averages_blocks_in_bands(monkeypatch):
    array = np.arange(5 * 7 * 2, dtype=np.float32).reshape(5, 7, 2)
    small = data.box_downscale(array, 2)
    assert small.shape == (2, 3, 2) and small.dtype == np.float32
    np.testing.assert_allclose(small[1, 2], array[2:4, 4:6].reshape(-1, 2).mean(0))
    assert data.box_downscale(array, 1) is array
    pixels = np.random.default_rng(0).integers(0, 256, (103, 77, 3), dtype=np.uint8)
    expected = [[pixels[3 * i:3 * i + 3, 3 * j:3 * j + 3].mean(axis=(0, 1)) for j in range(25)] for i in range(34)]
    monkeypatch.setattr(data, 'BAND_ROWS', 7)                     # several bands, a ragged last one
    np.testing.assert_allclose(data.box_downscale(pixels, 3), expected, rtol=1e-6)
    copy, factor = pipeline.metering_copy(np.zeros((2060, 2060, 3), np.uint8))     # 2.01^2 x METER_MAX_PIXELS
    assert factor == 3 and copy.shape == (686, 686, 3) and copy.dtype == np.float32


def test_precision_auto_resolves_by_the_variable_then_the_cpu_flags(tmp_path, monkeypatch):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\nbogomips\t: 4000\n')
    assert utils.cpu_flags(str(info)) == {'fpu', 'sse', 'avx2', 'avx512f'}
    assert utils.cpu_flags(str(tmp_path / 'missing')) == set()
    monkeypatch.delenv(utils.PRECISION_VARIABLE, raising=False)
    assert utils.resolve_precision('auto', {'avx2', 'avx512f'}) == 'float32'
    assert utils.resolve_precision('auto', {'avx512f', 'avx512_bf16'}) == 'bfloat16'
    assert utils.resolve_precision('auto', {'amx_tile', 'amx_bf16'}) == 'bfloat16'
    assert utils.resolve_precision('float32', {'amx_bf16'}) == 'float32'
    assert utils.resolve_precision('bfloat16', set()) == 'bfloat16'
    assert utils.describe_precision('float32') == 'float32'
    monkeypatch.setenv(utils.PRECISION_VARIABLE, 'bfloat16')       # forces every auto choice ...
    assert utils.resolve_precision('auto', {'avx2'}) == 'bfloat16'
    assert utils.describe_precision('auto') == 'bfloat16 (auto: set by $KIND_PRECISION)'
    assert utils.resolve_precision('float32', {'avx2'}) == 'float32'    # ... and no explicit one
    monkeypatch.setenv(utils.PRECISION_VARIABLE, 'float16')
    with pytest.raises(utils.UserError, match='KIND_PRECISION must be one of float32, bfloat16'):
        utils.resolve_precision('auto')


@pytest.mark.parametrize('precision', evaluate.PRECISIONS + ('auto',))
def test_the_precision_flag_is_accepted_and_named(random_checkpoints, pairs, tmp_path, capsys, precision):
    status, out, _ = run_cli(capsys, '--input', os.path.join(pairs, 'low', '1.png'), '--high',
                             os.path.join(pairs, 'high'), '--output', str(tmp_path), '--ratio', '3',
                             '--checkpoint_dir', random_checkpoints, '--no_progress', '--precision', precision)
    assert status == 0
    assert 'Pipeline: mode fusion, ratio 3 (fixed), precision %s' % utils.describe_precision(precision) in out
    with pytest.raises(SystemExit):
        evaluate.build_parser().parse_args(['--precision', 'float16'])


def test_an_output_carries_its_photos_colour_profile_and_exif(random_checkpoints, pairs, tmp_path, capsys):
    """A photo's RGB ICC profile (a phone's Display P3, a camera's Adobe RGB) is embedded in its output,
    so that viewers show its colours as meant; a grey profile, which does not describe RGB, is not;
    no profile, none. Its EXIF (date, camera) too, without the orientation its pixels were turned by.
    The pixels are as without any of it."""
    from PIL import ImageCms
    rgb = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
    grey = rgb[:16] + b'GRAY' + rgb[20:]
    folder = tmp_path / 'in'
    folder.mkdir()
    low = Image.open(os.path.join(pairs, 'low', '1.png'))
    for name, profile in (('rgb', rgb), ('grey', grey), ('none', None)):
        low.save(folder / (name + '.png'), **({'icc_profile': profile} if profile else {}))
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0132] = 6, 'KinD camera', '2026:12:08 20:15:00'   # orientation, make, date
    low.transpose(Image.Transpose.ROTATE_90).save(folder / 'phone.png', exif=exif.tobytes())
    del exif[0x0112]
    camera = with_thumbnail(exif.tobytes(), b'\xff\xd8 a dark thumbnail \xff\xd9')
    low.save(folder / 'camera.png', exif=camera)
    assert data.read_photo(str(folder / 'rgb.png')).metadata == {'icc_profile': rgb}
    output = tmp_path / 'out'
    status, _, _ = run_cli(capsys, '--input', str(folder), '--output', str(output), '--checkpoint_dir',
                           random_checkpoints, '--no_progress', '--ratio', '3')
    assert status == 0
    saved = {name: Image.open(output / (name + '_kindle.png')) for name in ('rgb', 'grey', 'none', 'phone', 'camera')}
    assert saved['rgb'].info.get('icc_profile') == rgb
    assert not any(name in saved[stem].info for name in ('icc_profile', 'exif') for stem in ('grey', 'none'))
    assert np.array_equal(np.asarray(saved['rgb']), np.asarray(saved['none']))
    assert dict(saved['phone'].getexif()) == {0x010F: 'KinD camera', 0x0132: '2026:12:08 20:15:00'}
    assert saved['phone'].size == low.size                                    # turned upright, as viewers show it
    kept = saved['camera'].info['exif']
    assert kept[-len(camera) + 6:] == data.without_thumbnail(camera)[6:] != camera[6:]    # as it was, less the link
    assert thumbnail_of(camera) and not thumbnail_of(kept)


def with_thumbnail(exif, jpeg):
    """PIL's EXIF bytes ('Exif\\0\\0', a TIFF structure, no IFD1) with an IFD1 holding `jpeg` as the
    thumbnail, as a camera writes it."""
    tiff = bytearray(exif[6:])
    order = '<' if tiff[:2] == b'II' else '>'
    first = struct.unpack(order + 'I', tiff[4:8])[0]
    link = first + 2 + 12 * struct.unpack(order + 'H', tiff[first:first + 2])[0]
    second = len(tiff)
    tiff[link:link + 4] = struct.pack(order + 'I', second)
    tiff += struct.pack(order + 'H', 2)
    tiff += struct.pack(order + 'HHII', 0x0201, 4, 1, second + 2 + 24 + 4)     # JPEGInterchangeFormat
    tiff += struct.pack(order + 'HHII', 0x0202, 4, 1, len(jpeg)) + bytes(4) + jpeg
    return b'Exif\x00\x00' + bytes(tiff)


def thumbnail_of(exif):
    """IFD1's tags of EXIF bytes (the thumbnail's place), read by PIL."""
    from PIL import ExifTags
    parsed = Image.Exif()
    parsed.load(exif)
    return dict(parsed.get_ifd(ExifTags.IFD.IFD1))
