"""PyTorch mirror of KinD's DecomNet and Restoration_net and of the stage 1-2 losses, for GPU
machines without TensorFlow (gpu/train_torch.py). Same layers, padding, pooling and transposed-conv
cropping as model.py (spec 3.2-3.3), weights exchanged under the authors' TF variable names and
layouts; same losses as losses.py (spec 4-5.2); TF1's Adam update. tests/test_torch_mirror.py
checks all of it against the oracle.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from constants import (ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON, DECOMPOSITION_WEIGHTS,  # noqa: E402
                       GRADIENT_NORM_EPSILON, GRAY_WEIGHTS, LEAKY_SLOPE, MUTUAL_CONSISTENCY_C,
                       RESTORATION_WEIGHTS, SMOOTHNESS_EPSILON, SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_SIZE)

SSIM_C1, SSIM_C2 = SSIM_K1 ** 2, SSIM_K2 ** 2


def lrelu(x):
    return torch.maximum(LEAKY_SLOPE * x, x)


def pool(x):
    """slim.max_pool2d([2,2], stride 2, SAME): windows anchored at 0, a last partial window."""
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


class Deconv(nn.Module):
    """upsample_and_concat: 2x2/s2 transposed conv (no bias) cropped to the skip, then [deconv, skip]."""

    def __init__(self, out_channels, in_channels):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels, 2, 2))
        glorot_uniform_(self.weight)

    def forward(self, x, skip):
        up = F.conv_transpose2d(x, self.weight, stride=2)[:, :, :skip.shape[2], :skip.shape[3]]
        return torch.cat([up, skip], 1)


def glorot_uniform_(weight):
    """TF's Glorot-uniform init (slim's xavier for convs, get_variable's default for deconvs):
    U(-l, l), l = sqrt(6 / (fan_in + fan_out)) with fan = kh * kw * channels, as TF counts them."""
    receptive = weight.shape[2] * weight.shape[3]
    limit = np.sqrt(6.0 / (receptive * (weight.shape[0] + weight.shape[1])))
    nn.init.uniform_(weight, -limit, limit)


def conv(in_channels, out_channels, kernel=3):
    layer = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
    glorot_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class DecomNet(nn.Module):
    scope = 'DecomNet'

    def __init__(self):
        super().__init__()
        self.g_conv1_1, self.g_conv2_1, self.g_conv3_1 = conv(3, 32), conv(32, 64), conv(64, 128)
        self.g_up_1, self.g_conv8_1 = Deconv(64, 128), conv(128, 64)
        self.g_up_2, self.g_conv9_1 = Deconv(32, 64), conv(64, 32)
        self.g_conv10, self.l_conv1_2, self.l_conv1_4 = conv(32, 3, 1), conv(32, 32), conv(64, 1, 1)

    def forward(self, image):
        conv1 = lrelu(self.g_conv1_1(image))
        conv2 = lrelu(self.g_conv2_1(pool(conv1)))
        conv3 = lrelu(self.g_conv3_1(pool(conv2)))
        conv8 = lrelu(self.g_conv8_1(self.g_up_1(conv3, conv2)))
        conv9 = lrelu(self.g_conv9_1(self.g_up_2(conv8, conv1)))
        reflectance = torch.sigmoid(self.g_conv10(conv9))
        l_conv2 = lrelu(self.l_conv1_2(conv1))
        illumination = torch.sigmoid(self.l_conv1_4(torch.cat([l_conv2, conv9], 1)))
        return reflectance, illumination


class RestorationNet(nn.Module):
    scope = 'Restoration_net'
    CHANNELS = (32, 64, 128, 256, 512)

    def __init__(self):
        super().__init__()
        previous = 4
        for level, channels in enumerate(self.CHANNELS, start=1):
            setattr(self, 'de_conv%d_1' % level, conv(previous, channels))
            setattr(self, 'de_conv%d_2' % level, conv(channels, channels))
            previous = channels
        for level, channels in zip((6, 7, 8, 9), (256, 128, 64, 32)):
            setattr(self, 'up_%d' % level, Deconv(channels, channels * 2))
            setattr(self, 'de_conv%d_1' % level, conv(channels * 2, channels))
            setattr(self, 'de_conv%d_2' % level, conv(channels, channels))
        self.de_conv10 = conv(32, 3)

    def forward(self, reflectance, illumination):
        x, skips = torch.cat([reflectance, illumination], 1), []
        for level in range(1, 6):
            if level > 1:
                x = pool(x)
            x = lrelu(getattr(self, 'de_conv%d_1' % level)(x))
            x = lrelu(getattr(self, 'de_conv%d_2' % level)(x))
            skips.append(x)
        for level in (6, 7, 8, 9):
            x = getattr(self, 'up_%d' % level)(x, skips[9 - level])
            x = lrelu(getattr(self, 'de_conv%d_1' % level)(x))
            x = lrelu(getattr(self, 'de_conv%d_2' % level)(x))
        return torch.sigmoid(self.de_conv10(x))


def _tf_names(module):
    """[(TF variable name, torch parameter)]. TF stores conv kernels [kh,kw,in,out] and transposed
    conv kernels [kh,kw,out,in]; torch [out,in,kh,kw] and [in,out,kh,kw]: one permutation each way."""
    entries = []
    for name, parameter in module.named_parameters():
        layer, kind = name.rsplit('.', 1)
        entries.append(('%s/%s/%s' % (module.scope, layer, 'weights' if kind == 'weight' else 'biases'),
                        parameter))
    return entries


def load_tf_arrays(module, arrays):
    """Copy weights stored under TF names and layouts into the module."""
    for name, parameter in _tf_names(module):
        value = torch.from_numpy(np.asarray(arrays[name], np.float32))
        parameter.data.copy_(value.permute(3, 2, 0, 1) if value.ndim == 4 else value)


def tf_arrays(module):
    """{TF name: array in TF layout} of the module's weights."""
    return {name: (p.detach().cpu().permute(2, 3, 1, 0) if p.ndim == 4 else p.detach().cpu()).numpy().copy()
            for name, p in _tf_names(module)}


