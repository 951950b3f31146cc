"""Plot every loss term against step for the runs behind the shipped weights (docs/*.png).

  python docs/training_curves.py export <run_dir>/logs stage.csv [offset]   # TensorBoard events -> CSV
      (offset: steps the run's initial weights had already taken, added to its own step count)
  python docs/training_curves.py plot                               # docs/training_logs/*.csv -> PNGs

Needs matplotlib (a documentation tool: not in requirements.txt).
"""
import csv
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LOGS = os.path.join(HERE, 'training_logs')

# (figure, title, [(csv file, label)]) for `plot`
FIGURES = [
    ('training_decomposition.png', 'Stage 1, DecomNet: loss terms (Adam 1e-4; batch 10 x 48^2 unless said)',
     [('decomposition_tf_cpu_faithful.csv', 'TF trainer, CPU, authors\' weights (equal_R 0.01)'),
      ('decomposition_gpu_equal_R_0.01.csv', 'GPU mirror, equal_R 0.01'),
      ('decomposition_gpu_equal_R_0.1.csv', 'GPU mirror, equal_R 0.1'),
      ('decomposition_gpu_equal_R_0.3.csv', 'GPU mirror, equal_R 0.3 (shipped, part 1: 127 pairs)'),
      ('decomposition_gpu_equal_R_1.0.csv', 'GPU mirror, equal_R 1.0'),
      ('decomposition_tf_cpu_finetune_485.csv', 'TF trainer, equal_R 0.3 (shipped, part 2: 485 pairs)'),
      ('decomposition_tf_cpu_long_485.csv', 'TF trainer, equal_R 0.3 (shipped, part 3: 485 pairs)'),
      ('decomposition_tf_cpu_192px_485.csv', 'TF trainer, equal_R 0.3, 4 x 192^2 (shipped, part 4)'),
      ('scratch_decomposition.csv', 'train_from_scratch.sh, stage 1a (random init, 485 pairs)'),
      ('scratch_decomposition_large.csv', 'train_from_scratch.sh, stage 1b, 4 x 192^2')]),
    ('training_restoration.png', 'Stage 2, Restoration_net: loss terms (batch 4 x 384^2 unless said)',
     [('restoration_gpu.csv', 'shipped, part 1: 127 pairs, GPU mirror'),
      ('restoration_gpu_finetune_485.csv', 'shipped, parts 2-3: 485 pairs, GPU mirror'),
      ('restoration_tf_cpu_192px_485.csv', 'shipped, part 4: 485 pairs, TF trainer, CPU, 8 x 192^2'),
      ('restoration_tf_cpu_384px_485.csv', 'shipped, part 5: 485 pairs, TF trainer, CPU'),
      ('scratch_restoration.csv', 'train_from_scratch.sh, stage 2, 8 x 192^2 (random init)')]),
    ('training_adjustment.png', 'Stage 3, Illumination_adjust_net: loss terms (batch 10 x 48^2, TF trainer, CPU)',
     [('adjustment_tf_cpu.csv', 'earlier run, 127 pairs'),
      ('adjustment_tf_cpu_485.csv', 'earlier run, 485 pairs'),
      ('adjustment_tf_cpu_485_decom40551.csv', 'shipped, 485 pairs, shipped DecomNet'),
      ('scratch_adjustment.csv', 'train_from_scratch.sh, stage 3 (random init, its own DecomNet)')]),
]


def export(log_dir, path, offset=0):
    """Scalars 'loss/<term>' of TensorBoard event files -> CSV with one column per term, steps + offset."""
    import utils_path  # noqa: F401
    import utils
    tf = utils.import_tensorflow()
    rows = {}
    for events in sorted(glob.glob(os.path.join(log_dir, 'events.out.tfevents.*'))):
        for event in tf.train.summary_iterator(events):
            for value in event.summary.value:
                if value.tag.startswith('loss/') or value.tag == 'learning_rate':
                    rows.setdefault(event.step, {})[value.tag.replace('loss/', '')] = value.simple_value
    names = sorted({k for row in rows.values() for k in row}, key=lambda k: (k != 'total', k))
    with open(path, 'w', newline='') as stream:
        writer = csv.writer(stream)
        writer.writerow(['step'] + names)
        for step in sorted(rows):
            writer.writerow([step + offset] + ['%.6g' % rows[step].get(n, float('nan')) for n in names])


def read(path):
    with open(path) as stream:
        rows = list(csv.DictReader(stream))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def smooth(values, window):
    import numpy as np
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode='valid')


def plot_runs(runs, title, path):
    """One panel per loss term (log scale, moving average), each run a line: runs = [(columns, label)]
    with columns as `read` returns them."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    terms = [k for k in runs[0][0] if k not in ('step', 'learning_rate', 'seconds')]
    columns = min(3, len(terms))
    rows = (len(terms) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    for axis, term in zip(axes.flat, terms):
        for data, label in runs:
            if term in data:
                window = max(1, len(data[term]) // 60)
                axis.plot(data['step'][window - 1:], smooth(data[term], window), label=label, lw=1)
        axis.set_title(term)
        axis.set_xlabel('step')
        axis.set_yscale('log')
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(terms):]:
        axis.axis('off')
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title + ' (moving average)')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print('wrote', path)


def plot():
    for figure, title, runs in FIGURES:
        runs = [(read(os.path.join(LOGS, f)), label) for f, label in runs if os.path.exists(os.path.join(LOGS, f))]
        if runs:
            plot_runs(runs, title, os.path.join(HERE, figure))


if __name__ == '__main__':
    if sys.argv[1:2] == ['export']:
        export(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    else:
        plot()
