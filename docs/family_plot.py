"""No cliff: --ratio auto on a generated family that moves from a dark room to a night scene in
eleven steps (synthetic.room_to_night), the output's dark part, lit part and mean against the step.

  python docs/family_plot.py                      # the table
  python docs/family_plot.py --plot docs/family.png   # and the figure (needs matplotlib, a documentation tool)

Also plotted: the same family under synthetic.CLIFF_RULE, a hard threshold instead of
exposure.NIGHT_EMPTY's ramp (the night weight jumping where the empty share crosses 0.4), a lit
photo's black released at alpha 2-6 (exposure.HOLD_ALPHAS of the first version) and guarded within
0.12 (BLACK_GUARD until 2026-12-07), which is what a cliff looks like.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import exposure  # noqa: E402
import exposure_checks  # noqa: E402
import synthetic  # noqa: E402
import utils  # noqa: E402
utils.import_tensorflow()
import evaluate  # noqa: E402

STEPS = np.linspace(0.0, 1.0, 11)


def levels(kind):
    """[(dark part's mean, lit part's mean, output mean, night weight, alpha)] per step."""
    rows = []
    for step in STEPS:
        pixels, dark, lit = synthetic.room_to_night(step)
        output, chosen = kind.enhance_pixels(pixels, 'auto')
        level = exposure_checks.luminance(output)
        rows.append((level[dark].mean(), level[lit].mean(), level.mean(), chosen.night, chosen.alpha))
    return np.array(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--plot', help='write the figure here (needs matplotlib)')
    args = parser.parse_args(argv)
    kind = evaluate.KinD(os.path.join(HERE, '..', 'checkpoint'))
    ramp = levels(kind)
    for name, value in synthetic.CLIFF_RULE.items():         # a threshold: the cliff, for comparison
        setattr(exposure, name, value)
    cliff = levels(kind)
    print('step | dark part | lit part | mean | night | alpha || with a threshold: dark part | lit part | mean')
    for step, row, hard in zip(STEPS, ramp, cliff):
        print('%.1f | %.3f | %.3f | %.3f | %.2f | %.2f || %.3f | %.3f | %.3f' % ((step,) + tuple(row) + tuple(hard[:3])))
    if args.plot:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for axis, rows, title in ((axes[0], ramp, '--ratio auto (a night weight ramping with the empty share)'),
                                  (axes[1], cliff, 'a threshold on the empty share, the black released early')):
            for column, label in ((0, 'dark part (becoming a sky)'), (1, 'lit part'), (2, 'whole frame')):
                axis.plot(STEPS, rows[:, column], marker='o', label=label)
            axis.set_title(title, fontsize=9)
            axis.set_xlabel('step: 0 a dark room ... 1 a night scene')
            axis.grid(alpha=0.3)
        axes[0].set_ylabel('output mean luminance')
        axes[0].legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(args.plot, dpi=110)
    return 0


if __name__ == '__main__':
    sys.exit(main())
