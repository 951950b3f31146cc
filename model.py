"""The three KinD networks (spec section 3), with the authors' scopes and variable names.

The nets are pure graph builders: tensors in, tensors out, no files, no sessions. Each is built
inside ``tf.variable_scope(<NetName>, reuse=tf.AUTO_REUSE)`` so that calling it twice (low and
high image) shares one set of variables whose names never get ``_1`` suffixes.
"""
import tensorflow.compat.v1 as tf
import tf_slim as slim

from constants import (DECODER_HALO, LEAKY_SLOPE, PRECISIONS, RECEPTIVE_RADIUS,  # noqa: F401 (model.RECEPTIVE_RADIUS)
                       RESTORATION_INPUT_REACH, RESTORATION_REACH)

DECOM_SCOPE = 'DecomNet'
RESTORATION_SCOPE = 'Restoration_net'
ADJUST_SCOPE = 'Illumination_adjust_net'

# Parameter counts of spec section 3 (= the authors' checkpoints' sizes / 4).
PARAM_COUNTS = {DECOM_SCOPE: 235876, RESTORATION_SCOPE: 7760739, ADJUST_SCOPE: 19393}


def lrelu(x):
    """Leaky ReLU with slope 0.2: max(0.2 x, x)."""
    return tf.maximum(LEAKY_SLOPE * x, x)


def upsample_and_concat(x1, x2, output_channels, in_channels, scope_name):
    """2x transposed conv of ``x1`` (no bias, no activation) to the shape of ``x2``, then concat.

    The filter ``<scope>/weights`` has the transposed-conv layout [2, 2, out, in] and the TF default
    (Glorot uniform) initialiser; the output is ``concat([deconv, x2])``, deconv first.
    """
    with tf.variable_scope(scope_name, reuse=tf.AUTO_REUSE):
        deconv_filter = tf.get_variable('weights', [2, 2, output_channels, in_channels], dtype=x1.dtype)
        deconv = tf.nn.conv2d_transpose(x1, deconv_filter, tf.shape(x2), strides=[1, 2, 2, 1])
        output = tf.concat([deconv, x2], 3)
        output.set_shape([None, None, None, output_channels * 2])
    return output


def _conv(x, channels, scope, kernel=3, activation=lrelu):
    return slim.conv2d(x, channels, [kernel, kernel], rate=1, activation_fn=activation, scope=scope)


def _pool(x):
    return slim.max_pool2d(x, [2, 2], stride=2, padding='SAME')


def _output(logits):
    """The sigmoid that ends each net, computed in float32 whatever the net's precision: a bfloat16
    output in [0, 1] would carry only 8 significant bits (up to 1 level of 255 near white)."""
    return tf.sigmoid(tf.cast(logits, tf.float32))


def DecomNet_simple(input_image):
    """Retinex decomposition S -> (R, I): reflectance [B,H,W,3] and illumination [B,H,W,1]."""
    with tf.variable_scope(DECOM_SCOPE, reuse=tf.AUTO_REUSE):
        conv1 = _conv(input_image, 32, 'g_conv1_1')
        conv2 = _conv(_pool(conv1), 64, 'g_conv2_1')
        conv3 = _conv(_pool(conv2), 128, 'g_conv3_1')
        up8 = upsample_and_concat(conv3, conv2, 64, 128, 'g_up_1')
        conv8 = _conv(up8, 64, 'g_conv8_1')
        up9 = upsample_and_concat(conv8, conv1, 32, 64, 'g_up_2')
        conv9 = _conv(up9, 32, 'g_conv9_1')
        # The authors' output convs are 1x1 (paper: 3x3; spec quirk Q10).
        reflectance = _output(_conv(conv9, 3, 'g_conv10', kernel=1, activation=None))

        l_conv2 = _conv(conv1, 32, 'l_conv1_2')
        l_conv3 = tf.concat([l_conv2, conv9], 3)
        illumination = _output(_conv(l_conv3, 1, 'l_conv1_4', kernel=1, activation=None))
    return reflectance, illumination


