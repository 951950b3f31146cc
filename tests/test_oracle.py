"""Every array of the authors' oracle (kind_official.npz) reproduced with the authors' checkpoints
loaded by variable name. Tolerances are the oracle README's."""
import argparse
import os

import numpy as np
import pytest

import data
import evaluate
import losses
import model
import training
import utils
from conftest import LOL, REFERENCE_CHECKPOINTS, needs_lol, needs_reference
from decomposition_net_train import DecompositionStage
from illumination_adjustment_net_train import AdjustmentStage, ratio_transform
from reflectance_restoration_net_train import RestorationStage

tf = utils.import_tensorflow()
pytestmark = [needs_reference, needs_lol]

ATOL_OUTPUT, RTOL_LOSS, ATOL_SSIM = 1e-5, 1e-5, 1e-4
FOLDERS = {model.DECOM_SCOPE: 'decom_net_train', model.RESTORATION_SCOPE: 'Restoration_net_train',
           model.ADJUST_SCOPE: 'illumination_adjust_net_train'}


def restore_reference(session, scope):
    utils.restore_net(session, model.net_variables(scope),
                      os.path.join(REFERENCE_CHECKPOINTS, FOLDERS[scope]), scope)


@pytest.fixture(scope='module')
def graph():
    """Every net and loss on free-size placeholders, the reference weights restored, one session."""
    g = tf.Graph()
    with g.as_default():
        t = argparse.Namespace()
        t.low = tf.placeholder(tf.float32, [None, None, None, 3])
        t.high = tf.placeholder(tf.float32, [None, None, None, 3])
        t.decom_low = model.DecomNet_simple(t.low)
        t.decom_high = model.DecomNet_simple(t.high)
        t.decom_losses = losses.decomposition_losses(t.low, t.high, t.decom_low, t.decom_high)
        t.reflectance = tf.placeholder(tf.float32, [None, None, None, 3])
        t.illumination = tf.placeholder(tf.float32, [None, None, None, 1])
        t.restored = model.Restoration_net(t.reflectance, t.illumination)
        t.ratio = tf.placeholder(tf.float32, [None, None, None, 1])
        t.adjusted = model.Illumination_adjust_net(t.illumination, t.ratio)
        t.rgb_a = tf.placeholder(tf.float32, [None, None, None, 3])
        t.rgb_b = tf.placeholder(tf.float32, [None, None, None, 3])
        t.restoration_losses = losses.restoration_losses(t.rgb_a, t.rgb_b)
        t.map_a = tf.placeholder(tf.float32, [None, None, None, 1])
        t.map_b = tf.placeholder(tf.float32, [None, None, None, 1])
        t.adjustment_losses = losses.adjustment_losses(t.map_a, t.map_b)
        t.ssim = losses.ssim(t.map_a, t.map_b)
        t.gradient = {d: losses.gradient(t.map_a, d) for d in 'xy'}
        t.session = tf.Session()
        for scope in FOLDERS:
            restore_reference(t.session, scope)
    yield t
    t.session.close()


@pytest.fixture(scope='module')
def pipeline():
    kind = evaluate.KinD(REFERENCE_CHECKPOINTS, precision='float32')
    yield kind
    kind.close()


def close(actual, expected, atol=ATOL_OUTPUT):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


def test_normalised_inputs(oracle):
    low = data.load_image(os.path.join(LOL, 'eval15', 'low', '1.png'))
    high = data.load_image(os.path.join(LOL, 'eval15', 'high', '1.png'))
    np.testing.assert_array_equal(low, oracle['low_1'])
    np.testing.assert_array_equal(high, oracle['high_1'])
    np.testing.assert_array_equal(low[13:50, 31:84], oracle['crop_b_low'])
    np.testing.assert_array_equal(high[100:148, 200:248], oracle['crop_a_high'])
    for k, (name, y, x) in enumerate(oracle['loss_batch_boxes']):
        patch = data.load_image(os.path.join(LOL, 'eval15', 'low', '%d.png' % name))[y:y + 48, x:x + 48]
        np.testing.assert_array_equal(patch, oracle['loss_batch_low'][k])


