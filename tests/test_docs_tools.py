"""The documentation tools in docs/: the decomposition comparison picture and the curve export."""
import csv
import importlib.util
import os
import sys

import numpy as np
import pytest
from PIL import Image

import training
import utils
from conftest import ROOT

DOCS = os.path.join(ROOT, 'docs')


def load_docs_script(name):
    sys.path.insert(0, DOCS)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(DOCS, name + '.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(DOCS)


def test_comparison_picture_shows_every_panel_at_a_third_of_the_image(tiny_lol, tmp_path, monkeypatch, capsys):
    comparison = load_docs_script('decomposition_comparison')
    picture = str(tmp_path / 'comparison.png')
    weights = os.path.join(ROOT, 'checkpoint', 'decom_net_train')
    monkeypatch.setattr(sys, 'argv', ['decomposition_comparison.py', '--model', 'a=' + weights, '--model',
                                      'b=' + weights, '--data_dir', tiny_lol, '--images', '1',
                                      '--picture', picture])
    assert comparison.main() == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(('| a |', '| b |'))]
    assert len(rows) == 2 and rows[0][4:] == rows[1][4:] and np.isfinite(float(rows[0].split('|')[2]))
    height, width = -(-40 // 3), -(-56 // 3)            # eval15 pairs of 40 x 56, every third pixel
    grid = np.asarray(Image.open(picture))
    strip = training.strip_height(training.label_size(height))
    assert grid.shape == (2 * 2 * (height + strip), 3 * width, 3)   # per model: low row over high row


def test_curve_export_adds_the_step_offset(tmp_path):
    curves = load_docs_script('training_curves')
    tf = utils.import_tensorflow()
    log_dir = str(tmp_path / 'logs')
    writer = tf.summary.FileWriter(log_dir, graph=None)
    for step, value in ((10, 0.5), (20, 0.25)):
        summary = tf.Summary(value=[tf.Summary.Value(tag='loss/total', simple_value=value),
                                    tf.Summary.Value(tag='learning_rate', simple_value=1e-4)])
        writer.add_summary(summary, step)
    writer.close()
    path = str(tmp_path / 'run.csv')
    curves.export(log_dir, path, offset=1000)
    with open(path) as stream:
        rows = list(csv.DictReader(stream))
    assert [(int(r['step']), float(r['total'])) for r in rows] == [(1010, 0.5), (1020, 0.25)]


def test_error_split_first_column_is_evaluate_s_lol_score(tiny_lol, tmp_path, capsys):
    """docs/error_split.py's R-hat x I-hat column reproduces evaluate.py's per-image PSNR (plain, GT ratio)."""
    import evaluate
    eval15 = os.path.join(tiny_lol, 'eval15')
    assert evaluate.main(['--input', os.path.join(eval15, 'low'), '--high', os.path.join(eval15, 'high'),
                          '--output', str(tmp_path), '--no_progress']) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    scores = {cells[0]: float(cells[2]) for cells in table if len(cells) == 4 and cells[0].endswith('.png')}
    error_split = load_docs_script('error_split')
    assert error_split.main(['--data_dir', tiny_lol, '--checkpoint_dir', os.path.join(ROOT, 'checkpoint')]) == 0
    rows = [line.strip('| ').split(' | ') for line in capsys.readouterr().out.splitlines() if '.png |' in line]
    assert sorted(row[0] for row in rows) == sorted(scores) and len(rows) == 2
    for row in rows:
        assert float(row[1]) == pytest.approx(scores[row[0]], abs=0.006)
        assert float(row[4]) > float(row[1])     # the reference's own decomposition beats the pipeline
