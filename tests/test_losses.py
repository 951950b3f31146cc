"""Loss checks independent of the oracle: the spec's gradient vectors, SSIM against a float64
numpy SSIM, grayscale weights and each stage's weighted total."""
import numpy as np
import pytest

import losses
import utils

tf = utils.import_tensorflow()


@pytest.fixture(scope='module')
def session():
    graph = tf.Graph()
    with graph.as_default():
        with tf.Session() as sess:
            yield sess


def run(session, tensor_fn, *arrays):
    with session.graph.as_default():
        return session.run(tensor_fn(*[tf.constant(np.asarray(a, np.float32)) for a in arrays]))


@pytest.mark.parametrize('x,gx,gy', [
    ([[1, 2], [3, 5]], [[0.399992, 0.99998], [0, 0]], [[0.599988, 0], [0.99998, 0]]),
    ([[0.1, 0.4, 0.2], [0.7, 0.3, 0.9]], [[0.444395, 0.666593, 0.999889], [0, 0, 0]],
     [[0.111099, 0.777691, 0], [0.333296, 0.999889, 0]]),
])
def test_gradient_vectors_of_the_spec(session, x, gx, gy):
    image = np.asarray(x, np.float32)[None, :, :, None]
    np.testing.assert_allclose(run(session, lambda t: losses.gradient(t, 'x'), image)[0, ..., 0], gx, atol=2e-6)
    np.testing.assert_allclose(run(session, lambda t: losses.gradient(t, 'y'), image)[0, ..., 0], gy, atol=2e-6)


def test_gradient_normalises_over_the_whole_batch(session):
    """One min and max for the batch: scaling one image changes the other's normalised map."""
    rng = np.random.default_rng(0)
    batch = rng.random((2, 8, 9, 1)).astype(np.float32)
    alone = run(session, lambda t: losses.gradient(t, 'x'), batch[:1])
    together = run(session, lambda t: losses.gradient(t, 'x'), np.concatenate([batch[:1], 3 * batch[1:]]))
    assert not np.allclose(alone[0], together[0])
    assert together.min() == 0.0 and abs(together.max() - 1.0) < 1e-3


def numpy_ssim(x, y):
    """Float64 SSIM of spec 5.1 (11x11 Gaussian sigma 1.5, VALID, C1 = 0.01^2, C2 = 0.03^2), mean
    over batch, positions and channels; written independently with scipy's correlate."""
    from scipy.signal import correlate
    u = np.arange(-5, 6, dtype=np.float64)
    window = np.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * 1.5 ** 2))
    window /= window.sum()
    values = []
    for b in range(x.shape[0]):
        for c in range(x.shape[3]):
            a, b_ = x[b, :, :, c].astype(np.float64), y[b, :, :, c].astype(np.float64)
            f = lambda z: correlate(z, window, mode='valid')  # noqa: E731
            mu_a, mu_b = f(a), f(b_)
            var_a, var_b, cov = f(a * a) - mu_a ** 2, f(b_ * b_) - mu_b ** 2, f(a * b_) - mu_a * mu_b
            c1, c2 = 0.01 ** 2, 0.03 ** 2
            values.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                           / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))).mean())
    return float(np.mean(values))


@pytest.mark.parametrize('noise', [0.05, 1.0])
def test_ssim_matches_float64_numpy(session, noise):
    rng = np.random.default_rng(1)
    x = rng.random((2, 40, 33, 3)).astype(np.float32)
    y = np.clip(x * (1 - noise) + noise * rng.random(x.shape), 0, 1).astype(np.float32)
    assert abs(run(session, losses.ssim, x, y) - numpy_ssim(x, y)) < 2e-6


def test_grayscale_weights(session):
    value = run(session, losses.grayscale, np.eye(3)[None, None])
    np.testing.assert_allclose(value[0, 0, :, 0], [0.2989, 0.5870, 0.1140], atol=1e-6)


def test_stage_totals_are_the_weighted_sums(session):
    rng = np.random.default_rng(2)
    s_low, s_high, r_low, r_high = (rng.random((2, 16, 16, 3)).astype(np.float32) for _ in range(4))
    i_low, i_high = (rng.random((2, 16, 16, 1)).astype(np.float32) for _ in range(2))
    with session.graph.as_default():
        c = lambda a: tf.constant(a)  # noqa: E731
        terms = session.run(losses.decomposition_losses(c(s_low), c(s_high), (c(r_low), c(i_low)),
                                                        (c(r_high), c(i_high))))
    np.testing.assert_allclose(terms['recon_low'], np.mean(np.abs(r_low * i_low - s_low)), rtol=1e-6)
    np.testing.assert_allclose(terms['equal_R'], np.mean(np.abs(r_low - r_high)), rtol=1e-6)
    expected = (terms['recon_low'] + terms['recon_high'] + 0.01 * terms['equal_R'] + 0.2 * terms['i_mutual']
                + 0.15 * terms['i_smooth_low'] + 0.15 * terms['i_smooth_high'])
    np.testing.assert_allclose(terms['total'], expected, rtol=1e-6)
    restoration = run(session, losses.restoration_losses, r_low, r_high)
    np.testing.assert_allclose(restoration['square'], np.mean((r_low - r_high) ** 2), rtol=1e-6)
    np.testing.assert_allclose(restoration['ssim'], 1 - numpy_ssim(r_low, r_high), atol=2e-6)
    np.testing.assert_allclose(restoration['total'], restoration['square'] + restoration['ssim']
                               + restoration['grad'], rtol=1e-6)
    adjustment = run(session, losses.adjustment_losses, i_low, i_high)
    np.testing.assert_allclose(adjustment['total'], adjustment['square'] + adjustment['grad'], rtol=1e-6)
