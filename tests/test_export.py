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
MAX_LEVELS = 1   # max |uint8 difference| allowed against evaluate.py
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
    """evaluate.py's saved pixels for one image."""
    return data.to_uint8(kind.enhance(data.normalise(data.read_image(path)[0]), ratio, mode))


def max_levels(a, b):
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope='module')
def saved_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('export') / 'kind')
    export.export_saved_model(CHECKPOINT, path)
    return path


@pytest.fixture(scope='module')
def kind():
    model = evaluate.KinD(CHECKPOINT)
    yield model
    model.close()


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


def test_savedmodel_has_the_four_signatures_and_the_fit(saved_model):
    from tensorflow.core.protobuf import saved_model_pb2
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model, 'saved_model.pb'), 'rb') as stream:
        proto.ParseFromString(stream.read())
    signatures = proto.meta_graphs[0].signature_def
    assert sorted(signatures) == sorted(export.SIGNATURES)
    assert sorted(signatures['serving_default'].outputs) == ['fusion', 'fusion_uint8', 'plain', 'plain_uint8']
    assert sorted(signatures['relight'].inputs) == ['alpha', 'illumination', 'normalised', 'reflectance', 'restored']
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
    result = run_pipeline(str(folder), output, saved_model, '--ratio', '2.5', '--mode', 'plain',
                          '--direct_num_workers', '2', '--direct_running_mode', 'multi_processing')
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
        assert max_levels(pixels, reference(kind, str(folder / ('%d.png' % index)), 2.5, 'plain')) <= MAX_LEVELS
        row = rows['%d.png' % index]
        assert (row['status'], float(row['alpha']), row['output']) == ('ok', 2.5, path)
        assert float(row['output_mean']) == pytest.approx(pixels.mean() / 255, abs=1e-6)
        written[path] = (os.stat(path).st_mtime_ns, pixels)

    again = run_pipeline(str(folder), output, saved_model, '--ratio', '4', '--mode', 'fusion')
    assert '0 enhanced, 5 already there (not overwritten), 1 failed' in again.stdout
    second_reports, rows = report_rows(output)
    assert len(second_reports) == 2 and reports[0] in second_reports
    assert sorted(row['status'] for row in rows.values()) == ['exists'] * 5 + ['failed']
    for path, (mtime, pixels) in written.items():
        assert os.stat(path).st_mtime_ns == mtime


@pytest.mark.slow
def test_pipeline_auto_ratio_meters_the_alpha_of_evaluate(saved_model, kind, tmp_path):
    path = dark_image(str(tmp_path / 'dark.png'), (96, 128), seed=3)
    script = textwrap.dedent('''
        import sys
        import numpy as np
        import beam_enhance, data
        enhance = beam_enhance.Enhance(sys.argv[1], 'auto', 'fusion', beam_enhance.DEFAULT_MAX_IMAGE_PIXELS)
        enhance.setup()
        pixels, alpha = enhance._enhance(data.read_image(sys.argv[2])[0])
        np.savez(sys.argv[3], pixels=pixels, alpha=alpha)
    ''')
    output = str(tmp_path / 'auto.npz')
    subprocess.run([sys.executable, '-c', script, saved_model, path, output], cwd=ROOT, env=ENV, check=True,
                   timeout=600)
    raw = data.read_image(path)[0]
    expected, expected_alpha = kind.enhance_auto(data.normalise(raw), raw, 'fusion')
    with np.load(output) as arrays:
        assert brightness.METER_RANGE[0] * 1.1 < expected_alpha < brightness.METER_RANGE[1] / 1.1
        assert float(arrays['alpha']) == pytest.approx(expected_alpha, rel=1e-3)
        assert max_levels(arrays['pixels'], data.to_uint8(expected)) <= MAX_LEVELS
