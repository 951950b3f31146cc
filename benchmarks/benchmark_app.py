"""Server-side latency of the relighting page (app.py) on the 600x400 demo photo (coffee, darkened by
evaluate.simulate_low_light), with the page's Relighter and Gradio's image encoding.

  python benchmarks/benchmark_app.py                # per slider move and first view (about a minute)
  python benchmarks/benchmark_app.py --moves 50 --precision bfloat16

Per move: KinD.relight from the stored stages, uint8, and the file Gradio writes for the page
(gr.Image.postprocess, app.SHOWN_FORMAT), at alphas spread over the slider. First view:
Relighter.open (read, preview, one full pass, --ratio auto metering) plus the first output and
both shown files. For scale, a full pass (KinD.enhance) of the same photo. Target: a move under
MOVE_TARGET_S. Medians and 90th percentiles of wall time
after one warm-up, and the median CPU time (all threads): on a machine shared with other jobs the
wall time grows, the CPU time much less.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import app  # noqa: E402
import data  # noqa: E402

MOVE_TARGET_S = 0.150
PHOTO = 'coffee'              # 400x600 portrait: the 600x400 case


def percentiles(times):
    wall, cpu = np.array(times).T * 1000
    return 'median %7.1f ms, p90 %7.1f ms wall; CPU %7.1f ms' % (np.median(wall), np.percentile(wall, 90),
                                                                np.median(cpu))


def timed(function, repeats):
    """(wall, CPU) seconds of each of `repeats` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def main():
    import gradio as gr
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'))
    parser.add_argument('--precision', default='auto', choices=app.PRECISIONS)
    parser.add_argument('--moves', type=int, default=30, help='slider moves timed (default: %(default)s)')
    parser.add_argument('--views', type=int, default=3, help='first views timed (default: %(default)s)')
    args = parser.parse_args()
    relighter = app.Relighter(args.checkpoint_dir, args.precision)
    shown = gr.Image(format=app.SHOWN_FORMAT, interactive=False)
    with tempfile.TemporaryDirectory() as folder:
        path = app.demo_photos(folder)[app.evaluate.DEMO_IMAGES.index(PHOTO)]
        height, width = data.read_image(path)[0].shape[:2]

        def first_view():
            photo = relighter.open(path)
            shown.postprocess(data.to_uint8(photo.raw))
            shown.postprocess(data.to_uint8(relighter.relight(photo, photo.auto_alpha, 'fusion')))
            return photo

        views = timed(first_view, args.views)
        photo = first_view()
        positions = iter(np.random.default_rng(0).random(args.moves + 1))
        relight = timed(lambda: relighter.relight(photo, app.slider_to_alpha(next(positions)), 'fusion'), args.moves)
        output = data.to_uint8(relighter.relight(photo, 3.0, 'fusion'))
        encode = timed(lambda: shown.postprocess(output), args.moves)
        positions = iter(np.random.default_rng(1).random(args.moves + 1))
        moves = timed(lambda: shown.postprocess(data.to_uint8(
            relighter.relight(photo, app.slider_to_alpha(next(positions)), 'fusion'))), args.moves)
        tab = timed(lambda: relighter.decomposition(photo, 3.0), args.views)
        full = timed(lambda: relighter.kind.enhance(photo.image, 3.0, 'fusion'), args.views)
    relighter.close()
    print('photo: demo %s, %dx%d; precision %s; %d CPU cores' % (PHOTO, width, height, args.precision,
                                                                  os.cpu_count()))
    print('first view (read, one full pass, --ratio auto, first output, 2 files): %s' % percentiles(views))
    print('slider move, KinD.relight only:                                    %s' % percentiles(relight))
    print('slider move, shown file (gr.Image.postprocess, %s):               %s'
          % (app.SHOWN_FORMAT, percentiles(encode)))
    print('slider move, server side (relight + uint8 + shown file):          %s' % percentiles(moves))
    print('decomposition tab (adjusted I: adjustment net on the stored I):    %s' % percentiles(tab))
    print('full pass (KinD.enhance), for scale:                                %s' % percentiles(full))
    print('a move costs %.2f of a full pass (median wall times)' % (np.median(np.array(moves)[:, 0])
                                                                    / np.median(np.array(full)[:, 0])))
    verdict = 'meets' if np.median(np.array(moves)[:, 0]) < MOVE_TARGET_S else 'MISSES'
    print('per-move target %.0f ms: %s (median wall time)' % (1000 * MOVE_TARGET_S, verdict))


if __name__ == '__main__':
    main()
