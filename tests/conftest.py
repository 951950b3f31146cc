"""Shared fixtures: paths to the read-only reference data, the oracle, tiny generated datasets."""
import os
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import utils  # noqa: E402

utils.import_tensorflow()

SHARED = os.environ.get('KIND_SHARED', os.path.join(ROOT, '..', 'shared'))
REFERENCE = os.path.join(SHARED, 'reference', 'kind_official')
REFERENCE_CHECKPOINTS = os.path.join(REFERENCE, 'checkpoint')
ORACLE = os.path.join(REFERENCE, 'kind_official.npz')
LOL = os.path.join(SHARED, 'data', 'LOL')

needs_reference = pytest.mark.skipif(not os.path.isfile(ORACLE),
                                     reason='reference oracle not found at %s' % REFERENCE)
needs_lol = pytest.mark.skipif(not os.path.isdir(os.path.join(LOL, 'eval15', 'low')),
                               reason='LOL data not found at %s' % LOL)


@pytest.fixture(scope='session')
def oracle():
    if not os.path.isfile(ORACLE):
        pytest.skip('reference oracle not found at %s' % ORACLE)
    with np.load(ORACLE) as data:
        return {key: data[key] for key in data.files}


def write_pairs(folder, count, size=(64, 64), seed=0, start=1):
    """`count` synthetic pairs <folder>/{low,high}/<i>.png: a smooth colour field (high) and a dark,
    noisy copy (low). Returns the folder."""
    rng = np.random.default_rng(seed)
    for sub in ('low', 'high'):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    height, width = size
    for index in range(start, start + count):
        coarse = rng.random((6, 6, 3)) * 255
        high = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BILINEAR))
        low = np.clip(high * 0.12 + rng.normal(0, 2, high.shape), 0, 255).astype(np.uint8)
        Image.fromarray(high).save(os.path.join(folder, 'high', '%d.png' % index))
        Image.fromarray(low).save(os.path.join(folder, 'low', '%d.png' % index))
    return folder


@pytest.fixture(scope='session')
def tiny_lol(tmp_path_factory):
    """A tiny LOL-like tree: our485 with 4 pairs of 64x64, eval15 with 2 pairs of 40x56."""
    root = str(tmp_path_factory.mktemp('tiny_lol'))
    write_pairs(os.path.join(root, 'our485'), 4, (64, 64), seed=1)
    write_pairs(os.path.join(root, 'eval15'), 2, (40, 56), seed=2)
    return root


@pytest.fixture(scope='session')
def random_checkpoints(tmp_path_factory):
    """A checkpoint root with seeded random weights for all three nets, in the canonical folders."""
    import model
    tf = utils.import_tensorflow()
    root = str(tmp_path_factory.mktemp('random_checkpoints'))
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        image = tf.placeholder(tf.float32, [1, None, None, 3])
        reflectance, illumination = model.DecomNet_simple(image)
        model.Restoration_net(reflectance, illumination)
        model.Illumination_adjust_net(illumination, illumination)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for scope, folder in (('DecomNet', 'decom_net_train'), ('Restoration_net', 'Restoration_net_train'),
                                  ('Illumination_adjust_net', 'illumination_adjust_net_train')):
                variables = model.net_variables(scope)
                tf.train.Saver({v.op.name: v for v in variables}).save(
                    session, os.path.join(root, folder, 'model.ckpt'), write_meta_graph=False)
    return root
