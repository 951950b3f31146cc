"""Move one net's weights between a TensorFlow checkpoint folder and a TF-named .npz (the format
gpu/train_torch.py reads and writes).

  python gpu/convert.py export checkpoint/decom_net_train decom.npz
  python gpu/convert.py import restoration.npz checkpoint/Restoration_net_train [--step N]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import utils  # noqa: E402
tf = utils.import_tensorflow()
import model  # noqa: E402

BUILDERS = {
    model.DECOM_SCOPE: lambda: model.DecomNet_simple(tf.placeholder(tf.float32, [1, None, None, 3])),
    model.RESTORATION_SCOPE: lambda: model.Restoration_net(
        tf.placeholder(tf.float32, [1, None, None, 3]), tf.placeholder(tf.float32, [1, None, None, 1])),
    model.ADJUST_SCOPE: lambda: model.Illumination_adjust_net(
        tf.placeholder(tf.float32, [1, None, None, 1]), tf.placeholder(tf.float32, [1, None, None, 1])),
}


def export_npz(folder, path):
    """Write the latest checkpoint of `folder` as {variable name: array}."""
    reader = tf.train.load_checkpoint(utils.latest_checkpoint(folder))
    np.savez(path, **{n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()})


def import_npz(paths, folder, step=None):
    """Build the net the arrays belong to, load them by name (names and shapes checked) and save a
    weights-only checkpoint into `folder`."""
    arrays = utils.load_npz_parts(paths)
    scope = {name.split('/')[0] for name in arrays}
    if len(scope) != 1 or next(iter(scope)) not in BUILDERS:
        raise utils.UserError('%s: expected the variables of one net, found scopes %s' % (paths, sorted(scope)))
    scope = scope.pop()
    graph = tf.Graph()
    with graph.as_default(), tf.Session() as session:
        BUILDERS[scope]()
        variables = model.net_variables(scope)
        expected = {v.op.name: v.shape.as_list() for v in variables}
        found = {k: list(v.shape) for k, v in arrays.items()}
        if expected != found:
            name = sorted(n for n in set(expected) | set(found) if expected.get(n) != found.get(n))[0]
            raise utils.UserError('variable %s: the net needs %s, the file has %s'
                                  % (name, expected.get(name), found.get(name)))
        for variable in variables:
            variable.load(arrays[variable.op.name], session)
        os.makedirs(folder, exist_ok=True)
        tf.train.Saver({v.op.name: v for v in variables}, save_relative_paths=True).save(
            session, os.path.join(folder, 'model.ckpt'), global_step=step, write_meta_graph=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    export = commands.add_parser('export', help='checkpoint folder -> npz')
    export.add_argument('folder')
    export.add_argument('npz')
    load = commands.add_parser('import', help='npz file(s) -> checkpoint folder')
    load.add_argument('npz', nargs='+')
    load.add_argument('folder')
    load.add_argument('--step', type=int, default=None, help='global step to put in the file name')
    args = parser.parse_args(argv)
    if args.command == 'export':
        return utils.exit_status(export_npz, args.folder, args.npz)
    return utils.exit_status(import_npz, args.npz, args.folder, args.step)


if __name__ == '__main__':
    sys.exit(main())
