"""The out-of-LOL check of --ratio auto: photos from other "cameras" without ground truth.

  python benchmarks/photo_check.py                    # the tables of docs/PHOTOS.md (a few minutes)
  python benchmarks/photo_check.py --max_side 400     # larger images (slower)

The set is generated, never stored (synthetic.py): the scikit-image photos captured 0.5-6 stops
under by a clean and a noisy simulated sensor (and through JPEG at quality 75 for some), with the
originals as references; the originals themselves (already well exposed: must not darken or wash
out); and synthetic night scenes (a black sky must stay dark). Each image is decomposed once and
rendered at the alpha of each rule:
  fixed 5    the released evaluate.py's ratio;
  old auto   the previous --ratio auto: metered to the LOL brightness regression alone;
  auto       brightness.choose_ratio (this release's --ratio auto).
Reported per condition: PSNR / SSIM against the original and the exposure error |log(mean out /
mean original)|, averaged over the photos; and, over every image, the counts of the failures the
rule must avoid.
"""
import argparse
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import brightness  # noqa: E402
import data  # noqa: E402
import synthetic  # noqa: E402
import utils  # noqa: E402
utils.import_tensorflow()
import evaluate  # noqa: E402

UNDER_STOPS = (0.5, 1, 2, 3, 4, 5, 6)
JPEG_STOPS, JPEG_QUALITY = (1, 3, 5), 75
NIGHT_SCENES = 4
RULES = ('fixed 5', 'old auto', 'auto')


def conditions():
    """[(label, stops, (sensor name, full well, read noise), jpeg quality or None)]."""
    result = [('%g stops, %s' % (stops, sensor[0]), stops, sensor, None)
              for stops in UNDER_STOPS for sensor in synthetic.SENSORS]
    clean = synthetic.SENSORS[0]
    result += [('%g stops, clean, JPEG %d' % (stops, JPEG_QUALITY), stops, clean, JPEG_QUALITY)
               for stops in JPEG_STOPS]
    return result


def old_auto_ratio(kind, image, raw, stages, mode):
    """The previous --ratio auto: bisection to the LOL regression's predicted brightness."""
    target = math.exp(brightness.predict(kind.brightness_fit(), brightness.features(raw)))
    low, high = math.log(brightness.METER_RANGE[0]), math.log(brightness.METER_RANGE[1])
    for _ in range(14):
        middle = 0.5 * (low + high)
        mean = data.to_uint8(kind.relight(image, stages, math.exp(middle), mode)).mean() / 255.0
        low, high = (middle, high) if mean < target else (low, middle)
    return math.exp(0.5 * (low + high))


def enhance_all(kind, raw, mode):
    """{rule: (uint8 output, alpha)} for one raw image."""
    image = data.normalise(raw)
    stages = kind.decompose(image)
    alphas = {'fixed 5': evaluate.DEFAULT_RATIO,
              'old auto': old_auto_ratio(kind, image, raw, stages, mode),
              'auto': kind.auto_ratio(image, raw, stages, mode)}
    return {rule: (data.to_uint8(kind.relight(image, stages, alpha, mode)), alpha)
            for rule, alpha in alphas.items()}


def failures(raw_uint8, output):
    """The issue's failure counts for one output: darker than the input, washed out (mean above
    max(0.65, input + 0.05)), too dark (below 0.18), clipping above the input's + 0.5 %."""
    mean_in, mean_out = raw_uint8.mean() / 255.0, output.mean() / 255.0
    clipped_in = (raw_uint8.max(axis=2) == 255).mean()
    clipped_out = (output.max(axis=2) == 255).mean()
    return np.array([mean_out < mean_in - 1.0 / 255, mean_out > max(0.65, mean_in + 0.05),
                     mean_out < 0.18, clipped_out > clipped_in + 0.005], int)


FAILURES = ('darker than input', 'washed out', 'below 0.18', 'clipping +0.5 %')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'))
    parser.add_argument('--mode', choices=evaluate.MODES, default='fusion')
    parser.add_argument('--max_side', type=int, default=256, help='photos resized to this longest side')
    parser.add_argument('--seed', type=int, default=2026)
    args = parser.parse_args(argv)
    kind = evaluate.KinD(args.checkpoint_dir)
    rng = np.random.default_rng(args.seed)
    photos = {name: synthetic.photo(name, args.max_side) for name in synthetic.PHOTOS}
    counts = {rule: np.zeros(len(FAILURES), int) for rule in RULES}
    total = 0
    print('mode %s; PSNR / SSIM / exposure error, mean over %d photos' % (args.mode, len(photos)))
    print('| condition | ' + ' | '.join(RULES) + ' |')
    print('|---' * (len(RULES) + 1) + '|')
    rows = [('well exposed (the original)', None, None, None)] + conditions()
    for label, stops, sensor, quality in rows:
        scores = {rule: [] for rule in RULES}
        for original in photos.values():
            dark = original if stops is None else synthetic.capture(
                original, stops, sensor[1], sensor[2], rng, quality)
            for rule, (output, _) in enhance_all(kind, dark / 255.0, args.mode).items():
                scores[rule].append((utils.psnr(original, output), utils.ssim_metric(original, output),
                                     abs(math.log(max(output.mean(), 0.5) / original.mean()))))
                counts[rule] += failures(dark, output)
            total += 1
        print('| %s | %s |' % (label, ' | '.join('%.2f / %.3f / %.2f' % tuple(np.mean(scores[r], axis=0))
                                                for r in RULES)), flush=True)
    print('\nnight scenes (no reference): sky mean in -> out, lit parts in -> out, alpha')
    for index in range(NIGHT_SCENES):
        dark, sky = synthetic.night_scene(300, 450, rng)
        line = []
        for rule, (output, alpha) in enhance_all(kind, dark / 255.0, args.mode).items():
            luminance_in, luminance_out = dark.mean(axis=2) / 255.0, output.mean(axis=2) / 255.0
            line.append('%s: sky %.3f -> %.3f, lit %.3f -> %.3f, alpha %.2f' % (
                rule, luminance_in[sky].mean(), luminance_out[sky].mean(), luminance_in[~sky].mean(),
                luminance_out[~sky].mean(), alpha))
            counts[rule] += failures(dark, output)
        total += 1
        print('night %d: %s' % (index + 1, '; '.join(line)), flush=True)
    print('\nfailures over all %d images:' % total)
    print('| rule | ' + ' | '.join(FAILURES) + ' |')
    print('|---' * (len(FAILURES) + 1) + '|')
    for rule in RULES:
        print('| %s | %s |' % (rule, ' | '.join(str(c) for c in counts[rule])))


if __name__ == '__main__':
    main()
