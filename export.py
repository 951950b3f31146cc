"""Export the KinD graph as a TF SavedModel (and optionally TFLite) that runs without this repository.

  python export.py --output export/kind                  # SavedModel from ./checkpoint
  python export.py --output export/kind --tflite 400x600 # plus export/kind.tflite for 400x600 inputs

The SavedModel (tag "serve") has four signatures; `image` is one RGB image [H,W,3] of any size,
`alpha` the illumination ratio (a float32 scalar). The per-image min-max normalisation of spec 2.1
runs inside the graph, so raw pixels go in.

  serving_default  image uint8 [H,W,3], alpha          -> fusion, plain         float32 [H,W,3] in [0,1]
                                                         fusion_uint8, plain_uint8  uint8 [H,W,3]
  enhance_float    image float32 [H,W,3] in [0,1], alpha -> the same four outputs
  stages           image float32 [H,W,3] in [0,1]      -> normalised [H,W,3], reflectance [H,W,3],
                                                          illumination [H,W,1], restored [H,W,3]
  relight          normalised, reflectance, illumination, restored (stages' outputs, any common
                   size), alpha                         -> fusion, plain, fusion_uint8, plain_uint8

fusion is evaluate.py's default mode (gray trick, then fusion with the input), plain is
R_restored x I_adjusted; the uint8 outputs are evaluate.py's saved pixels (x 255, clipped,
truncated). stages + relight are for metering alpha (--ratio auto, see beam_enhance.py): relight
runs only the adjustment net and the fusion. The SavedModel does not tile: callers process an image
whole (memory grows with its pixel count) or tile it themselves. The brightness fit of --ratio auto
(auto_ratio.json) is copied into the SavedModel's assets/ when the checkpoint has one.
"""
import argparse
import os
import sys

import data
import utils
tf = utils.import_tensorflow()  # before model: quiet TF start-up
import brightness  # noqa: E402
import evaluate  # noqa: E402
import model  # noqa: E402
from pipeline import tile_signature  # noqa: E402

WHOLE_SIGNATURES = ('serving_default', 'enhance_float', 'stages', 'relight')   # float32, whole images
TILE_SIGNATURES = ('decompose', 'restore', 'relight_map')   # per tile, in each precision (pipeline.tile_signature)
SIGNATURES = WHOLE_SIGNATURES + tuple(tile_signature(name, precision) for name in TILE_SIGNATURES
                                      for precision in evaluate.PRECISIONS)
UINT8_MAX = 255.0


def normalise(image):
    """data.normalise in TF ops: [H,W,3] float in [0,1] -> min 0, max 1 over all pixels and channels."""
    low, high = tf.reduce_min(image), tf.reduce_max(image)
    return (image - low) / tf.maximum(high - low, data.NORMALISE_FLOOR)


def to_uint8(image):
    """data.to_uint8 in TF ops: uint8(clip(255 x, 0, 255)), truncated toward zero."""
    return tf.cast(tf.clip_by_value(image * UINT8_MAX, 0.0, UINT8_MAX), tf.uint8)


def relight(normalised, reflectance, illumination, restored, alpha):
    """Both modes' outputs [B,H,W,3] from the stages [B,H,W,C] and a scalar alpha (as evaluate.KinD)."""
    outputs = evaluate.relight_outputs(normalised, reflectance, illumination, restored,
                                       tf.fill(tf.shape(illumination), alpha))
    return {mode: outputs[mode] for mode in evaluate.MODES}


def stages(raw):
    """{name: [1,H,W,C]} normalised input, reflectance, illumination, restored of raw [H,W,3] in [0,1]."""
    normalised = normalise(raw)[None]
    reflectance, illumination = model.DecomNet_simple(normalised)
    restored = model.Restoration_net(reflectance, illumination)
    return {'normalised': normalised, 'reflectance': reflectance, 'illumination': illumination,
            'restored': restored}


def with_uint8(outputs):
    """Both modes without the batch axis, as float32 and as uint8."""
    result = {}
    for mode in evaluate.MODES:
        result[mode] = outputs[mode][0]
        result[mode + '_uint8'] = to_uint8(outputs[mode][0])
    return result


def build_signatures():
    """Build the graph in the default graph; returns {signature name: (inputs, outputs)} of tensors."""
    alpha = tf.placeholder(tf.float32, [], name='alpha')
    image_uint8 = tf.placeholder(tf.uint8, [None, None, 3], name='image_uint8')
    image_float = tf.placeholder(tf.float32, [None, None, 3], name='image_float')
    uint8_stages = stages(tf.cast(image_uint8, tf.float32) / UINT8_MAX)
    float_stages = stages(image_float)
    signatures = {
        'serving_default': ({'image': image_uint8, 'alpha': alpha},
                            with_uint8(relight(alpha=alpha, **uint8_stages))),
        'enhance_float': ({'image': image_float, 'alpha': alpha}, with_uint8(relight(alpha=alpha, **float_stages))),
        'stages': ({'image': image_float}, {key: value[0] for key, value in float_stages.items()}),
    }
    given = {'normalised': tf.placeholder(tf.float32, [None, None, 3], name='normalised'),
             'reflectance': tf.placeholder(tf.float32, [None, None, 3], name='reflectance'),
             'illumination': tf.placeholder(tf.float32, [None, None, 1], name='illumination'),
             'restored': tf.placeholder(tf.float32, [None, None, 3], name='restored')}
    outputs = relight(alpha=alpha, **{key: value[None] for key, value in given.items()})
    signatures['relight'] = (dict(given, alpha=alpha), with_uint8(outputs))
    for precision in evaluate.PRECISIONS:
        signatures.update(build_tile_signatures(precision))
    return signatures


