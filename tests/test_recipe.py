"""train_from_scratch.sh, the CPU recipe: its commands in sequence on tiny generated data (a few
steps each), then evaluate.py on the weights they wrote; a repeat skips every finished command."""
import os
import subprocess
import sys

import numpy as np
import pytest

import data
import utils
from conftest import ROOT


def run_recipe(data_dir, run_dir):
    environment = dict(os.environ, PYTHON=sys.executable, DECOM_STEPS='3', DECOM_LARGE_STEPS='2',
                       ADJUST_STEPS='2', RESTORE_STEPS='2', TRAIN_FLAGS='--batch_size 2 --patch_size 32')
    return subprocess.run(['bash', os.path.join(ROOT, 'train_from_scratch.sh'), data_dir, run_dir],
                          env=environment, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_recipe_trains_all_three_nets_from_nothing_and_evaluates(tiny_lol, tmp_path):
    import evaluate
    run_dir = str(tmp_path / 'run')
    result = run_recipe(tiny_lol, run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tf = utils.import_tensorflow()
    steps = {'decom_net_train': 2, 'illumination_adjust_net_train': 2, 'Restoration_net_train': 2}
    for folder, step in steps.items():   # stage 1b's 2 steps on larger patches are the last DecomNet save
        assert tf.train.latest_checkpoint(os.path.join(run_dir, folder)).endswith('model.ckpt-%d' % step)
    assert 'done: step 3' in result.stdout           # stage 1a ran to its end before 1b
    for name in ('stage1a_decomposition', 'stage1b_decomposition_large', 'stage3_adjustment',
                 'stage2_restoration', 'evaluate_eval15'):
        assert os.path.isfile(os.path.join(run_dir, 'runs', name + '.done'))
    assert 'mean (2 images)' in result.stdout
    # evaluate.py's output is these weights' enhancement of the eval15 image
    low = os.path.join(tiny_lol, 'eval15', 'low', '1.png')
    raw = data.read_image(low)[0]
    kind = evaluate.KinD(run_dir, precision='float32')   # as evaluate.py --high
    high = data.load_image(os.path.join(tiny_lol, 'eval15', 'high', '1.png'))
    alpha = kind.ground_truth_ratio(data.normalise(raw), high)
    expected = data.to_uint8(kind.enhance(data.normalise(raw), alpha, 'plain'))
    kind.close()
    np.testing.assert_array_equal(data.read_uint8_rgb(os.path.join(run_dir, 'eval15', '1_kindle.png')), expected)
    again = run_recipe(tiny_lol, run_dir)
    assert again.returncode == 0 and again.stdout.count('done before, skipped') == 5
