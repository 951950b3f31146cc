"""export.py and beam_enhance.py: the SavedModel, run without the project's code, and the Beam
pipeline give evaluate.py's pixels (within 1 level) and alpha."""
import csv
import glob
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import beam_enhance
import brightness
import evaluate
import export
import data
import utils
from conftest import LOL, ROOT

CHECKPOINT = os.path.join(ROOT, 'checkpoint')
EVAL15_IMAGE = os.path.join(LOL, 'eval15', 'low', '1.png')
ALPHA = 3.0
MAX_LEVELS = 1   # max |uint8 difference| allowed against evaluate.py, float32
# bfloat16 per-tile signatures against evaluate.KinD in bfloat16: the same nets and casts, loaded from
# the SavedModel (measured 0 levels here: docs/DEPLOY.md)
BFLOAT16_MAX_LEVELS = 2
TFLITE_MAX_LEVELS = 2
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH='')

# Run in a fresh interpreter outside the repository: only tensorflow, numpy and PIL.
SERVING_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf
    from PIL import Image
    model_dir, output, alpha = sys.argv[1], sys.argv[2], float(sys.argv[3])
    signatures = tf.saved_model.load(model_dir).signatures
    results = {}
    for index, path in enumerate(sys.argv[4:]):
        pixels = np.asarray(Image.open(path).convert('RGB'))
        alpha_tensor = tf.constant(alpha, tf.float32)
        served = signatures['serving_default'](image=tf.constant(pixels), alpha=alpha_tensor)
        floats = signatures['enhance_float'](image=tf.constant(pixels / np.float32(255)), alpha=alpha_tensor)
        stages = signatures['stages'](image=tf.constant(pixels / np.float32(255)))
        relit = signatures['relight'](alpha=alpha_tensor, **stages)
        with tf.compat.v1.Session(graph=tf.Graph()) as session:   # the C++ path TF Serving takes
            graph = tf.compat.v1.saved_model.loader.load(session, ['serve'], model_dir)
            signature = graph.signature_def['serving_default']
            sessioned = session.run({name: info.name for name, info in signature.outputs.items()},
                                    {signature.inputs['image'].name: pixels, signature.inputs['alpha'].name: alpha})
        for mode in ('fusion', 'plain'):
            results['%d_%s' % (index, mode)] = served[mode + '_uint8'].numpy()
            results['%d_%s_session' % (index, mode)] = sessioned[mode + '_uint8']
            results['%d_%s_float' % (index, mode)] = floats[mode + '_uint8'].numpy()
            results['%d_%s_relight' % (index, mode)] = relit[mode + '_uint8'].numpy()
    assert not {'utils', 'model', 'evaluate', 'export'} & set(sys.modules)
    np.savez(output, **results)
