"""Architecture checks that need no oracle: names, parameter counts, odd sizes, receptive fields,
the bfloat16 nets."""
import os
import re

import numpy as np
import pytest

import model
import utils
from conftest import REFERENCE_CHECKPOINTS, ROOT, needs_reference

tf = utils.import_tensorflow()

FOLDERS = {model.DECOM_SCOPE: 'decom_net_train', model.RESTORATION_SCOPE: 'Restoration_net_train',
           model.ADJUST_SCOPE: 'illumination_adjust_net_train'}


@pytest.fixture(scope='module')
def nets():
    """All three nets on free-size placeholders, randomly initialised (seeded), one session."""
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        image = tf.placeholder(tf.float32, [None, None, None, 3])
        reflectance_in = tf.placeholder(tf.float32, [None, None, None, 3])
        illumination_in = tf.placeholder(tf.float32, [None, None, None, 1])
        ratio = tf.placeholder(tf.float32, [None, None, None, 1])
        outputs = {
            model.DECOM_SCOPE: model.DecomNet_simple(image),
            model.RESTORATION_SCOPE: model.Restoration_net(reflectance_in, illumination_in),
            model.ADJUST_SCOPE: model.Illumination_adjust_net(illumination_in, ratio),
        }
        model.DecomNet_simple(image)  # a second call must reuse, not duplicate, the variables
        # the same nets computing in bfloat16 (the trainers' --precision bfloat16) share the variables
        bfloat16_outputs = {
            model.DECOM_SCOPE: model.in_precision(model.DecomNet_simple, 'bfloat16', image),
            model.RESTORATION_SCOPE: model.in_precision(model.Restoration_net, 'bfloat16', reflectance_in,
                                                        illumination_in),
            model.ADJUST_SCOPE: model.in_precision(model.Illumination_adjust_net, 'bfloat16', illumination_in,
                                                   ratio),
        }
        bfloat16_convs = [op for op in graph.get_operations()
                          if op.type == 'Conv2D' and op.get_attr('T') == tf.bfloat16]
        counts = {scope: model.parameter_count(scope) for scope in outputs}
        names = {scope: [(v.op.name, v.shape.as_list()) for v in model.net_variables(scope)]
                 for scope in outputs}
        session = tf.Session()
        session.run(tf.global_variables_initializer())
    feeds = dict(image=image, reflectance=reflectance_in, illumination=illumination_in, ratio=ratio)
    yield session, outputs, feeds, counts, names, bfloat16_outputs, bfloat16_convs
    session.close()


def test_parameter_counts(nets):
    counts = nets[3]
    assert counts == {model.DECOM_SCOPE: 235876, model.RESTORATION_SCOPE: 7760739,
                      model.ADJUST_SCOPE: 19393}
    assert counts == model.PARAM_COUNTS


def test_variable_names_have_no_suffixes(nets):
    names = nets[4]
    assert len(names[model.DECOM_SCOPE]) == 18
    assert len(names[model.RESTORATION_SCOPE]) == 42
    assert len(names[model.ADJUST_SCOPE]) == 8
    flat = [n for scope in names.values() for n, _ in scope]
    assert {n.split('/')[0] for n in flat} == set(names)   # no 'DecomNet_1/...' copies
    assert ('DecomNet/g_up_1/weights', [2, 2, 64, 128]) in names[model.DECOM_SCOPE]
    assert ('Restoration_net/up_6/weights', [2, 2, 256, 512]) in names[model.RESTORATION_SCOPE]
    assert ('Illumination_adjust_net/en_conv_4/weights', [3, 3, 32, 1]) in names[model.ADJUST_SCOPE]


@needs_reference
@pytest.mark.parametrize('scope', sorted(FOLDERS))
def test_names_and_shapes_equal_released_checkpoints(nets, scope):
    stored = sorted((n, list(s)) for n, s in tf.train.list_variables(
        tf.train.latest_checkpoint('%s/%s' % (REFERENCE_CHECKPOINTS, FOLDERS[scope]))))
    assert stored == sorted(nets[4][scope])


