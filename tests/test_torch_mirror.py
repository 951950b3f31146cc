"""The PyTorch mirror (gpu/kind_torch.py, gpu/train_torch.py) computes what the TensorFlow code and
the authors' oracle compute. Skipped where PyTorch is not installed (it is not a requirement)."""
import os
import sys

import numpy as np
import pytest

import utils
from conftest import REFERENCE_CHECKPOINTS, ROOT, needs_reference

torch = pytest.importorskip('torch')
sys.path.insert(0, os.path.join(ROOT, 'gpu'))
import convert  # noqa: E402
import kind_torch as mirror  # noqa: E402
import train_torch  # noqa: E402

pytestmark = needs_reference


def to_torch(array):
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)


def to_numpy(tensor):
    return tensor.detach().permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp('npz')
    loaded = []
    for module, name in ((mirror.DecomNet(), 'decom_net_train'), (mirror.RestorationNet(), 'Restoration_net_train')):
        path = str(folder / (name + '.npz'))
        convert.export_npz(os.path.join(REFERENCE_CHECKPOINTS, name), path)
        mirror.load_tf_arrays(module, np.load(path))
        loaded.append(module)
    return loaded


def test_decomposition_and_restoration_match_the_oracle(nets, oracle):
    decom, restoration = nets
    with torch.no_grad():
        for key in ('low_1', 'crop_b_low'):
            reflectance, illumination = decom(to_torch(oracle[key][None]))
            np.testing.assert_allclose(to_numpy(reflectance)[0], oracle['decom_R_' + key], atol=1e-5)
            np.testing.assert_allclose(to_numpy(illumination)[0], oracle['decom_I_' + key], atol=1e-5)
        for suffix, key in (('1', 'low_1'), ('crop_b', 'crop_b_low')):
            restored = restoration(to_torch(oracle['decom_R_' + key][None]), to_torch(oracle['decom_I_' + key][None]))
            np.testing.assert_allclose(to_numpy(restored)[0], oracle['restore_R_' + suffix], atol=1e-5)


def test_the_trainers_decomposer_keeps_every_image_of_a_batch(oracle, tmp_path):
    path = str(tmp_path / 'decom.npz')
    convert.export_npz(os.path.join(REFERENCE_CHECKPOINTS, 'decom_net_train'), path)
    decompose = train_torch.decomposer(path, 'cpu')
    reflectance, illumination = decompose(np.stack([oracle['low_1']] * 2))
    assert reflectance.shape[0] == illumination.shape[0] == 2
    for index in range(2):
        np.testing.assert_allclose(reflectance[index], oracle['decom_R_low_1'], atol=1e-5)
        np.testing.assert_allclose(illumination[index], oracle['decom_I_low_1'], atol=1e-5)


def test_losses_and_gradient_match_the_oracle(oracle):
    terms = mirror.restoration_losses(to_torch(oracle['restore_out_batch']), to_torch(oracle['restore_target_batch']))
    np.testing.assert_allclose(float(terms['square']), oracle['restore_loss_square'], rtol=1e-5)
    np.testing.assert_allclose(float(terms['grad']), oracle['restore_loss_grad'], rtol=1e-5)
    np.testing.assert_allclose(float(terms['ssim']), oracle['restore_loss_ssim'], atol=1e-4)
    for direction in 'xy':
        actual = mirror.gradient(to_torch(oracle['decom_I_crop_b_low'][None]), direction)
        np.testing.assert_allclose(to_numpy(actual)[0], oracle['gradient_%s_I_crop_b' % direction], atol=1e-5)


def test_decomposition_losses_and_adam_step_match_the_oracle(nets, oracle):
    decom = nets[0]
    state = {k: v.clone() for k, v in decom.state_dict().items()}
    low, high = to_torch(oracle['loss_batch_low']), to_torch(oracle['loss_batch_high'])
    terms = mirror.decomposition_losses(low, high, decom(low), decom(high))
    keys = {'recon_low': 'decom_loss_recon_low', 'recon_high': 'decom_loss_recon_high',
            'equal_R': 'decom_loss_equal_R', 'i_mutual': 'decom_loss_i_mutual',
            'i_smooth_low': 'decom_loss_i_input_mutual_low',
            'i_smooth_high': 'decom_loss_i_input_mutual_high', 'total': 'decom_loss_total'}
    for term, key in keys.items():
        np.testing.assert_allclose(terms[term].item(), oracle[key], rtol=1e-5, err_msg=term)
    optimizer = mirror.TF1Adam(decom.parameters(), 1e-4)
    optimizer.zero_grad()
    terms['total'].backward()
    optimizer.step()
    np.testing.assert_allclose(decom.g_conv10.weight.detach().permute(2, 3, 1, 0).numpy(),
                               oracle['decom_step1_g_conv10_weights'], atol=1e-6)
    decom.load_state_dict(state)