''')


def dark_image(path, size, seed, mode='RGB'):
    """A dark, noisy smooth colour field saved as `path` (uint8 RGB or RGBA)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((5, 5, 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((size[1], size[0]), Image.BILINEAR), np.float64)
    pixels = np.clip(smooth * 0.15 + rng.normal(0, 2, smooth.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def reference(kind, path, ratio, mode):
    """evaluate.py's saved pixels for one image (in the KinD's precision)."""
    return kind.enhance_pixels(data.read_pixels(path)[0], ratio, mode)[0]


def max_levels(a, b):
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope='module')
def saved_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('export') / 'kind')
    export.export_saved_model(CHECKPOINT, path)
    return path


@pytest.fixture(scope='module')
def kinds():
    """{precision: evaluate.KinD}."""
    models = {precision: evaluate.KinD(CHECKPOINT, precision=precision) for precision in evaluate.PRECISIONS}
    yield models
    for model in models.values():
        model.close()


@pytest.fixture(scope='module')
def kind(kinds):
    """float32, as the SavedModel's whole-image signatures."""
    return kinds['float32']


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """{case: path}: eval15 image 1 when present and a generated odd-sized 37x53 image."""
    cases = {'odd_37x53': dark_image(str(tmp_path_factory.mktemp('odd') / 'odd.png'), (37, 53), seed=7)}
    if os.path.isfile(EVAL15_IMAGE):
        cases['eval15_1'] = EVAL15_IMAGE
    return cases


@pytest.fixture(scope='module')
def served(saved_model, images, tmp_path_factory):
    """{case: {output: uint8}} from SERVING_SCRIPT in a fresh process in a folder outside the repo."""
    folder = tmp_path_factory.mktemp('serving')
    output = str(folder / 'served.npz')
    subprocess.run([sys.executable, '-c', SERVING_SCRIPT, saved_model, output, str(ALPHA)] + list(images.values()),
                   cwd=str(folder), env=ENV, check=True, timeout=600)
    with np.load(output) as arrays:
        return {case: {key.split('_', 1)[1]: arrays[key] for key in arrays.files if key.startswith('%d_' % index)}
                for index, case in enumerate(images)}


def test_savedmodel_has_its_signatures_and_the_fit(saved_model):
    from tensorflow.core.protobuf import saved_model_pb2
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model, 'saved_model.pb'), 'rb') as stream:
        proto.ParseFromString(stream.read())
    signatures = proto.meta_graphs[0].signature_def
    assert sorted(signatures) == sorted(export.SIGNATURES)
    assert sorted(signatures['serving_default'].outputs) == ['fusion', 'fusion_uint8', 'plain', 'plain_uint8']
    assert sorted(signatures['relight'].inputs) == ['alpha', 'illumination', 'normalised', 'reflectance', 'restored']
    for suffix in ('', '_bfloat16'):
        assert sorted(signatures['decompose' + suffix].outputs) == ['illumination', 'reflectance']
        assert sorted(signatures['restore' + suffix].inputs) == ['illumination', 'inner', 'reflectance']
        assert sorted(signatures['restore' + suffix].outputs) == ['restored']
        assert sorted(signatures['relight_map' + suffix].inputs) == ['illumination', 'normalised', 'ratio_map',
                                                                     'reflectance', 'restored']
    with open(os.path.join(saved_model, 'assets', brightness.FIT_FILE)) as copied, \
            open(export.fit_path(CHECKPOINT)) as original:
        assert copied.read() == original.read()
    with pytest.raises(utils.UserError, match='already exists'):
        export.export_saved_model(CHECKPOINT, saved_model)


@pytest.mark.slow
@pytest.mark.parametrize('case', ['eval15_1', 'odd_37x53'])
@pytest.mark.parametrize('mode', evaluate.MODES)
def test_savedmodel_without_the_project_matches_evaluate(served, images, kind, case, mode):
    if case not in images:
        pytest.skip('LOL eval15 not found at %s' % LOL)
    expected = reference(kind, images[case], ALPHA, mode)
    outputs = served[case]
    assert outputs[mode].shape == expected.shape
    # uint8 and float inputs, stages + relight, and a TF1 session as TF Serving runs it
    for variant in (mode, mode + '_float', mode + '_relight', mode + '_session'):
        assert max_levels(outputs[variant], expected) <= MAX_LEVELS, variant


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:.*tf.lite.Interpreter is deprecated')
def test_tflite_for_a_fixed_size_is_within_two_levels_of_evaluate(images, kind, tmp_path):
    path, size = str(tmp_path / 'kind.tflite'), (37, 53)
    assert export.export_tflite(CHECKPOINT, path, size) > 0
    interpreter = export.tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    inputs = {detail['name']: detail['index'] for detail in interpreter.get_input_details()}
    interpreter.set_tensor(inputs['image'], data.read_image(images['odd_37x53'])[0])
    interpreter.set_tensor(inputs['alpha'], np.float32(ALPHA))
    interpreter.invoke()
    outputs = {detail['name']: detail['index'] for detail in interpreter.get_output_details()}
    for mode in evaluate.MODES:
        pixels = data.to_uint8(interpreter.get_tensor(outputs[mode]))
        assert max_levels(pixels, reference(kind, images['odd_37x53'], ALPHA, mode)) <= TFLITE_MAX_LEVELS


def test_output_names_number_inputs_with_the_same_stem_in_path_order():
    class Readable:
        def __init__(self, path):
            self.metadata = type('Metadata', (), {'path': path})()
    named = list(beam_enhance.output_names(('a', [Readable('/in/a.jpg'), Readable('/in/a.png')]), '/out'))
    assert [(r.metadata.path, path) for r, path in named] == [('/in/a.jpg', '/out/a_kindle.png'),
                                                                ('/in/a.png', '/out/a_kindle-1.png')]


def run_pipeline(folder, output, saved_model, *extra):
    return subprocess.run([sys.executable, 'beam_enhance.py', '--input', folder, '--output', output,
                           '--model', saved_model, *extra],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


def report_rows(output):
    reports = sorted(glob.glob(os.path.join(output, beam_enhance.REPORT_PREFIX + '*.csv')))
    with open(reports[-1]) as stream:
        return reports, {os.path.basename(row['input']): row for row in csv.DictReader(stream)}


@pytest.mark.slow
def test_beam_pipeline_matches_evaluate_reports_the_corrupt_file_and_never_overwrites(saved_model, kind, tmp_path):
    folder, output = tmp_path / 'in', str(tmp_path / 'out')
    folder.mkdir()
    sizes = [(37, 53), (48, 64), (64, 48), (40, 40), (33, 71)]
    for index, size in enumerate(sizes):
        dark_image(str(folder / ('%d.png' % index)), size, seed=index, mode='RGBA' if index == 4 else 'RGB')
    with open(folder / '0.png', 'rb') as stream:
        (folder / 'broken.png').write_bytes(stream.read()[:200])
    from PIL import ImageCms
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()       # carried as evaluate.py does
    Image.open(folder / '1.png').save(folder / '1.png', icc_profile=profile)
    result = run_pipeline(str(folder), output, saved_model, '--ratio', '2.5', '--mode', 'plain', '--precision',
                          'float32', '--direct_num_workers', '2', '--direct_running_mode', 'multi_processing')
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'failed: %s: corrupt or truncated image data' % (folder / 'broken.png') in result.stdout
    assert '5 enhanced, 0 already there (not overwritten), 1 failed' in result.stdout
    reports, rows = report_rows(output)
    assert rows['broken.png']['status'] == 'failed' and rows['broken.png']['output'] == ''
    assert rows['4.png']['detail'] == 'alpha channel dropped'
    written = {}
    for index in range(len(sizes)):
        path = os.path.join(output, '%d_kindle.png' % index)
        pixels = np.asarray(Image.open(path))
        assert Image.open(path).info.get('icc_profile') == (profile if index == 1 else None)
        assert max_levels(pixels, reference(kind, str(folder / ('%d.png' % index)), 2.5, 'plain')) <= MAX_LEVELS
        row = rows['%d.png' % index]
        assert (row['status'], float(row['alpha']), row['output']) == ('ok', 2.5, path)
        assert float(row['output_mean']) == pytest.approx(pixels.mean() / 255, abs=1e-6)
        written[path] = (os.stat(path).st_mtime_ns, pixels)

    again = run_pipeline(str(folder), output, saved_model, '--ratio', '4')
    assert '0 enhanced, 5 already there (not overwritten), 1 failed' in again.stdout
    second_reports, rows = report_rows(output)
    assert len(second_reports) == 2 and reports[0] in second_reports
    assert sorted(row['status'] for row in rows.values()) == ['exists'] * 5 + ['failed']
    for path, (mtime, pixels) in written.items():
        assert os.stat(path).st_mtime_ns == mtime


@pytest.mark.slow
def test_pipeline_defaults_and_tiles_give_evaluate_s_file_in_each_precision(saved_model, kinds, tmp_path):
    """Beam's Enhance with evaluate.py's defaults (--ratio auto, fusion) meters the same exposure
    and writes the same pixels as evaluate.KinD.enhance_pixels, in both precisions, whole and in
    tiles (a 200x150 image in 64-px tiles: 12 tiles)."""
    path = dark_image(str(tmp_path / 'dark.png'), (150, 200), seed=3)
    script = textwrap.dedent('''
        import sys
        import numpy as np
        import beam_enhance, data
        args = beam_enhance.build_parser().parse_args(['--input', '-', '--output', '-', '--model', sys.argv[1]])
        pixels, results = data.read_pixels(sys.argv[2])[0], {}
        for precision in ('float32', 'bfloat16'):
            for tile_size in (args.tile_size, 64):
                enhance = beam_enhance.Enhance(sys.argv[1], args.ratio, args.mode, args.max_image_pixels, precision,
                                               tile_size)
                enhance.setup()
                output, exposure = enhance._enhance(pixels)
                results['%s_%d' % (precision, tile_size)] = output
                results['%s_%d_alpha' % (precision, tile_size)] = exposure.alpha
        np.savez(sys.argv[3], **results)
    ''')
    output = str(tmp_path / 'beam.npz')
    subprocess.run([sys.executable, '-c', script, saved_model, path, output], cwd=ROOT, env=ENV, check=True,
                   timeout=600)
    pixels = data.read_pixels(path)[0]
    with np.load(output) as arrays:
        for precision, levels in (('float32', MAX_LEVELS), ('bfloat16', BFLOAT16_MAX_LEVELS)):
            expected, exposure = kinds[precision].enhance_pixels(pixels)          # the CLI's defaults
            assert brightness.METER_RANGE[0] * 1.1 < exposure.alpha < brightness.METER_RANGE[1] / 1.1
            for tile_size in (evaluate.DEFAULT_TILE_SIZE, 64):
                key = '%s_%d' % (precision, tile_size)
                assert float(arrays[key + '_alpha']) == pytest.approx(exposure.alpha, rel=1e-3), key
                assert max_levels(arrays[key], expected) <= levels, key


def test_a_beam_worker_s_session_is_reopened_where_it_keeps_too_much_with_the_same_numbers(
        saved_model, kinds, monkeypatch):
    """SavedModelNets run the SavedModel in a TF 1 session of their own, reopened as evaluate.KinD's
    (sessions.py; a TF 2 worker kept what oneDNN built for every photo size: docs/DEPLOY.md):
    with every new shape past the limit, each reopens it first, and the pixels stay evaluate's."""
    import exposure
    import pipeline
    nets = beam_enhance.SavedModelNets(saved_model, 'float32')
    rng, chosen = np.random.default_rng(4), exposure.Exposure(ALPHA, 'fixed')
    photos = [(rng.random(size + (3,)) * 60).astype(np.uint8) for size in ((40, 56), (48, 64), (72, 40))]
    first = [pipeline.enhance(nets, pixels, chosen, 'fusion', 32) for pixels in photos]    # in 32-px tiles
    monkeypatch.setattr(pipeline, 'RETAINED_LIMIT', -1)
    nets.session.reopen()                              # no shape known: every run's shape is new
    reopened = nets.session.reopened
    again = [pipeline.enhance(nets, pixels, chosen, 'fusion', 32) for pixels in photos]
    assert nets.session.reopened > reopened + len(photos)
    for pixels, before, after in zip(photos, first, again):
        np.testing.assert_array_equal(after, before)
        assert max_levels(after, pipeline.enhance(kinds['float32'], pixels, chosen, 'fusion', 32)) == 0
    nets.close()


@pytest.mark.slow
def test_pipeline_enhances_a_5_mp_photo_as_evaluate(saved_model, kinds, tmp_path):
    """A generated 5 MP photo (above the previous 4 MP limit of whole-image inference) goes through
    the pipeline's tiles and gives evaluate.py's file."""
    folder, output = tmp_path / 'in', str(tmp_path / 'out')
    folder.mkdir()
    path = dark_image(str(folder / 'phone.png'), (1944, 2592), seed=11)
    result = run_pipeline(str(folder), output, saved_model, '--ratio', '3', '--precision', 'float32')
    assert result.returncode == 0 and '1 enhanced' in result.stdout, result.stderr[-3000:]
    written = np.asarray(Image.open(os.path.join(output, 'phone_kindle.png')))
    assert max_levels(written, reference(kinds['float32'], path, 3.0, 'fusion')) <= MAX_LEVELS


@pytest.mark.slow
def test_beam_enhances_a_clip_as_evaluate(saved_model, kind, tmp_path):
    """A generated clip (one element) through Beam gives evaluate.py's clip: the same alphas, and
    frames that differ by the encoder's own error only (in one process the frames before encoding
    are equal; a worker's round-off changes x264's decisions: measured 0.77 levels on average)."""
    import synthetic
    import video
    folder = tmp_path / 'in'
    folder.mkdir()
    synthetic.write_clip(str(folder / 'clip.mp4'), synthetic.dark_clip(8, 64, 96, seed=6)[0], 15)
    output = str(tmp_path / 'out')
    result = run_pipeline(str(folder), output, saved_model, '--precision', 'float32')
    assert result.returncode == 0, result.stderr[-3000:]
    expected = str(tmp_path / 'expected.mp4')
    shots = video.enhance_clip(kind, str(folder / 'clip.mp4'), expected, 'auto', fit=kind.brightness_fit())
    row = report_rows(output)[1]['clip.mp4']
    assert row['status'] == 'ok' and float(row['alpha']) == pytest.approx(np.median(shots[0].alphas), rel=1e-3)

    def frames(path):
        import av
        with av.open(path) as container:
            return np.array([frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)])
    beam, evaluated = frames(os.path.join(output, 'clip_kindle.mp4')), frames(expected)
    assert beam.shape == evaluated.shape == (8, 64, 96, 3)
    if not np.array_equal(beam, evaluated):          # where a round-off changed one of x264's decisions
        assert utils.psnr(evaluated, beam) > 40 and np.abs(beam.astype(int) - evaluated).mean() < 1.5