def test_decomposition(graph, oracle):
    run = graph.session.run
    for key in ('low_1', 'high_1', 'crop_b_low'):
        reflectance, illumination = run(graph.decom_low, {graph.low: oracle[key][None]})
        close(reflectance[0], oracle['decom_R_' + key])
        close(illumination[0], oracle['decom_I_' + key])


def test_restoration(graph, oracle):
    for suffix, source in (('1', 'low_1'), ('crop_b', 'crop_b_low')):
        restored = graph.session.run(graph.restored, {
            graph.reflectance: oracle['decom_R_' + source][None],
            graph.illumination: oracle['decom_I_' + source][None]})
        close(restored[0], oracle['restore_R_' + suffix])


@pytest.mark.parametrize('ratio', ['0.5', '1.0', '2.5', '5.0'])
def test_adjustment_at_each_ratio(graph, oracle, ratio):
    illumination = oracle['decom_I_low_1'][None]
    adjusted = graph.session.run(graph.adjusted, {
        graph.illumination: illumination,
        graph.ratio: np.full(illumination.shape, float(ratio), np.float32)})
    close(adjusted[0], oracle['adjust_I_1_ratio_' + ratio])


def _uint8_close(actual, expected):
    difference = np.abs(actual.astype(int) - expected.astype(int))
    assert difference.max() <= 1
    assert np.mean(difference == 0) >= 0.9999


def test_fusion_pipeline_full_image_and_crop(pipeline, oracle):
    output = pipeline.enhance(oracle['low_1'], 5.0, 'fusion')
    close(output, oracle['evaluate_out_full_1'])
    _uint8_close(data.to_uint8(output), oracle['evaluate_out_full_1_uint8'])
    close(pipeline.enhance(oracle['crop_b_low'], 5.0, 'fusion'), oracle['evaluate_out_crop_b'])


def test_gray_trick_weight(oracle):
    g = tf.Graph()
    with g.as_default():
        reflectance = tf.constant(oracle['decom_R_crop_b_low'][None])
        with tf.Session() as session:
            weight = session.run(evaluate.gray_trick_weight(reflectance))
    close(weight[0, ..., 0], oracle['evaluate_gray_weight_crop_b'])


def test_gray_trick_equals_skimage_on_tiny_and_odd_maps():
    """Edge replication and the 25 taps match skimage even where the map is smaller than the kernel."""
    from skimage import color, filters
    rng = np.random.default_rng(3)
    g = tf.Graph()
    with g.as_default(), tf.Session() as session:
        for shape in [(1, 1), (3, 5), (11, 30), (40, 27)]:
            reflectance = rng.random(shape + (3,), dtype=np.float32)
            expected = np.minimum(np.sqrt(2 * filters.gaussian(color.rgb2gray(reflectance), 3)), 1)
            actual = session.run(evaluate.gray_trick_weight(tf.constant(reflectance[None])))
            close(actual[0, ..., 0], expected, atol=2e-7)


def test_plain_pipeline_with_ground_truth_ratio(pipeline, oracle):
    ratio = pipeline.ground_truth_ratio(oracle['low_1'], oracle['high_1'])
    np.testing.assert_allclose(ratio, oracle['evaluate_lol_ratio_1'], rtol=RTOL_LOSS)
    output = pipeline.enhance(oracle['low_1'], ratio, 'plain')
    close(output, oracle['evaluate_lol_out_full_1'])
    _uint8_close(data.to_uint8(output), oracle['evaluate_lol_out_full_1_uint8'])


DECOMPOSITION_KEYS = {'recon_low': 'decom_loss_recon_low', 'recon_high': 'decom_loss_recon_high',
                      'equal_R': 'decom_loss_equal_R', 'i_mutual': 'decom_loss_i_mutual',
                      'i_smooth_low': 'decom_loss_i_input_mutual_low',
                      'i_smooth_high': 'decom_loss_i_input_mutual_high', 'total': 'decom_loss_total'}


