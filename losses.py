"""KinD loss terms (spec sections 4-5), each the value the authors' training code computes.

Every term is a small function returning a scalar tensor; each stage's total is a weighted sum with
its weights named once below. "mean" is over every element, batch included, as in the authors' code.
"""
import tensorflow.compat.v1 as tf

from constants import (ADJUSTMENT_WEIGHTS, DECOMPOSITION_WEIGHTS, GRADIENT_KERNEL_X, GRADIENT_KERNEL_Y,  # noqa: F401
                       GRADIENT_NORM_EPSILON, GRAY_WEIGHTS, MUTUAL_CONSISTENCY_C, RESTORATION_WEIGHTS,
                       SMOOTHNESS_EPSILON, SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_SIZE)


def gradient(x, direction):
    """Min-max normalised |gradient| G_d(x) of a 1-channel batch [B,H,W,1], d in {'x', 'y'}.

    Reproduces the authors' operator exactly (spec 4.1): SAME padding of a 2x2 kernel (zero last
    row of G_x, last column of G_y, spurious border jumps), one min and max over the whole batch.
    No library op pads and normalises this way, hence the hand-written conv.
    """
    kernel = {'x': GRADIENT_KERNEL_X, 'y': GRADIENT_KERNEL_Y}[direction]
    kernel = tf.reshape(tf.constant(kernel, tf.float32), [2, 2, 1, 1])
    magnitude = tf.abs(tf.nn.conv2d(x, kernel, strides=[1, 1, 1, 1], padding='SAME'))
    low, high = tf.reduce_min(magnitude), tf.reduce_max(magnitude)
    return (magnitude - low) / (high - low + GRADIENT_NORM_EPSILON)


def grayscale(rgb):
    """ITU-R 601 luma (GRAY_WEIGHTS): the grayscale the authors' losses use."""
    return tf.image.rgb_to_grayscale(rgb)


# --- Stage 1: decomposition (spec 4.2) -------------------------------------------------------------

def reconstruction_loss(reflectance, illumination, image):
    """mean |R * I^3 - S|: the decomposition must multiply back to the input."""
    return tf.reduce_mean(tf.abs(reflectance * illumination - image))


def reflectance_similarity_loss(reflectance_low, reflectance_high):
    """mean |R_low - R_high|: both exposures share one reflectance."""
    return tf.reduce_mean(tf.abs(reflectance_low - reflectance_high))


def mutual_consistency_loss(illumination_low, illumination_high):
    """mean(M_x exp(-c M_x) + M_y exp(-c M_y)), M_d = G_d(I_low) + G_d(I_high), c = 10."""
    total = 0.0
    for direction in 'xy':
        m = gradient(illumination_low, direction) + gradient(illumination_high, direction)
        total += m * tf.exp(-MUTUAL_CONSISTENCY_C * m)
    return tf.reduce_mean(total)


def illumination_smoothness_loss(illumination, image):
    """mean(G_x(I) / max(G_x(gray S), 0.01) + same for y): smooth I except at the input's edges."""
    gray = grayscale(image)
    total = 0.0
    for direction in 'xy':
        guide = tf.maximum(gradient(gray, direction), SMOOTHNESS_EPSILON)
        total += gradient(illumination, direction) / guide
    return tf.reduce_mean(total)


def weighted_total(terms, weights):
    """Sum of weights[name] * terms[name] over the weights' names."""
    return tf.add_n([weights[name] * terms[name] for name in weights])


def decomposition_losses(image_low, image_high, decomposition_low, decomposition_high,
                         weights=DECOMPOSITION_WEIGHTS):
    """Every stage-1 term and their weighted 'total', from the two inputs and their (R, I)."""
    (reflectance_low, illumination_low) = decomposition_low
    (reflectance_high, illumination_high) = decomposition_high
    terms = {
        'recon_low': reconstruction_loss(reflectance_low, illumination_low, image_low),
        'recon_high': reconstruction_loss(reflectance_high, illumination_high, image_high),
        'equal_R': reflectance_similarity_loss(reflectance_low, reflectance_high),
        'i_mutual': mutual_consistency_loss(illumination_low, illumination_high),
        'i_smooth_low': illumination_smoothness_loss(illumination_low, image_low),
        'i_smooth_high': illumination_smoothness_loss(illumination_high, image_high),
    }
    terms['total'] = weighted_total(terms, weights)
    return terms


# --- SSIM (spec 5.1) --------------------------------------------------------------------------------

def ssim(x, y):
    """Mean SSIM of two batches in [0, 1] (11x11 Gaussian window, sigma 1.5, VALID), over all channels.

    `tf.image.ssim` computes the authors' `tf_ssim` quantity (same window, constants and VALID
    reduction); it differs only by float32 round-off (<= 4e-5, spec 5.1). Needs H, W >= 11.
    """
    return tf.reduce_mean(tf.image.ssim(x, y, max_val=1.0, filter_size=SSIM_SIZE, filter_sigma=SSIM_SIGMA,
                                        k1=SSIM_K1, k2=SSIM_K2))


# --- Stage 2: restoration (spec 5.2) ---------------------------------------------------------------

def gradient_difference_loss(output, target):
    """mean((G_x(out) - G_x(target))^2 + (G_y(out) - G_y(target))^2), each G normalised on its own."""
    total = 0.0
    for direction in 'xy':
        total += tf.square(gradient(output, direction) - gradient(target, direction))
    return tf.reduce_mean(total)


def restoration_losses(restored, target):
    """Stage-2 terms: squared error, 1 - SSIM (mean of the 3 channels), gray gradient; and 'total'."""
    terms = {
        'square': tf.reduce_mean(tf.square(restored - target)),
        'ssim': 1.0 - ssim(restored, target),
        'grad': gradient_difference_loss(grayscale(restored), grayscale(target)),
    }
    terms['total'] = weighted_total(terms, RESTORATION_WEIGHTS)
    return terms


# --- Stage 3: illumination adjustment (spec 5.3) ---------------------------------------------------

def adjustment_losses(adjusted, target):
    """Stage-3 terms: squared error and gradient difference (1-channel, no grayscale); and 'total'."""
    terms = {
        'square': tf.reduce_mean(tf.square(adjusted - target)),
        'grad': gradient_difference_loss(adjusted, target),
    }
    terms['total'] = weighted_total(terms, ADJUSTMENT_WEIGHTS)
    return terms