def _run(nets, scope, height, width, rng):
    session, outputs, feeds = nets[:3]
    feed = {feeds['image']: rng.random((1, height, width, 3), dtype=np.float32),
            feeds['reflectance']: rng.random((1, height, width, 3), dtype=np.float32),
            feeds['illumination']: rng.random((1, height, width, 1), dtype=np.float32),
            feeds['ratio']: np.full((1, height, width, 1), 2.0, np.float32)}
    return session.run(outputs[scope], feed), feed


@pytest.mark.parametrize('height,width', [(37, 53), (33, 33), (17, 17), (15, 15), (3, 5), (2, 2),
                                          (1, 1), (401, 31)])
def test_any_size_keeps_its_shape(nets, height, width):
    rng = np.random.default_rng(height * 1000 + width)
    (reflectance, illumination), _ = _run(nets, model.DECOM_SCOPE, height, width, rng)
    assert reflectance.shape == (1, height, width, 3) and illumination.shape == (1, height, width, 1)
    restored, _ = _run(nets, model.RESTORATION_SCOPE, height, width, rng)
    assert restored.shape == (1, height, width, 3)
    adjusted, _ = _run(nets, model.ADJUST_SCOPE, height, width, rng)
    assert adjusted.shape == (1, height, width, 1)
    for output in (reflectance, illumination, restored, adjusted):
        assert np.all((output >= 0) & (output <= 1))


def _reach(nets, scope, size, position):
    """Largest row and column distance from `position` to an output pixel that changes when that
    one input pixel changes."""
    session, outputs, feeds = nets[:3]
    rng = np.random.default_rng(7)
    feed = {feeds['image']: rng.random((1, size, size, 3), dtype=np.float32),
            feeds['reflectance']: rng.random((1, size, size, 3), dtype=np.float32),
            feeds['illumination']: rng.random((1, size, size, 1), dtype=np.float32),
            feeds['ratio']: np.full((1, size, size, 1), 2.0, np.float32)}
    output = outputs[scope][0] if scope == model.DECOM_SCOPE else outputs[scope]
    key = feeds['image'] if scope == model.DECOM_SCOPE else feeds['illumination']
    reference = session.run(output, feed)
    feed[key] = feed[key].copy()
    feed[key][0, position[0], position[1]] += 5.0
    rows, columns = np.nonzero(np.abs(session.run(output, feed) - reference)[0].max(axis=-1))
    return np.abs(rows - position[0]).max(), np.abs(columns - position[1]).max()


@pytest.mark.parametrize('scope,size', [(model.DECOM_SCOPE, 64), (model.RESTORATION_SCOPE, 288),
                                        (model.ADJUST_SCOPE, 16)])
def test_receptive_radius(nets, scope, size):
    """Over every alignment to the 16-px pooling grid, a changed input pixel moves output pixels
    exactly up to the stated radius away, never farther (tiled inference's margins rely on it)."""
    centre = size // 2 - 8
    reaches = [_reach(nets, scope, size, (centre + d, centre + d)) for d in range(16)]
    assert max(max(r) for r in reaches) == model.RECEPTIVE_RADIUS[scope]


@pytest.mark.parametrize('scope,convs', [(model.DECOM_SCOPE, 8), (model.RESTORATION_SCOPE, 19),
                                         (model.ADJUST_SCOPE, 4)])
def test_bfloat16_nets_read_the_float32_weights_and_agree(nets, scope, convs):
    """in_precision(net, 'bfloat16') adds no variable (the counts above include it), runs every conv
    in bfloat16 and returns float32 outputs within bfloat16 round-off of the float32 nets'."""
    session, outputs, feeds, _, _, bfloat16_outputs, bfloat16_convs = nets
    assert sum(re.match(scope + r'(_\d+)?/', op.name) is not None for op in bfloat16_convs) == convs
    expected, feed = _run(nets, scope, 24, 40, np.random.default_rng(3))
    actual = session.run(bfloat16_outputs[scope], feed)
    for want, got in zip(expected, actual) if scope == model.DECOM_SCOPE else [(expected, actual)]:
        assert got.dtype == np.float32 and got.shape == want.shape
        difference = np.abs(got - want)
        assert 0 < difference.mean() < 4e-3 and difference.max() < 2e-2


