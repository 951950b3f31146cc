"""The numbers of the method, each named once with its source (spec sections in brackets).

No TensorFlow here: the TF nets, losses, trainers and evaluate.py read these, and so do the
PyTorch mirror (gpu/) and the Beam pipeline (beam_enhance.py), which must not import TensorFlow's
graph mode.
"""

# --- Nets [3] ---------------------------------------------------------------------------------------
LEAKY_SLOPE = 0.2             # lrelu slope of the authors' model.py
# Receptive-field radius of each net in input pixels: the farthest an input pixel can be from an
# output pixel and still change it. Interval arithmetic over model.py's layer lists (3x3 conv: +1
# step at its stride; 2x2/s2 pool and deconv: +1 step at the finer stride, on one side only) gives
# 13, 108 and 4; tests/test_model.py checks each by perturbing single pixels. Tiled inference
# (pipeline.py) uses them to size the margins that make stitched output equal the untiled one.
RECEPTIVE_RADIUS = {'DecomNet': 13, 'Restoration_net': 108, 'Illumination_adjust_net': 4}
# Restoration_net run on a tile (model.Restoration_net(inner=...), pipeline.py) cuts each feature map
# to what the next layers read, and pads with zeros at the cut: the decoder's last three levels run
# on the inner window, whose 2 convs at 1/4, 1/2 and full resolution and the output conv spread that
# inward by 2 x 4 + 2 x 2 + 2 x 1 + 1 = 15 px, so an inner window carries this much beyond its core.
DECODER_HALO = 15


def _restoration_reach():
    """(reach of encoder levels 1-5, reach of the input): the px around the inner window that each
    level's output, and the input, must cover for the decoder to see the whole image's values on
    it. Level 6's two 3x3 convs at 1/8 read 2 cells of 8 px around the inner window, from level 5
    (upsampled) and level 4; each level k+1's two convs read 2 cells of 2^k px more of level k's
    output, rounded up to the 2^k-px grid on which level k is pooled; level 1's convs read 2 px."""
    reach = [2 * 8]
    for level in range(4, 0, -1):
        cell = 2 ** level
        reach.insert(0, -(-(reach[0] + 2 * cell) // cell) * cell)
    return tuple(reach), reach[0] + 2


# (76, 72, 64, 48, 16) and 78: a tile's restoration window reaches 16 + 78 px (aligned: 96) beyond
# its core, where the whole encoder read 112 before each level was cut (pipeline.MARGINS).
RESTORATION_REACH, RESTORATION_INPUT_REACH = _restoration_reach()

# --- Losses [4-5] -----------------------------------------------------------------------------------
# Stage 1 weights (authors' decomposition_net_train.py; paper: L_rec + 0.01 L_rs + 0.15 L_is + 0.2 L_mc).
DECOMPOSITION_WEIGHTS = {
    'recon_low': 1.0, 'recon_high': 1.0, 'equal_R': 0.01, 'i_mutual': 0.2,
    'i_smooth_low': 0.15, 'i_smooth_high': 0.15,
}
# Stages 2 and 3 sum their terms with weight 1 each (authors' trainers).
RESTORATION_WEIGHTS = {'square': 1.0, 'ssim': 1.0, 'grad': 1.0}
ADJUSTMENT_WEIGHTS = {'square': 1.0, 'grad': 1.0}

MUTUAL_CONSISTENCY_C = 10.0       # c in M * exp(-c M)
SMOOTHNESS_EPSILON = 0.01         # floor of the input gradient in the smoothness ratio
GRADIENT_NORM_EPSILON = 1e-4      # added to (max - min) when min-max normalising a gradient map
# 2x2 difference kernels of the authors' `gradient` (row index first).
GRADIENT_KERNEL_X = ((0.0, 0.0), (-1.0, 1.0))
GRADIENT_KERNEL_Y = ((0.0, -1.0), (0.0, 1.0))
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)   # ITU-R 601 luma of tf.image.rgb_to_grayscale
# SSIM [5.1]: the authors' tf_ssim = tf.image.ssim's defaults: 11x11 Gaussian, sigma 1.5, K1, K2.
SSIM_SIZE, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03

# --- Training [6] -----------------------------------------------------------------------------------
# The spec's table of trainer defaults: batch, patch, epochs, Adam rate, sample and save periods (epochs).
STAGE_DEFAULTS = {
    'decomposition': dict(batch_size=10, patch_size=48, epochs=2000, learning_rate=1e-4,
                          sample_every=200, save_every=1),
    'restoration': dict(batch_size=4, patch_size=384, epochs=1000, learning_rate=1e-4,
                        sample_every=50, save_every=50),
    'adjustment': dict(batch_size=10, patch_size=48, epochs=2000, learning_rate=1e-4,
                       sample_every=200, save_every=1),
}
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8   # tf.train.AdamOptimizer's defaults
TARGET_POWER = 1.2            # stage 2's target is R_high ** 1.2 (paper: R_high; spec Q11)
LR_DECAY_FACTORS = (1.0, 0.5, 0.25, 0.1)   # authors' stage-2 lr_schedule: 1e-4, 5e-5, 2.5e-5, 1e-5
LR_DECAY_EPOCHS = (800, 1250, 1500)        # ... after these epochs

# --- Evaluation [7] ---------------------------------------------------------------------------------
PRECISIONS = ('float32', 'bfloat16')   # the nets' compute types (trainers and evaluate.py --precision)
RATIO_EPSILON = 1e-4          # the authors' 1e-4 in every ratio estimate (spec 6, 7b, Q13)
DEFAULT_RATIO = 5.0           # alpha of the released evaluate.py (spec 7a, Q15)
GRAY_TRICK_SIGMA = 3.0        # the released gray trick: skimage.filters.gaussian(g, 3), truncate 4.0 ...
GRAY_TRICK_RADIUS = int(4.0 * GRAY_TRICK_SIGMA + 0.5)   # ... -> 25 taps, radius 12
MODES = ('fusion', 'plain')   # output: the authors' fusion with the input (spec 7a), or the product R_hat * I_hat
OUTPUT_SUFFIX = '_kindle'     # <stem>_kindle.png next to nothing the user owns
