"""The weights committed in checkpoint/ load by name and enhance an image."""
import json
import os

import numpy as np
import pytest

import brightness
import data
import evaluate
import exposure
import model
import utils
from conftest import LOL, ROOT, needs_lol

CHECKPOINTS = os.path.join(ROOT, 'checkpoint')


@pytest.fixture(scope='module')
def shipped():
    kind = evaluate.KinD(CHECKPOINTS)
    yield kind
    kind.close()


def test_every_net_is_shipped_and_complete(shipped):
    tf = utils.import_tensorflow()
    for scope, folder in evaluate.WEIGHT_FOLDERS.items():
        prefix = shipped.checkpoints[scope]
        assert os.path.dirname(prefix) == os.path.join(CHECKPOINTS, folder)
        sizes = dict(tf.train.list_variables(prefix))
        assert sum(int(np.prod(s)) for s in sizes.values()) == model.PARAM_COUNTS[scope]
    fit = json.load(open(os.path.join(CHECKPOINTS, 'illumination_adjust_net_train', 'auto_ratio.json')))
    assert fit['pairs'] == 485 and fit['feature_names'] == list(brightness.FEATURE_NAMES)
    assert fit['cv_rms_log_error'] < 0.21       # README: 0.206; a constant guess: 0.234


@pytest.mark.parametrize('mode', evaluate.MODES)
def test_shipped_weights_brighten_a_dark_image(shipped, mode):
    import skimage.data
    rng = np.random.default_rng(0)
    dark = evaluate.simulate_low_light(skimage.data.chelsea()[::2, ::2], rng)
    image = data.normalise(dark / 255.0)
    saved, chosen = shipped.enhance_pixels(dark, 'auto', mode)
    auto = saved / 255.0
    # metered: the saved output's mean is the exposure target (the LOL regression's prediction
    # where it applies to this simulated sensor, else mid-grey), nothing else binding here
    fit, values = shipped.brightness_fit(), brightness.features(dark / 255.0)
    predicted = np.exp(brightness.predict(fit, values)) if brightness.applies(fit, values) else None
    if predicted is None:
        assert exposure.luminance(auto).mean() == pytest.approx(exposure.exposure_target(
            exposure.luminance(dark / 255.0).mean()), abs=0.02)
    else:
        assert auto.mean() == pytest.approx(exposure.exposure_target((dark / 255.0).mean(), predicted), abs=0.02)
    np.testing.assert_array_equal(saved, data.to_uint8(shipped.enhance(image, chosen, mode)))
    for output in (shipped.enhance(image, 3.0, mode), auto):
        assert output.shape == image.shape and np.isfinite(output).all()
        assert output.min() >= 0 and output.max() <= 1
        assert output.mean() > 1.5 * (dark / 255.0).mean()
    brighter = shipped.enhance(image, 6.0, mode)
    assert brighter.mean() > shipped.enhance(image, 2.0, mode).mean()


# README, "Results on LOL eval15": the ground-truth-ratio row and the no-ground-truth default
README_LOL_ROWS = {'plain, ground-truth ratio': ([], (21.0225, 0.8146)),
                   'fusion, --ratio auto': (['--ratio', 'auto'], (19.6212, 0.7953))}


@pytest.mark.slow
@needs_lol
@pytest.mark.parametrize('row', sorted(README_LOL_ROWS))
def test_lol_table_matches_the_readme(tmp_path, capsys, row):
    """`python evaluate.py --input eval15/low --high eval15/high [flags]` prints the README's figures."""
    flags, expected = README_LOL_ROWS[row]
    status = evaluate.main(['--input', os.path.join(LOL, 'eval15', 'low'), '--high',
                            os.path.join(LOL, 'eval15', 'high'), '--output', str(tmp_path), '--no_progress', *flags])
    out = capsys.readouterr().out
    assert status == 0
    mean_line = next(line for line in out.splitlines() if line.startswith('mean (15 images)'))
    psnr, ssim = (float(x) for x in mean_line.split()[-2:])
    assert psnr == pytest.approx(expected[0], abs=0.01)
    assert ssim == pytest.approx(expected[1], abs=0.001)
    readme = open(os.path.join(ROOT, 'README.md')).read()
    assert '**%.4f** | **%.4f**' % expected in readme
