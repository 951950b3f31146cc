"""The three trainers end to end on a tiny generated LOL tree: weights, samples, logs, options,
real resume (same weights as an uninterrupted run), and the stage 1 -> 2/3 chain."""
import glob
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import data
import model
import training
import utils
from decomposition_net_train import DecompositionStage
from illumination_adjustment_net_train import (AdjustmentStage, evaluation_ratio_transform,
                                               ratio_transform)
from reflectance_restoration_net_train import RestorationStage

tf = utils.import_tensorflow()

COMMON = ['--batch_size', '2', '--patch_size', '32', '--no_progress', '--seed', '5', '--log_every', '1']
SAMPLE_HEIGHT, SAMPLE_WIDTH = 40, 56   # tiny_lol's eval15 images


def grid_shape(rows, columns):
    """Shape of a sample grid: a title strip, then each row of panels under its label strip."""
    strip = training.strip_height(training.label_size(SAMPLE_HEIGHT))
    return ((rows + 1) * strip + rows * SAMPLE_HEIGHT, columns * SAMPLE_WIDTH, 3)


def train(stage, data_dir, checkpoint_dir, *flags):
    return training.train(stage, COMMON + ['--data_dir', data_dir, '--checkpoint_dir', checkpoint_dir] + list(flags))


def weights(folder):
    """{name: array} of the latest checkpoint in `folder`."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(folder))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def run_state_step(checkpoint_dir, stage_name):
    prefix = tf.train.latest_checkpoint(os.path.join(checkpoint_dir, 'runs', stage_name, 'state'))
    return int(tf.train.load_checkpoint(prefix).get_tensor('global_step'))


@pytest.fixture(scope='module')
def stage1(tiny_lol, tmp_path_factory):
    """Stage 1 trained for 3 steps (4 pairs, batch 2: 2 steps per epoch, samples every epoch)."""
    checkpoint_dir = str(tmp_path_factory.mktemp('stage1'))
    assert train(DecompositionStage(), tiny_lol, checkpoint_dir, '--max_steps', '3',
                 '--sample_every', '1') == 0
    return checkpoint_dir


def test_decomposition_trainer_outputs(stage1):
    saved = weights(os.path.join(stage1, 'decom_net_train'))
    assert len(saved) == 18 and sum(a.size for a in saved.values()) == model.PARAM_COUNTS['DecomNet']
    assert all(name.startswith('DecomNet/') and 'Adam' not in name for name in saved)
    assert run_state_step(stage1, 'decomposition') == 3
    run_dir = os.path.join(stage1, 'runs', 'decomposition')
    options = json.load(open(os.path.join(run_dir, 'options.json')))
    assert options['batch_size'] == 2 and options['steps_per_epoch'] == 2 and options['epochs'] == 2000
    assert sorted(os.listdir(os.path.join(run_dir, 'samples'))) == ['1_epoch0001.png', '2_epoch0001.png']
    grid = np.asarray(Image.open(os.path.join(run_dir, 'samples', '1_epoch0001.png')))
    assert grid.shape == grid_shape(2, 3)   # low: input, R, I over high: input, R, I
    events = glob.glob(os.path.join(run_dir, 'logs', 'events.out.tfevents.*'))
    tags = {v.tag for e in events for event in tf.train.summary_iterator(e) for v in event.summary.value}
    assert {'loss/total', 'loss/recon_low', 'loss/equal_R', 'loss/i_mutual', 'learning_rate',
            'samples/1'} <= tags


def test_weight_folders_can_be_moved(stage1, tmp_path):
    """The `checkpoint` state files name their checkpoints relatively: a copied folder loads its own."""
    copy = str(tmp_path / 'moved' / 'decom_net_train')
    shutil.copytree(os.path.join(stage1, 'decom_net_train'), copy)
    state = open(os.path.join(copy, 'checkpoint')).read()
    assert stage1 not in state and os.path.dirname(utils.latest_checkpoint(copy)) == copy


def test_resume_equals_an_uninterrupted_run(tiny_lol, tmp_path):
    """Steps 0-2 then 2-4 (Adam slots, step and sampler restored) give the weights of 0-4."""
    straight, split = str(tmp_path / 'straight'), str(tmp_path / 'split')
    assert train(DecompositionStage(), tiny_lol, straight, '--max_steps', '4') == 0
    assert train(DecompositionStage(), tiny_lol, split, '--max_steps', '2') == 0
    assert run_state_step(split, 'decomposition') == 2
    assert train(DecompositionStage(), tiny_lol, split, '--max_steps', '4') == 0
    assert run_state_step(split, 'decomposition') == 4
    expected = weights(os.path.join(straight, 'decom_net_train'))
    actual = weights(os.path.join(split, 'decom_net_train'))
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=0, atol=1e-7, err_msg=name)


@pytest.mark.parametrize('stage_class,folder,count,columns', [
    (RestorationStage, 'Restoration_net_train', model.PARAM_COUNTS['Restoration_net'], 3),
    (AdjustmentStage, 'illumination_adjust_net_train', model.PARAM_COUNTS['Illumination_adjust_net'], 2),
])
def test_later_stages_read_stage1_and_resume(stage1, tiny_lol, tmp_path, capsys, stage_class, folder, count,
                                             columns):
    checkpoint_dir = str(tmp_path / 'checkpoint')
    shutil.copytree(os.path.join(stage1, 'decom_net_train'), os.path.join(checkpoint_dir, 'decom_net_train'))
    stage = stage_class()
    assert train(stage, tiny_lol, checkpoint_dir, '--max_steps', '2', '--sample_every', '1') == 0
    first = weights(os.path.join(checkpoint_dir, folder))
    assert sum(a.size for a in first.values()) == count
    assert run_state_step(checkpoint_dir, stage.name) == 2
    samples = os.path.join(checkpoint_dir, 'runs', stage.name, 'samples')
    assert sorted(os.listdir(samples)) == ['1_epoch0001.png', '2_epoch0001.png']
    assert np.asarray(Image.open(os.path.join(samples, '2_epoch0001.png'))).shape == grid_shape(2, columns)
    capsys.readouterr()
    assert train(stage_class(), tiny_lol, checkpoint_dir, '--max_steps', '3') == 0
    assert 'resumed from' in capsys.readouterr().out
    assert run_state_step(checkpoint_dir, stage.name) == 3
    second = weights(os.path.join(checkpoint_dir, folder))
    assert any(not np.array_equal(first[n], second[n]) for n in first)
    # the frozen DecomNet is what stage 1 wrote
    decom_vars = {n: a for n, a in weights(os.path.join(checkpoint_dir, 'runs', stage.name, 'state')).items()
                  if n.startswith('DecomNet/') and 'Adam' not in n}
    for name, array in weights(os.path.join(stage1, 'decom_net_train')).items():
        np.testing.assert_array_equal(decom_vars[name], array)


def logged_losses(checkpoint_dir, stage_name, tag='loss/total'):
    """{step: value} of one TensorBoard scalar of a run."""
    events = glob.glob(os.path.join(checkpoint_dir, 'runs', stage_name, 'logs', 'events.out.tfevents.*'))
    return {event.step: v.simple_value for e in events for event in tf.train.summary_iterator(e)
            for v in event.summary.value if v.tag == tag}


@pytest.mark.parametrize('stage_class,folder', [(DecompositionStage, 'decom_net_train'),
                                                (RestorationStage, 'Restoration_net_train')])
def test_bfloat16_training_keeps_float32_weights_and_the_loss(stage1, tiny_lol, tmp_path, capsys, stage_class,
                                                              folder):
    """--precision bfloat16 and float32 from the same weights and batches: losses within bfloat16
    round-off of each other, and float32 weights under the same names (what evaluate.py reads)."""
    start = str(tmp_path / 'start')   # the weights both runs fine-tune from
    shutil.copytree(os.path.join(stage1, 'decom_net_train'), os.path.join(start, 'decom_net_train'))
    if stage_class is RestorationStage:
        assert train(stage_class(), tiny_lol, start, '--max_steps', '1') == 0
    runs = {}
    for precision in ('float32', 'bfloat16'):
        checkpoint_dir = str(tmp_path / precision)
        for subdir in {'decom_net_train', folder}:
            shutil.copytree(os.path.join(start, subdir), os.path.join(checkpoint_dir, subdir))
        assert train(stage_class(), tiny_lol, checkpoint_dir, '--max_steps', '2', '--precision', precision,
                     '--init_from_checkpoint') == 0
        runs[precision] = (logged_losses(checkpoint_dir, stage_class.name),
                           weights(os.path.join(checkpoint_dir, folder)))
    if not utils.native_bfloat16():
        assert 'bfloat16 is emulated here' in capsys.readouterr().out
    (loss32, weights32), (loss16, weights16) = runs['float32'], runs['bfloat16']
    assert sorted(loss32) == sorted(loss16) == [1, 2]
    for step in loss32:
        assert loss16[step] != loss32[step] and abs(loss16[step] - loss32[step]) < 0.03 * loss32[step]
    assert sorted(weights16) == sorted(weights32)
    assert all(array.dtype == np.float32 for array in weights16.values())


def test_adjustment_stage_writes_the_brightness_fit_of_the_raw_pairs(tiny_lol, tmp_path):
    import brightness
    checkpoint_dir = str(tmp_path / 'checkpoint')          # no DecomNet needed to fit
    assert train(AdjustmentStage(), tiny_lol, checkpoint_dir, '--fit_auto_ratio_only') == 0
    folder = os.path.join(checkpoint_dir, 'illumination_adjust_net_train')
    fit = json.load(open(os.path.join(folder, 'auto_ratio.json')))
    root = os.path.join(tiny_lol, 'our485')
    pairs = data.find_pairs(os.path.join(root, 'low'), os.path.join(root, 'high'))
    expected = brightness.fit([brightness.features(data.read_image(low)[0]) for low, _ in pairs],
                              [brightness.log_brightness(data.read_image(high)[0]) for _, high in pairs])
    assert sorted(fit) == sorted(expected) and fit['pairs'] == 4
    for key, value in expected.items():
        if isinstance(value, str) or key == 'feature_names':
            assert fit[key] == value
        else:
            np.testing.assert_allclose(fit[key], value, rtol=1e-12)
    assert utils.latest_checkpoint(folder) is None          # nothing trained


def test_restoration_learning_rate_schedule():
    stage, args = RestorationStage(), training.training_parser(RestorationStage()).parse_args([])
    rates = [stage.learning_rate(e, args) for e in (0, 800, 801, 1250, 1251, 1500, 1501, 1999)]
    np.testing.assert_allclose(rates, [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5, 1e-5, 1e-5])


def test_defaults_are_the_spec_table():
    expected = {DecompositionStage: (10, 48, 2000, 1e-4), RestorationStage: (4, 384, 1000, 1e-4),
                AdjustmentStage: (10, 48, 2000, 1e-4)}
    for stage_class, values in expected.items():
        args = training.training_parser(stage_class()).parse_args([])
        assert (args.batch_size, args.patch_size, args.epochs, args.learning_rate) == values
        assert args.data_dir == './LOLdataset' and args.checkpoint_dir == './checkpoint'


class _Fixed:
    def __init__(self, value):
        self.value = value

    def randint(self, low, high):
        return self.value


def test_ratio_rules_on_one_crop():
    """Authors: brighten with 1/mean(I_l/(I_h+e)) + e, darken with mean(I_l/(I_h+e)); the
    'evaluation' rule brightens with mean(I_h/(I_l+e)), the estimator LOL evaluation feeds."""
    rng = np.random.default_rng(0)
    i_low = rng.uniform(0.05, 0.3, (6, 6, 1)).astype(np.float32)
    i_high = rng.uniform(0.4, 0.9, (6, 6, 1)).astype(np.float32)
    rho = np.mean(i_low / (i_high + np.float32(1e-4)))
    source, ratio, target = ratio_transform([i_low, i_high], _Fixed(1))
    assert source is i_low and target is i_high and ratio[0, 0, 0] == pytest.approx(1 / rho + 1e-4, rel=1e-6)
    source, ratio, target = ratio_transform([i_low, i_high], _Fixed(0))
    assert source is i_high and target is i_low and ratio[0, 0, 0] == pytest.approx(rho, rel=1e-6)
    source, ratio, target = evaluation_ratio_transform([i_low, i_high], _Fixed(1))
    assert source is i_low and ratio[0, 0, 0] == pytest.approx(np.mean(i_high / (i_low + 1e-4)), rel=1e-6)
    assert ratio[0, 0, 0] > 1 / rho                     # Jensen: the estimators differ
    source, ratio, target = evaluation_ratio_transform([i_low, i_high], _Fixed(0))
    assert source is i_high and ratio[0, 0, 0] == pytest.approx(np.mean(i_low / (i_high + 1e-4)), rel=1e-6)