def test_one_tf1_adam_step_matches_the_oracle(nets, oracle):
    restoration = nets[1]
    state = {k: v.clone() for k, v in restoration.state_dict().items()}
    optimizer = mirror.TF1Adam(restoration.parameters(), 1e-4)
    restored = restoration(to_torch(oracle['stage23_R_low']), to_torch(oracle['stage23_I_low']))
    loss = mirror.restoration_losses(restored, to_torch(oracle['restore_target_batch']))['total']
    optimizer.zero_grad()
    loss.backward()
    np.testing.assert_allclose(restoration.de_conv10.bias.grad.numpy(), oracle['restore_grad_de_conv10_biases'],
                               rtol=1e-4)
    optimizer.step()
    np.testing.assert_allclose(restoration.de_conv10.bias.detach().numpy(),
                               oracle['restore_step1_de_conv10_biases'], atol=1e-6)
    restoration.load_state_dict(state)


def test_weights_round_trip_through_tf_names(nets, tmp_path):
    """torch -> npz -> TF checkpoint -> npz gives back the same arrays under the authors' names."""
    arrays = mirror.tf_arrays(nets[0])
    np.savez(tmp_path / 'decom.npz', **arrays)
    convert.import_npz([str(tmp_path / 'decom.npz')], str(tmp_path / 'decom_net_train'), step=7)
    convert.export_npz(str(tmp_path / 'decom_net_train'), str(tmp_path / 'back.npz'))
    back = np.load(tmp_path / 'back.npz')
    assert sorted(back.files) == sorted(arrays) and len(arrays) == 18
    for name, array in arrays.items():
        np.testing.assert_array_equal(back[name], array)
    assert utils.latest_checkpoint(str(tmp_path / 'decom_net_train')).endswith('model.ckpt-7')


def test_training_commands_run_and_resume(tiny_lol, tmp_path, capsys):
    """A few CPU steps of each command; a second call resumes the step count."""
    decom, run = str(tmp_path / 'decom.npz'), str(tmp_path / 'run1')
    common = ['--data_dir', tiny_lol, '--batch_size', '2', '--log_every', '1']
    assert train_torch.main(['decomposition', '--run_dir', run, '--out', decom, '--steps', '2', '--patch_size', '32']
                            + common) == 0
    assert train_torch.main(['decomposition', '--run_dir', run, '--out', decom, '--steps', '3', '--patch_size', '32']
                            + common) == 0
    assert 'resumed at step 2' in capsys.readouterr().out
    assert len(np.load(decom).files) == 18
    restoration = str(tmp_path / 'restoration.npz')
    assert train_torch.main(['restoration', '--decom_weights', decom, '--run_dir', str(tmp_path / 'run2'),
                             '--out', restoration, '--steps', '2', '--patch_size', '32'] + common) == 0
    assert len(np.load(restoration).files) == 42
    assert train_torch.main(['pick', '--data_dir', tiny_lol, '--out', str(tmp_path / 'chosen.npz'), decom]) == 0
    assert 'picked' in capsys.readouterr().out


def test_init_weights_starts_a_new_run_from_given_parts(tiny_lol, tmp_path, capsys):
    """--init_weights merges npz parts into the net of a new run: after 0 steps the written weights
    are exactly the given ones."""
    source = {k: v + np.float32(0.25) for k, v in mirror.tf_arrays(mirror.DecomNet()).items()}   # not an init
    names = sorted(source)
    np.savez(tmp_path / 'a.npz', **{k: source[k] for k in names[:9]})
    np.savez(tmp_path / 'b.npz', **{k: source[k] for k in names[9:]})
    out = str(tmp_path / 'decom.npz')
    assert train_torch.main(['decomposition', '--data_dir', tiny_lol, '--run_dir', str(tmp_path / 'run'),
                             '--out', out, '--steps', '0', '--patch_size', '32', '--batch_size', '2',
                             '--init_weights', str(tmp_path / 'a.npz'), str(tmp_path / 'b.npz')]) == 0
    assert 'initialised from' in capsys.readouterr().out
    written = np.load(out)
    for name in names:
        np.testing.assert_array_equal(written[name], source[name])