def test_the_restoration_cut_to_an_inner_window_is_the_whole_image_s_within_its_halo():
    """Restoration_net(inner=...) (the shipped weights) on a window reaching RESTORATION_INPUT_REACH
    px (on the 16-px grid: 80) beyond the inner window gives the whole image's R-hat on the inner
    window less DECODER_HALO px on every side that is not the image's edge, and both numbers are
    tight: 16 px less input, or 1 px more of the inner window, and it differs."""
    assert model.RESTORATION_REACH == (76, 72, 64, 48, 16)
    # levels 1-4 are cut once pooled, so levels 2-4 pool from where their cut starts: on their grid
    assert all(reach % 2 ** (level + 1) == 0 for level, reach in enumerate(model.RESTORATION_REACH[:3], start=1))
    assert (model.RESTORATION_INPUT_REACH, model.DECODER_HALO) == (78, 15)
    graph = tf.Graph()
    with graph.as_default():
        reflectance_in = tf.placeholder(tf.float32, [1, None, None, 3])
        illumination_in = tf.placeholder(tf.float32, [1, None, None, 1])
        inner = tf.placeholder(tf.int32, [4])
        whole_net = model.Restoration_net(reflectance_in, illumination_in)
        cut_net = model.Restoration_net(reflectance_in, illumination_in, tf.unstack(inner))
        session = tf.Session()
        utils.restore_net(session, model.net_variables(model.RESTORATION_SCOPE),
                          os.path.join(ROOT, 'checkpoint', FOLDERS[model.RESTORATION_SCOPE]), 'restoration')
    rng = np.random.default_rng(5)
    height, width = 250, 330
    reflectance = rng.random((1, height, width, 3), dtype=np.float32)
    illumination = rng.random((1, height, width, 1), dtype=np.float32)
    whole = session.run(whole_net, {reflectance_in: reflectance, illumination_in: illumination})[0]
    reach, halo = -(-model.RESTORATION_INPUT_REACH // 16) * 16, model.DECODER_HALO

    def cut(top, left, bottom, right, margin):
        """R-hat on the inner window [top:bottom, left:right] from an input reaching `margin` px beyond it."""
        window = (max(0, top - margin), max(0, left - margin), min(height, bottom + margin), min(width, right + margin))
        feed = {reflectance_in: reflectance[:, window[0]:window[2], window[1]:window[3]],
                illumination_in: illumination[:, window[0]:window[2], window[1]:window[3]],
                inner: [top - window[0], left - window[1], bottom - top, right - left]}
        return session.run(cut_net, feed)[0]

    inner_windows = [(96, 112, 160, 208), (0, 16, 96, 256), (144, 96, height, width), (0, 0, height, width)]
    for top, left, bottom, right in inner_windows:                     # inside, at edges, the whole
        output = cut(top, left, bottom, right, reach)
        assert output.shape == (bottom - top, right - left, 3)
        core = (slice(0 if top == 0 else halo, None if bottom == height else -halo),
                slice(0 if left == 0 else halo, None if right == width else -halo))
        np.testing.assert_allclose(output[core], whole[top:bottom, left:right][core], atol=1e-5)
    top, left, bottom, right = 96, 112, 160, 208                        # an inner window inside the image
    core, wider = (slice(halo, -halo),) * 2, (slice(halo - 1, 1 - halo),) * 2
    expected = whole[top:bottom, left:right]
    assert np.abs(cut(top, left, bottom, right, reach - 16)[core] - expected[core]).max() > 1e-3      # measured 2e-2
    assert np.abs(cut(top, left, bottom, right, reach)[wider] - expected[wider]).max() > 2e-4         # measured 7e-4
    session.close()
