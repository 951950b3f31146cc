"""float32 against bfloat16 on LOL eval15: scores, the largest per-pixel difference, time per image.

  python benchmarks/benchmark_precision.py [--lol ../shared/data/LOL]     # about 3 minutes

For each precision, every eval15 image goes through evaluate.KinD as `evaluate.py --high ...
--precision P` runs it: plain at the ratio of the decomposed ground truth (the LOL protocol) and
fusion at --ratio auto (no ground truth). Prints PSNR / SSIM (utils.METRIC_PROTOCOL), the median
seconds per image of the ground-truth-ratio pass (read and ratio excluded), and the bfloat16 output's
largest and mean difference from float32's, in saved levels of 255. bfloat16 is fast only where the
CPU has it natively (AVX512-BF16 or AMX); elsewhere it is emulated and slower than float32.
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import data  # noqa: E402
import utils  # noqa: E402
utils.import_tensorflow()
import evaluate  # noqa: E402


def run(kind, pairs):
    """{row: [(psnr, ssim, output)]} and the seconds of each ground-truth-ratio pass."""
    rows, seconds = {'plain, ground-truth ratio': [], 'fusion, --ratio auto': []}, []
    for low_path, high_path in pairs:
        low, high = data.read_pixels(low_path)[0], data.read_pixels(high_path)[0]
        ratio = kind.ground_truth_ratio(data.normalise(low), data.normalise(high))
        start = time.perf_counter()
        plain = kind.enhance_pixels(low, ratio, 'plain')[0]
        seconds.append(time.perf_counter() - start)
        auto = kind.enhance_pixels(low, 'auto', 'fusion')[0]
        for row, output in zip(rows, (plain, auto)):
            rows[row].append((utils.psnr(high, output), utils.ssim_metric(high, output), output))
    return rows, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--lol', default=os.path.join(ROOT, 'LOLdataset'),
                        help='folder holding eval15/{low,high} (default: %(default)s)')
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'))
    args = parser.parse_args(argv)
    pairs = data.find_pairs(os.path.join(args.lol, 'eval15', 'low'), os.path.join(args.lol, 'eval15', 'high'))
    flags = utils.cpu_flags()
    print('machine: %d CPUs, native bfloat16: %s; %d eval15 pairs' % (
        os.cpu_count(), ', '.join(sorted(flags & set(utils.NATIVE_BF16_FLAGS))) or 'no (emulated)', len(pairs)))
    results = {}
    for precision in evaluate.PRECISIONS:
        kind = evaluate.KinD(args.checkpoint_dir, precision=precision)
        kind.enhance_pixels(data.read_pixels(pairs[0][0])[0], 3.0)   # warm-up
        results[precision] = run(kind, pairs)
        kind.close()
    print('| precision | row | PSNR | SSIM | median s / image | max / mean |diff| vs float32 (levels) |')
    print('|---|---|---|---|---|---|')
    for precision, (rows, seconds) in results.items():
        for row, scores in rows.items():
            differences = [np.abs(output.astype(int) - reference.astype(int)) for (_, _, output), (_, _, reference)
                           in zip(scores, results['float32'][0][row])]
            print('| %s | %s | %.4f | %.4f | %s | %d / %.3f |' % (
                precision, row, np.mean([s[0] for s in scores]), np.mean([s[1] for s in scores]),
                '%.3f' % np.median(seconds) if row.startswith('plain') else '',
                max(d.max() for d in differences), np.mean([d.mean() for d in differences])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
