"""Hostile inputs, bad data and interrupted training: every failure is one line naming the file and
the reason, the run goes on past bad files, and nothing is lost or overwritten."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import data
import evaluate
import training
import utils
from conftest import ROOT, write_pairs
from decomposition_net_train import DecompositionStage
from reflectance_restoration_net_train import RestorationStage

tf = utils.import_tensorflow()


def run_cli(capsys, *argv):
    status = evaluate.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    """A folder of every kind of input issue 5 lists, good and bad, with the expected outcome."""
    folder = tmp_path_factory.mktemp('hostile') / 'in'
    folder.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 80, (24, 30, 3), dtype=np.uint8)
    good = {}
    Image.fromarray(rgb).save(folder / 'rgb.png')
    Image.fromarray(rgb[..., 0]).save(folder / 'gray.png')
    Image.fromarray(rgb).convert('P', palette=Image.ADAPTIVE, colors=16).save(folder / 'palette.png')
    Image.fromarray(np.dstack([rgb, np.full((24, 30), 128, np.uint8)])).save(folder / 'alpha1.png')
    Image.fromarray(np.dstack([rgb, np.full((24, 30), 9, np.uint8)])).save(folder / 'alpha2.png')
    Image.fromarray((rgb[..., 1].astype(np.uint16) * 257)).save(folder / 'sixteen.png')
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(rgb).save(folder / 'rotated.jpg', exif=exif)
    for name, shape in (('one.png', (1, 1, 3)), ('three_by_five.png', (3, 5, 3)), ('odd.png', (17, 33, 3))):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / name)
    Image.fromarray(rgb).save(folder / 'ünïcødé 写真.png')
    good = ['rgb', 'gray', 'palette', 'alpha1', 'alpha2', 'sixteen', 'rotated', 'one', 'three_by_five',
            'odd', 'ünïcødé 写真']
    full = folder / 'full.png'
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    (folder / 'truncated.png').write_bytes(full.read_bytes()[:200])
    full.unlink()
    jpeg = folder / 'full.jpg'
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg)
    (folder / 'truncated.jpg').write_bytes(jpeg.read_bytes()[:300])
    jpeg.unlink()
    (folder / 'text.png').write_text('not an image')
    (folder / 'empty.jpg').write_bytes(b'')
    (folder / 'folder.png').mkdir()
    (folder / 'notes.txt').write_text('hello')
    bad = {'truncated.png': 'corrupt or truncated', 'truncated.jpg': 'corrupt or truncated',
           'text.png': 'not an image file', 'empty.jpg': 'empty file', 'folder.png': 'not a regular file'}
    return folder, good, bad


def test_hostile_folder(random_checkpoints, hostile, tmp_path, capsys):
    folder, good, bad = hostile
    before = {p.name: (p.read_bytes() if p.is_file() else None) for p in folder.iterdir()}
    output = tmp_path / 'out'
    status, out, err = run_cli(capsys, '--input', str(folder), '--output', str(output),
                               '--checkpoint_dir', random_checkpoints, '--no_progress')
    assert status == 1
    assert sorted(os.listdir(output)) == sorted([name + '_kindle.png' for name in good] + ['kindle_ratios.csv'])
    import csv
    statuses = {row['image']: row['status'] for row in csv.DictReader(open(output / 'kindle_ratios.csv'))}
    assert sorted(os.path.splitext(n)[0] for n, status in statuses.items() if status == 'ok') == sorted(good)
    for name, reason in bad.items():
        assert reason in statuses[name], (name, statuses)
    for name, reason in bad.items():
        lines = [line for line in out.splitlines() if line.startswith('failed:') and name in line]
        assert len(lines) == 1 and reason in lines[0], (name, out)
    assert 'skipped %s: not an image or clip extension' % (folder / 'notes.txt') in out
    assert out.count('alpha channel dropped') == 1
    assert '%d of %d images enhanced' % (len(good), len(good) + len(bad)) in out
    assert '%d failed' % len(bad) in out
    assert 'Traceback' not in out + err
    assert {p.name: (p.read_bytes() if p.is_file() else None) for p in folder.iterdir()} == before
    for name, size in (('one', (1, 1)), ('three_by_five', (5, 3)), ('odd', (33, 17)), ('rotated', (24, 30))):
        assert Image.open(output / (name + '_kindle.png')).size == size   # rotated: shown as portrait


def test_sixteen_bit_input_is_scaled_not_clipped(random_checkpoints, tmp_path):
    """A 16-bit image and its 8-bit copy give the same output (a clipped read would be white)."""
    rng = np.random.default_rng(3)
    eight = rng.integers(0, 90, (20, 26), dtype=np.uint8)
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / 'sixteen.png')
    Image.fromarray(eight).save(tmp_path / 'eight.png')
    kind = evaluate.KinD(random_checkpoints)
    outputs = [kind.enhance(data.load_image(str(tmp_path / n))) for n in ('sixteen.png', 'eight.png')]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)
    kind.close()


def test_decompression_bomb_needs_the_flag(random_checkpoints, tmp_path, capsys):
    Image.fromarray(np.zeros((120, 100, 3), np.uint8)).save(tmp_path / 'big.png')
    common = ['--input', str(tmp_path / 'big.png'), '--output', str(tmp_path / 'o'),
              '--checkpoint_dir', random_checkpoints, '--no_progress']
    status, out, _ = run_cli(capsys, *common, '--max_image_pixels', '10000')
    assert status == 1 and 'above the limit of 10000' in out and '--max_image_pixels' in out
    status, out, _ = run_cli(capsys, *common, '--max_image_pixels', '20000')
    assert status == 0 and os.path.isfile(tmp_path / 'o' / 'big_kindle.png')


@pytest.mark.parametrize('make_output', ['under_a_file', 'is_a_file'])
def test_output_folder_that_cannot_be_created(random_checkpoints, tmp_path, capsys, make_output):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'a.png')
    (tmp_path / 'file').write_text('x')
    output = tmp_path / 'file' / 'out' if make_output == 'under_a_file' else tmp_path / 'file'
    status, out, err = run_cli(capsys, '--input', str(tmp_path / 'a.png'), '--output', str(output),
                               '--checkpoint_dir', random_checkpoints, '--no_progress')
    assert status == 2
    assert err.startswith('error: %s: output folder cannot be created or written' % output)
    assert err.count('\n') == 1 and (tmp_path / 'file').read_text() == 'x'


def test_missing_checkpoint_says_which_folder_and_how(tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'a.png')
    status, _, err = run_cli(capsys, '--input', str(tmp_path / 'a.png'), '--output', str(tmp_path / 'o'),
                             '--checkpoint_dir', str(tmp_path / 'nothing'))
    assert status == 2
    assert 'no DecomNet checkpoint in %s/decom_net_train/' % (tmp_path / 'nothing') in err
    assert 'README' in err and err.count('\n') == 1


def test_checkpoint_of_another_net_names_the_variable(random_checkpoints, tmp_path, capsys):
    checkpoints = tmp_path / 'ck'
    shutil.copytree(random_checkpoints, checkpoints)
    shutil.rmtree(checkpoints / 'decom_net_train')
    shutil.copytree(checkpoints / 'illumination_adjust_net_train', checkpoints / 'decom_net_train')
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'a.png')
    status, _, err = run_cli(capsys, '--input', str(tmp_path / 'a.png'), '--output', str(tmp_path / 'o'),
                             '--checkpoint_dir', str(checkpoints))
    assert status == 2 and 'variable DecomNet/' in err and 'is missing' in err and 'Illumination_adjust_net' in err


def test_checkpoint_with_wrong_shapes_names_the_variable(tmp_path):
    graph = tf.Graph()
    with graph.as_default(), tf.Session() as session:
        wrong = tf.Variable(np.zeros((3, 3, 3, 16), np.float32), name='DecomNet/g_conv1_1/weights')
        session.run(wrong.initializer)
        tf.train.Saver([wrong]).save(session, str(tmp_path / 'model.ckpt'))
    import model
    graph = tf.Graph()
    with graph.as_default():
        model.DecomNet_simple(tf.placeholder(tf.float32, [1, None, None, 3]))
        with pytest.raises(utils.UserError, match=r'variable DecomNet/g_conv1_1/weights has shape '
                                                  r'\[3, 3, 3, 16\], the net needs \[3, 3, 3, 32\]'):
            utils.check_checkpoint(str(tmp_path / 'model.ckpt'), model.net_variables('DecomNet'))


@pytest.mark.parametrize('ratio', ['0', '-2', 'nan', 'inf', 'abc'])
def test_bad_ratio_is_refused(ratio, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(['--ratio', ratio])
    assert exit_info.value.code == 2
    assert 'must be a positive finite number' in capsys.readouterr().err


def test_enhance_refuses_a_bad_ratio(random_checkpoints):
    kind = evaluate.KinD(random_checkpoints)
    with pytest.raises(utils.UserError, match='positive finite'):
        kind.enhance(np.zeros((4, 4, 3), np.float32), ratio=float('nan'))
    kind.close()


# --- trainers --------------------------------------------------------------------------------------

def trainer(tmp_path, data_dir, *flags):
    return training.train(DecompositionStage(), ['--data_dir', str(data_dir), '--checkpoint_dir', str(tmp_path / 'ck'),
                                              '--batch_size', '2', '--patch_size', '16', '--no_progress',
                                              '--max_steps', '2'] + list(flags))


def bad_data(tmp_path, problem):
    root = tmp_path / 'data'
    write_pairs(str(root / 'our485'), 3, (24, 24))
    if problem == 'missing':
        shutil.rmtree(root / 'our485')
    elif problem == 'empty':
        for sub in ('low', 'high'):
            for f in (root / 'our485' / sub).iterdir():
                f.unlink()
    elif problem == 'unequal':
        (root / 'our485' / 'high' / '2.png').unlink()
    elif problem == 'unmatched':
        os.rename(root / 'our485' / 'high' / '3.png', root / 'our485' / 'high' / '30.png')
    elif problem == 'small':
        Image.fromarray(np.zeros((10, 24, 3), np.uint8)).save(root / 'our485' / 'low' / '2.png')
        Image.fromarray(np.zeros((10, 24, 3), np.uint8)).save(root / 'our485' / 'high' / '2.png')
    elif problem == 'unreadable':
        (root / 'our485' / 'low' / '1.png').write_text('garbage')
    return root


@pytest.mark.parametrize('problem,message', [
    ('missing', 'our485/low: folder not found'),
    ('empty', 'our485/low: no images found'),
    ('unequal', r'unpaired images \(3 low, 2 high\): no partner in .*high for 2\.png'),
    ('unmatched', r'no partner in .*high for 3\.png; no partner in .*low for 30\.png'),
    ('small', r'2\.png: image is 24x10, smaller than the patch size 16'),
    ('unreadable', r'1\.png: not an image file PIL can read'),
])
def test_bad_training_data_fails_before_any_step(tmp_path, capsys, problem, message):
    assert trainer(tmp_path, bad_data(tmp_path, problem)) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1
    import re
    assert re.search(message, err), err
    assert utils.latest_checkpoint(str(tmp_path / 'ck' / 'runs' / 'decomposition' / 'state')) is None


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_lol, capsys, monkeypatch):
    import losses
    assert trainer(tmp_path, tiny_lol) == 0
    good = utils.latest_checkpoint(str(tmp_path / 'ck' / 'decom_net_train'))
    original = losses.mutual_consistency_loss
    monkeypatch.setattr(losses, 'mutual_consistency_loss',
                        lambda low, high: original(low, high) * float('nan'))
    capsys.readouterr()
    assert trainer(tmp_path, tiny_lol, '--max_steps', '6') == 1
    err = capsys.readouterr().err
    assert 'loss term total, i_mutual is nan at step 3' in err and 'step 2' in err
    assert utils.latest_checkpoint(str(tmp_path / 'ck' / 'decom_net_train')) == good
    state = utils.latest_checkpoint(str(tmp_path / 'ck' / 'runs' / 'decomposition' / 'state'))
    assert state.endswith('-2')


def test_refuses_to_train_over_weights_it_did_not_write(tmp_path, tiny_lol, capsys):
    assert trainer(tmp_path, tiny_lol) == 0
    shutil.rmtree(tmp_path / 'ck' / 'runs')
    assert trainer(tmp_path, tiny_lol, '--max_steps', '4') == 2
    assert '--init_from_checkpoint' in capsys.readouterr().err
    assert trainer(tmp_path, tiny_lol, '--max_steps', '4', '--init_from_checkpoint') == 0


def test_later_stage_refuses_a_decomposition_checkpoint_of_another_net(tmp_path, tiny_lol, random_checkpoints, capsys):
    checkpoints = tmp_path / 'ck'
    shutil.copytree(os.path.join(random_checkpoints, 'Restoration_net_train'), checkpoints / 'decom_net_train')
    status = training.train(RestorationStage(), ['--data_dir', tiny_lol, '--checkpoint_dir', str(checkpoints),
                                              '--patch_size', '16', '--no_progress'])
    assert status == 2
    assert 'variable DecomNet/g_conv10/biases is missing' in capsys.readouterr().err


def _spawn(tiny_lol, checkpoint_dir, max_steps):
    command = [sys.executable, os.path.join(ROOT, 'decomposition_net_train.py'), '--data_dir', tiny_lol,
               '--checkpoint_dir', checkpoint_dir, '--batch_size', '2', '--patch_size', '32', '--seed', '11',
               '--save_every', '1', '--no_progress', '--log_every', '1', '--max_steps', str(max_steps)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_step(process, step):
    for line in process.stdout:
        if line.startswith('step %d/' % step):
            return
    raise AssertionError('the trainer ended before step %d' % step)


def _weights(folder):
    reader = tf.train.load_checkpoint(utils.latest_checkpoint(folder))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.startswith('DecomNet/')
            and 'Adam' not in n}


@pytest.mark.slow
def test_sigkill_mid_run_resumes_exactly(tiny_lol, tmp_path):
    """SIGKILL at an arbitrary moment (saves every 2 steps); the last checkpoint loads, the next run
    resumes from its step, and the result equals an uninterrupted run with the same seed."""
    killed = str(tmp_path / 'killed')
    process = _spawn(tiny_lol, killed, 400)
    _wait_for_step(process, 9)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state_dir = os.path.join(killed, 'runs', 'decomposition', 'state')
    prefix = utils.latest_checkpoint(state_dir)
    saved_step = int(tf.train.load_checkpoint(prefix).get_tensor('global_step'))
    assert saved_step >= 8 and prefix.endswith('-%d' % saved_step)
    saved = _weights(state_dir)
    assert len(saved) == 18
    target = saved_step + 3
    resumed = _spawn(tiny_lol, killed, target)
    output = resumed.communicate()[0]
    assert resumed.returncode == 0, output
    assert 'resumed from %s (step %d)' % (prefix, saved_step) in output
    straight = str(tmp_path / 'straight')
    reference = _spawn(tiny_lol, straight, target)
    assert reference.wait() == 0
    resumed_weights = _weights(os.path.join(killed, 'decom_net_train'))
    for name, array in _weights(os.path.join(straight, 'decom_net_train')).items():
        np.testing.assert_allclose(resumed_weights[name], array, rtol=0, atol=1e-7, err_msg=name)


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_cleanly(tiny_lol, tmp_path):
    checkpoint_dir = str(tmp_path / 'ck')
    process = _spawn(tiny_lol, checkpoint_dir, 1000)
    _wait_for_step(process, 5)
    process.send_signal(signal.SIGINT)
    output = process.communicate()[0]
    assert process.returncode == 130
    assert 'interrupted: saved step' in output and 'Traceback' not in output
    step = int(output.split('interrupted: saved step ')[1].split()[0])
    state = utils.latest_checkpoint(os.path.join(checkpoint_dir, 'runs', 'decomposition', 'state'))
    assert state.endswith('-%d' % step) and step >= 5
    assert utils.latest_checkpoint(os.path.join(checkpoint_dir, 'decom_net_train')).endswith('-%d' % step)