def test_decomposition_losses(graph, oracle):
    (r_low, i_low), (r_high, i_high), values = graph.session.run(
        [graph.decom_low, graph.decom_high, graph.decom_losses],
        {graph.low: oracle['loss_batch_low'], graph.high: oracle['loss_batch_high']})
    for actual, key in ((r_low, 'R_low'), (i_low, 'I_low'), (r_high, 'R_high'), (i_high, 'I_high')):
        close(actual, oracle['loss_batch_' + key])
    assert set(values) == set(DECOMPOSITION_KEYS)
    for term, key in DECOMPOSITION_KEYS.items():
        np.testing.assert_allclose(values[term], oracle[key], rtol=RTOL_LOSS, err_msg=term)


def test_ssim_value(graph, oracle):
    value = graph.session.run(graph.ssim, {graph.map_a: oracle['loss_batch_R_low'][..., 0:1],
                                           graph.map_b: oracle['loss_batch_R_high'][..., 0:1]})
    np.testing.assert_allclose(value, oracle['tf_ssim_loss_batch_R'], atol=ATOL_SSIM)


@pytest.fixture(scope='module')
def stage23(graph, oracle):
    """Full-image decompositions of eval15 1 and 22 cropped at the oracle's boxes, as stages 2-3."""
    pairs = {}
    for name in (1, 22):
        pair = [data.load_image(os.path.join(LOL, 'eval15', sub, '%d.png' % name)) for sub in ('low', 'high')]
        pairs[name] = data.decompose_pairs(
            lambda batch: graph.session.run(graph.decom_low, {graph.low: batch}), [pair])[0]
    crops = {'R_low': [], 'I_low': [], 'I_high': [], 'target': []}
    for name, y, x in oracle['loss_batch_boxes']:
        (r_low, i_low), (r_high, i_high) = pairs[name]
        window = (slice(y, y + 48), slice(x, x + 48))
        crops['R_low'].append(r_low[window])
        crops['I_low'].append(i_low[window])
        crops['I_high'].append(i_high[window])
        crops['target'].append(np.power(r_high, np.float32(1.2))[window])
    return {k: np.stack(v) for k, v in crops.items()}


def test_stage23_crops_of_full_image_decompositions(stage23, oracle):
    close(stage23['R_low'], oracle['stage23_R_low'])
    close(stage23['I_low'], oracle['stage23_I_low'])
    close(stage23['I_high'], oracle['stage23_I_high'])
    close(stage23['target'], oracle['restore_target_batch'])


def test_restoration_losses(graph, stage23, oracle):
    restored = graph.session.run(graph.restored, {graph.reflectance: stage23['R_low'],
                                                  graph.illumination: stage23['I_low']})
    close(restored, oracle['restore_out_batch'])
    values = graph.session.run(graph.restoration_losses, {graph.rgb_a: oracle['restore_out_batch'],
                                                          graph.rgb_b: oracle['restore_target_batch']})
    np.testing.assert_allclose(values['square'], oracle['restore_loss_square'], rtol=RTOL_LOSS)
    np.testing.assert_allclose(values['grad'], oracle['restore_loss_grad'], rtol=RTOL_LOSS)
    np.testing.assert_allclose(values['ssim'], oracle['restore_loss_ssim'], atol=ATOL_SSIM)
    np.testing.assert_allclose(values['total'], oracle['restore_loss_total'], atol=ATOL_SSIM)


class _AlwaysBrighten:
    """RNG stub for the ratio rule: always the low -> high direction, as the oracle's batch."""

    @staticmethod
    def randint(low, high):
        return 1