# --- losses (spec 4.1, 5.1, 5.2) ------------------------------------------------------------------

def gradient(x, direction):
    """The authors' min-max normalised |gradient| with TF's SAME padding of a 2x2 kernel
    (constants.GRADIENT_KERNEL_X/Y written as the differences they take)."""
    padded = F.pad(x, (0, 1, 0, 1))
    if direction == 'x':
        difference = padded[:, :, 1:, 1:] - padded[:, :, 1:, :-1]
    else:
        difference = padded[:, :, 1:, 1:] - padded[:, :, :-1, 1:]
    magnitude = difference.abs()
    low, high = magnitude.min(), magnitude.max()
    return (magnitude - low) / (high - low + GRADIENT_NORM_EPSILON)


def gray(x):
    weights = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def ssim(x, y):
    """Mean SSIM over batch, positions and channels: 11x11 Gaussian (sigma 1.5), VALID."""
    u = torch.arange(SSIM_SIZE, dtype=torch.float32, device=x.device) - SSIM_SIZE // 2
    window = torch.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * SSIM_SIGMA ** 2))
    window = (window / window.sum()).view(1, 1, SSIM_SIZE, SSIM_SIZE).repeat(x.shape[1], 1, 1, 1)
    f = lambda z: F.conv2d(z, window, groups=x.shape[1])  # noqa: E731
    mu_x, mu_y = f(x), f(y)
    var_x, var_y, cov = f(x * x) - mu_x ** 2, f(y * y) - mu_y ** 2, f(x * y) - mu_x * mu_y
    return (((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2))
            / ((mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (var_x + var_y + SSIM_C2))).mean()


def mean_gradient_terms(x):
    """{'x': G_x(x), 'y': G_y(x)}."""
    return {d: gradient(x, d) for d in 'xy'}


def decomposition_losses(image_low, image_high, low, high, weights=DECOMPOSITION_WEIGHTS):
    """Stage-1 terms (losses.decomposition_losses) and their total under `weights`."""
    (r_low, i_low), (r_high, i_high) = low, high
    g_low, g_high = mean_gradient_terms(i_low), mean_gradient_terms(i_high)
    terms = {
        'recon_low': (r_low * i_low - image_low).abs().mean(),
        'recon_high': (r_high * i_high - image_high).abs().mean(),
        'equal_R': (r_low - r_high).abs().mean(),
        'i_mutual': sum((g_low[d] + g_high[d]) * torch.exp(-MUTUAL_CONSISTENCY_C * (g_low[d] + g_high[d]))
                        for d in 'xy').mean(),
    }
    for name, gradients, image in (('i_smooth_low', g_low, image_low), ('i_smooth_high', g_high, image_high)):
        guide = mean_gradient_terms(gray(image))
        terms[name] = sum(gradients[d] / torch.clamp(guide[d], min=SMOOTHNESS_EPSILON) for d in 'xy').mean()
    terms['total'] = sum(weights[k] * terms[k] for k in weights)
    return terms


def restoration_losses(restored, target):
    gray_restored, gray_target = gray(restored), gray(target)
    terms = {
        'square': ((restored - target) ** 2).mean(),
        'ssim': 1.0 - ssim(restored, target),
        'grad': sum(((gradient(gray_restored, d) - gradient(gray_target, d)) ** 2)
                    for d in 'xy').mean(),
    }
    terms['total'] = sum(RESTORATION_WEIGHTS[k] * terms[k] for k in RESTORATION_WEIGHTS)
    return terms


class TF1Adam(torch.optim.Adam):
    """torch's Adam with TF1's epsilon placement: TF adds eps to sqrt(v) before bias correction,
    i.e. torch's eps = eps_tf / sqrt(1 - beta2^t), updated before every step."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr, betas=(ADAM_BETA1, ADAM_BETA2), eps=ADAM_EPSILON)
        self.steps_taken = 0

    def step(self, closure=None):
        self.steps_taken += 1
        for group in self.param_groups:
            group['eps'] = ADAM_EPSILON / np.sqrt(1.0 - ADAM_BETA2 ** self.steps_taken)
        return super().step(closure)