def Restoration_net(input_r, input_i, inner=None):
    """Reflectance restoration (R, I) -> R_hat [B,H,W,3]: a 5-level U-Net on concat([R, I]).

    `inner` (top, left, height, width), int32 scalars, its edges on the 16-px grid or the image's
    edge (a pooled cell must pool what the whole image's does): R_hat is returned on that window
    of the input only (a tile's inner window; pipeline.py), and each level runs on what that
    needs: encoder level k's output is cut to the inner window grown by
    RESTORATION_REACH[k - 1] px (levels 1-4's once pooled: the same cells, so levels 1-3's reach
    is on the grid of the level after the next, which pools from where the cut starts), decoder
    level 6's to the inner window (its input covers 16 px more) and levels 7-9 run on it; the
    skips are cut from the uncut outputs. A cut pads with zeros where the whole image has
    neighbours, so the outer DECODER_HALO px of an inner window that is not at the image's edge are
    not the whole image's, nor is anything where the input reaches less than
    RESTORATION_INPUT_REACH px beyond it.
    """
    with tf.variable_scope(RESTORATION_SCOPE, reuse=tf.AUTO_REUSE):
        x = tf.concat([input_r, input_i], 3)
        size = None if inner is None else tf.shape(x)[1:3]

        def grown(reach):
            return _grown(inner, reach, size)
        skips, origin = [], (0, 0)
        for level, channels in enumerate([32, 64, 128, 256, 512], start=1):
            if level > 1:
                x = _pool(x)
                if inner is not None:         # cut once pooled: the same cells, a quarter of the copy
                    x, origin = _cut(x, origin, grown(RESTORATION_REACH[level - 2]), 2 ** (level - 1))
            x = _conv(x, channels, 'de_conv%d_1' % level)
            x = _conv(x, channels, 'de_conv%d_2' % level)
            skips.append((x, origin))
        x, origin = skips[-1]
        if inner is not None:
            x, origin = _cut(x, origin, grown(RESTORATION_REACH[4]), 16)
        for level, channels in zip([6, 7, 8, 9], [256, 128, 64, 32]):
            skip, skip_origin = skips[9 - level]
            if inner is not None:                 # the skip on x's window
                skip, _ = _cut(skip, skip_origin, grown(RESTORATION_REACH[4] if level == 6 else 0), 2 ** (9 - level))
            x = upsample_and_concat(x, skip, channels, channels * 2, 'up_%d' % level)
            x = _conv(x, channels, 'de_conv%d_1' % level)
            x = _conv(x, channels, 'de_conv%d_2' % level)
            if inner is not None and level == 6:
                x, origin = _cut(x, origin, grown(0), 8)
        return _output(_conv(x, 3, 'de_conv10', activation=None))


def _grown(inner, reach, size):
    """The window (top, left, bottom, right) `inner` (top, left, height, width) grown by `reach` px
    on each side, within an image of `size` (height, width)."""
    top, left, height, width = inner
    return (tf.maximum(top - reach, 0), tf.maximum(left - reach, 0),
            tf.minimum(top + height + reach, size[0]), tf.minimum(left + width + reach, size[1]))


def _cut(x, origin, window, scale):
    """(the cells of x, a feature map at 1/scale whose first cell starts at full-resolution px
    `origin` (top, left), that cover `window` (top, left, bottom, right) in full-resolution px, its
    end rounded up as SAME pooling rounds a map's size; the cut's origin). The window's start and
    the origin are on the scale's grid."""
    top, left, bottom, right = window
    rows = slice((top - origin[0]) // scale, -(-bottom // scale) - origin[0] // scale)
    columns = slice((left - origin[1]) // scale, -(-right // scale) - origin[1] // scale)
    return x[:, rows, columns], (top, left)


def Illumination_adjust_net(input_i, input_ratio):
    """Illumination adjustment (I, ratio map A) -> I_hat [B,H,W,1]; A is a constant 1-channel map."""
    with tf.variable_scope(ADJUST_SCOPE, reuse=tf.AUTO_REUSE):
        x = tf.concat([input_i, input_ratio], 3)
        for index in range(1, 4):
            x = _conv(x, 32, 'en_conv_%d' % index)
        # The last conv keeps the lrelu before the sigmoid, as the authors' code (spec Q9).
        return _output(_conv(x, 1, 'en_conv_4'))


def _float32_variables(getter, *args, **kwargs):
    """Custom getter for mixed precision: every variable is created and stored in float32 (so
    checkpoints, savers and Adam's slots are the float32 ones); a net computing in bfloat16 reads
    a bfloat16 cast of it, through which the gradient flows back in float32."""
    dtype = kwargs.get('dtype')
    if dtype is None or dtype == tf.float32:
        return getter(*args, **kwargs)
    kwargs['dtype'] = tf.float32
    return tf.cast(getter(*args, **kwargs), dtype)


def in_precision(net, precision, *inputs):
    """net(*inputs) computed in `precision` ('float32' or 'bfloat16'): inputs are cast to it, the
    variables stay float32 (see _float32_variables) and the outputs come back as float32, so the
    losses, SSIM included, stay in float32. 'float32' builds exactly net(*inputs)."""
    if precision == 'float32':
        return net(*inputs)
    if precision not in PRECISIONS:
        raise ValueError('precision must be one of %s, got %r' % (', '.join(PRECISIONS), precision))
    dtype = tf.as_dtype(precision)
    with tf.variable_scope(tf.get_variable_scope(), custom_getter=_float32_variables):
        outputs = net(*[tf.cast(x, dtype) for x in inputs])
    return tf.nest.map_structure(lambda x: tf.cast(x, tf.float32), outputs)


def net_variables(scope):
    """The variables of one net (no optimizer slots), by scope name (``DecomNet``...), sorted by name."""
    variables = tf.trainable_variables(scope=scope + '/')
    return sorted(variables, key=lambda v: v.op.name)


def parameter_count(scope):
    """Number of scalar parameters in the variables of one net of the default graph."""
    return sum(v.shape.num_elements() for v in net_variables(scope))