def test_adjustment_ratio_rule_and_losses(graph, stage23, oracle):
    samples = [ratio_transform([stage23['I_low'][k], stage23['I_high'][k]], _AlwaysBrighten())
               for k in range(4)]
    source, ratio_map, target = (np.stack(a) for a in zip(*samples))
    np.testing.assert_array_equal(source, stage23['I_low'])
    np.testing.assert_array_equal(target, stage23['I_high'])
    np.testing.assert_allclose(ratio_map[:, 0, 0, 0], oracle['adjust_ratio_batch'], rtol=RTOL_LOSS)
    assert np.all(ratio_map == ratio_map[:, :1, :1])
    adjusted = graph.session.run(graph.adjusted, {graph.illumination: source, graph.ratio: ratio_map})
    close(adjusted, oracle['adjust_out_batch'])
    values = graph.session.run(graph.adjustment_losses, {graph.map_a: oracle['adjust_out_batch'],
                                                         graph.map_b: oracle['stage23_I_high']})
    for term in ('square', 'grad', 'total'):
        np.testing.assert_allclose(values[term], oracle['adjust_loss_' + term], rtol=RTOL_LOSS)


def test_gradient_maps(graph, oracle):
    crop = oracle['decom_I_crop_b_low'][None]
    for direction in 'xy':
        actual = graph.session.run(graph.gradient[direction], {graph.map_a: crop})
        close(actual[0], oracle['gradient_%s_I_crop_b' % direction])


def test_parameter_counts(oracle):
    assert model.PARAM_COUNTS == {model.DECOM_SCOPE: int(oracle['param_count_decom']),
                                  model.RESTORATION_SCOPE: int(oracle['param_count_restoration']),
                                  model.ADJUST_SCOPE: int(oracle['param_count_adjust'])}


ADAM_CASES = {
    # stage, restored nets, variable, gradient key, stepped key, feeds from the oracle
    'decomposition': (DecompositionStage, [model.DECOM_SCOPE], 'DecomNet/g_conv10/weights',
                      'decom_grad_g_conv10_weights', 'decom_step1_g_conv10_weights',
                      ['loss_batch_low', 'loss_batch_high']),
    'adjustment': (AdjustmentStage, [model.DECOM_SCOPE, model.ADJUST_SCOPE],
                   'Illumination_adjust_net/en_conv_4/weights', 'adjust_grad_en_conv_4_weights',
                   'adjust_step1_en_conv_4_weights', ['stage23_I_low', 'RATIO', 'stage23_I_high']),
    'restoration': (RestorationStage, [model.DECOM_SCOPE, model.RESTORATION_SCOPE],
                    'Restoration_net/de_conv10/biases', 'restore_grad_de_conv10_biases',
                    'restore_step1_de_conv10_biases',
                    ['stage23_R_low', 'stage23_I_low', 'restore_target_batch']),
}


@pytest.mark.parametrize('case', sorted(ADAM_CASES))
def test_one_adam_step_of_the_trainers_graph(oracle, case):
    """The trainer's own graph (training.build_training_graph) takes the authors' first Adam step."""
    stage_class, scopes, name, gradient_key, step_key, feed_keys = ADAM_CASES[case]
    stage = stage_class()
    args = training.training_parser(stage).parse_args(['--patch_size', '48'])
    built = training.build_training_graph(stage, args)
    ratio = np.ones((4, 48, 48, 1), np.float32) * oracle['adjust_ratio_batch'][:, None, None, None]
    arrays = [ratio if key == 'RATIO' else oracle[key] for key in feed_keys]
    with built.graph.as_default(), tf.Session(graph=built.graph) as session:
        session.run(built.init)
        for scope in scopes:
            restore_reference(session, scope)
        variable = [v for v in built.net_vars if v.op.name == name][0]
        feed = dict(zip(built.feeds, arrays))
        feed[built.lr] = 1e-4
        gradient = session.run(tf.gradients(built.terms['total'], variable)[0], feed)
        np.testing.assert_allclose(gradient, oracle[gradient_key], rtol=1e-4, atol=1e-7)
        session.run(built.train_op, feed)
        np.testing.assert_allclose(session.run(variable), oracle[step_key], rtol=0, atol=1e-6)
        assert session.run(built.global_step) == 1