def build_tile_signatures(precision):
    """{name: (inputs, outputs)} of the three per-tile steps of evaluate.KinD in `precision`, the
    normalisation and the tiling left to the caller (pipeline.py): decompose (normalised [h,w,3] ->
    reflectance, illumination: DecomNet), restore (reflectance, illumination of a tile's window and
    its inner window [top, left, height, width] -> restored on the inner window) and relight_map
    (normalised, reflectance, illumination, restored and ratio_map [h,w,1] -> fusion, plain float32
    [h,w,3])."""
    normalised = tf.placeholder(tf.float32, [None, None, 3], name='normalised_' + precision)
    reflectance, illumination = model.in_precision(model.DecomNet_simple, precision, normalised[None])
    window = {name: tf.placeholder(tf.float32, [None, None, channels], name='window_%s_%s' % (name, precision))
              for name, channels in (('reflectance', 3), ('illumination', 1))}
    inner = tf.placeholder(tf.int32, [4], name='inner_' + precision)
    restored = model.in_precision(lambda r, i: model.Restoration_net(r, i, tf.unstack(inner)), precision,
                                  window['reflectance'][None], window['illumination'][None])
    given = {name: tf.placeholder(tf.float32, [None, None, channels], name='%s_%s' % (name, precision))
             for name, channels in (('normalised', 3), ('reflectance', 3), ('illumination', 1), ('restored', 3),
                                    ('ratio_map', 1))}
    outputs = evaluate.relight_outputs(*[given[name][None] for name in (
        'normalised', 'reflectance', 'illumination', 'restored', 'ratio_map')], precision)
    return {tile_signature('decompose', precision): ({'normalised': normalised},
                                                      {'reflectance': reflectance[0], 'illumination': illumination[0]}),
            tile_signature('restore', precision): (dict(window, inner=inner), {'restored': restored[0]}),
            tile_signature('relight_map', precision): (given, {mode: outputs[mode][0] for mode in evaluate.MODES})}


def restore_weights(session, checkpoint_dir):
    """Load the three nets' weights as evaluate.KinD does; returns the checkpoint prefixes."""
    return [utils.restore_net(session, model.net_variables(scope), os.path.join(checkpoint_dir, folder), scope)
            for scope, folder in evaluate.WEIGHT_FOLDERS.items()]


def fit_path(checkpoint_dir):
    return os.path.join(checkpoint_dir, evaluate.WEIGHT_FOLDERS[model.ADJUST_SCOPE], brightness.FIT_FILE)


def export_saved_model(checkpoint_dir, output):
    """Write the SavedModel to `output` (which must not exist); returns the checkpoint prefixes used."""
    if tf.io.gfile.exists(output):
        raise utils.UserError('%s already exists: choose a new --output (a SavedModel is never overwritten)'
                              % output)
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        signatures = build_signatures()
        prefixes = restore_weights(session, checkpoint_dir)
        assets = []
        if os.path.isfile(fit_path(checkpoint_dir)):
            asset = tf.constant(fit_path(checkpoint_dir), name='auto_ratio_fit')
            tf.add_to_collection(tf.GraphKeys.ASSET_FILEPATHS, asset)
            assets.append(asset)
        builder = tf.saved_model.Builder(output)
        builder.add_meta_graph_and_variables(
            session, [tf.saved_model.tag_constants.SERVING], assets_collection=assets or None,
            strip_default_attrs=True,   # loadable by TF Serving builds older than this TF
            signature_def_map={name: tf.saved_model.predict_signature_def(inputs, outputs)
                               for name, (inputs, outputs) in signatures.items()})
        builder.save()
    return prefixes


def parse_size(text):
    try:
        height, width = (int(part) for part in text.lower().split('x'))
    except ValueError:
        height = width = 0
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError('--tflite needs HEIGHTxWIDTH, e.g. 400x600, got %r' % text)
    return height, width


def export_tflite(checkpoint_dir, output, size):
    """Write a TFLite model for float32 [H,W,3] inputs in [0,1] of one fixed `size` (height, width):
    inputs image, alpha; outputs fusion, plain (float32, as enhance_float). Returns its size in bytes."""
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        image = tf.placeholder(tf.float32, list(size) + [3], name='image')
        alpha = tf.placeholder(tf.float32, [], name='alpha')
        outputs = relight(alpha=alpha, **stages(image))
        restore_weights(session, checkpoint_dir)
        named = [tf.identity(outputs[mode][0], name=mode) for mode in evaluate.MODES]
        converter = tf.lite.TFLiteConverter.from_session(session, [image, alpha], named)
        flatbuffer = converter.convert()
    with open(output, 'wb') as stream:
        stream.write(flatbuffer)
    return len(flatbuffer)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', required=True, help='SavedModel folder to create (must not exist)')
    parser.add_argument('--checkpoint_dir', default='./checkpoint',
                        help='folder holding the three nets\' weights, as evaluate.py (default: %(default)s)')
    parser.add_argument('--tflite', type=parse_size, metavar='HxW',
                        help='also write <output>.tflite for float32 inputs of exactly this size')
    return parser


def run(args):
    prefixes = export_saved_model(args.checkpoint_dir, args.output)
    print('SavedModel %s (signatures %s); weights: %s' % (args.output, ', '.join(SIGNATURES), ', '.join(prefixes)))
    if not os.path.isfile(fit_path(args.checkpoint_dir)):
        print('note: no %s: the SavedModel works, but --ratio auto needs it' % fit_path(args.checkpoint_dir))
    if args.tflite:
        path = args.output.rstrip('/') + '.tflite'
        size = export_tflite(args.checkpoint_dir, path, args.tflite)
        print('TFLite %s (%dx%d float32 inputs, %.1f MB)' % (path, args.tflite[0], args.tflite[1], size / 1e6))


def main(argv=None):
    return utils.exit_status(run, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
