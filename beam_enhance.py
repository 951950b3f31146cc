"""Enhance a folder or glob of dark images on Apache Beam with the SavedModel of export.py.

  python beam_enhance.py --input photos/ --output out/ --model export/kind \\
      --direct_num_workers 2 --direct_running_mode multi_processing

Reads every file with an image extension matched by --input (a folder or a glob, on any filesystem
Beam supports: local, gs://, s3://, hdfs://...), enhances it with the SavedModel (loaded once per
worker) and writes <output>/<name>_kindle.png (a second input with the same name gets
<name>_kindle-1.png, ... in path order) and one CSV report per run,
<output>/kindle_report-<time>.csv: input, output, alpha, exposure (what --ratio auto chose),
input_mean, output_mean (raw input and saved pixels, in [0, 1]), status (ok, exists, failed) and
detail (the failure reason, or notes such as "alpha channel dropped"). Existing outputs are never
overwritten: they are reported as "exists" and not recomputed, so a rerun resumes an interrupted
job. A file that cannot be read or enhanced gets a failed row and a "failed: <file>: <reason>"
line; the job itself goes on.

Each image goes through pipeline.py as in evaluate.py, with the SavedModel's per-tile signatures:
the same tiles, normalisation, --ratio auto metering, precision and defaults (--ratio auto, fusion,
--precision auto), so a worker's memory is bounded by the tile size whatever the image's
(--max_image_pixels is the decompression-bomb guard only). Every other flag (--runner,
--direct_num_workers, --project, ...) is a Beam pipeline option; docs/DEPLOY.md has the commands
for Dataflow, Flink and Spark.
"""
import argparse
import csv
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
from PIL import Image

import brightness
import data
import exposure
import pipeline
import utils
import video
from constants import MODES, OUTPUT_SUFFIX, PRECISIONS

COLUMNS = ('input', 'output', 'alpha', 'exposure', 'input_mean', 'output_mean', 'status', 'detail')
REPORT_PREFIX = 'kindle_report-'
GLOB_CHARACTERS = '*?['


def csv_line(row):
    """One report row (a dict of COLUMNS) as a CSV line without its newline."""
    stream = io.StringIO()
    csv.writer(stream, lineterminator='').writerow([row.get(column, '') for column in COLUMNS])
    return stream.getvalue()


def output_names(keyed, output):
    """(stem, [ReadableFile]) -> (ReadableFile, output path): <stem>_kindle.png (.mp4 for a clip),
    then -1, -2... in path order, as evaluate.py names outputs that would collide."""
    stem, readables = keyed
    for index, readable in enumerate(sorted(readables, key=lambda r: r.metadata.path)):
        extension = video.OUTPUT_EXTENSION if video.is_clip(readable.metadata.path) else '.png'
        name = '%s%s%s%s' % (stem, OUTPUT_SUFFIX, '-%d' % index if index else '', extension)
        yield readable, FileSystems.join(output, name)


def write_png(path, pixels, metadata=None):
    """Write uint8 [H,W,3] pixels as a PNG (with the input's metadata, data.read_photo's, as
    evaluate.py) through a temporary sibling and a rename."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, 'png', **(metadata or {}))
    temporary = '%s.tmp-%s' % (path, uuid.uuid4().hex)
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        stream.write(buffer.getvalue())
    FileSystems.rename([temporary], [path])


class SavedModelNets:
    """pipeline.py's per-tile steps on a SavedModel's decompose / restore / relight_map signatures in
    one precision (pipeline.tile_signature's names), loaded into a TensorFlow 1 session of its own
    that is reopened where oneDNN keeps too much per shape (sessions.py), as evaluate.KinD's is."""

    def __init__(self, model_dir, precision):
        import sessions                 # TensorFlow, quietly (its warnings, the TF 1 loader's included, off)
        self.tf = tf = sessions.tf
        graph = tf.Graph()
        session = sessions.open_session(graph)
        with graph.as_default():
            signatures = tf.saved_model.loader.load(session, [tf.saved_model.tag_constants.SERVING],
                                                    model_dir).signature_def
        graph.finalize()
        self.session = sessions.ReopeningSession(session)
        self.signatures = {}                     # name -> [{input: tensor}, {output: tensor}]
        for name in ('decompose', 'restore', 'relight_map'):
            signature = signatures[pipeline.tile_signature(name, precision)]
            self.signatures[name] = [{key: graph.get_tensor_by_name(info.name) for key, info in tensors.items()}
                                     for tensors in (signature.inputs, signature.outputs)]

    def _run(self, name, outputs, key=(), **inputs):
        given, produced = self.signatures[name]
        return self.session.run({output: produced[output] for output in outputs},
                                {given[input_name]: value for input_name, value in inputs.items()}, key)

    def close(self):
        self.session.close()

    def decompose_tile(self, image):
        return self._run('decompose', ('reflectance', 'illumination'), normalised=image)

    def restore_tile(self, reflectance, illumination, inner):
        # a window's level cuts follow where its inner window lies (evaluate.KinD._fetch)
        return self._run('restore', ('restored',), tuple(inner), reflectance=reflectance, illumination=illumination,
                         inner=np.asarray(inner, np.int32))['restored']

    def relight_tile(self, image, stages, ratio_map, mode):
        return self._run('relight_map', (mode,), normalised=image, ratio_map=ratio_map, **stages)[mode]

    def adjust_tile(self, illumination, ratio_map):
        """I-hat [h,w,1]: relight_map has no signature for the adjustment net alone, so its plain
        output with R-hat = 1 (the same numbers as evaluate.KinD.adjust_tile)."""
        ones = np.ones(illumination.shape[:2] + (3,), np.float32)
        stages = {'reflectance': ones, 'illumination': illumination, 'restored': ones}
        return self.relight_tile(np.zeros_like(ones), stages, ratio_map, 'plain')[..., :1]


class Enhance(beam.DoFn):
    """(ReadableFile, output path) -> one report row (dict of COLUMNS); writes the enhanced PNG.
    The SavedModel (and for --ratio auto its brightness fit, where it has one) is loaded once per
    worker in setup(), where `auto` precision is resolved for the worker's CPU."""

    def __init__(self, model_dir, ratio, mode, max_pixels, precision='auto', tile_size=pipeline.DEFAULT_TILE_SIZE):
        self.model_dir, self.ratio, self.mode, self.max_pixels = model_dir, ratio, mode, max_pixels
        self.precision, self.tile_size = precision, tile_size

    def setup(self):
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
        utils.map_large_allocations()     # as evaluate.KinD: tiles' arrays off glibc's heap
        self.nets = SavedModelNets(self.model_dir, utils.resolve_precision(self.precision))
        self.tf = self.nets.tf
        self.fit = None
        if isinstance(self.ratio, str) and FileSystems.exists(fit_asset(self.model_dir)):
            with FileSystems.open(fit_asset(self.model_dir)) as stream:
                self.fit = json.load(stream)

    def process(self, element):
        readable, destination = element
        row = {'input': readable.metadata.path, 'output': destination}
        if FileSystems.exists(destination):
            yield dict(row, status='exists')
            return
        try:
            if video.is_clip(readable.metadata.path):
                yield from self._clip(readable, destination, row)
                return
            pixels, notes, metadata = self._read(readable)
            output, chosen = self._enhance(pixels)
            write_png(destination, output, metadata)
        except (data.ImageError, OSError, self.tf.errors.OpError) as error:
            reason = error.reason if isinstance(error, data.ImageError) else \
                '%s (%s)' % (type(error).__name__, str(error).strip().splitlines()[0])
            logging.warning('failed: %s: %s', readable.metadata.path, reason)
            yield dict(row, output='', status='failed', detail=reason)
            return
        yield dict(row, alpha='%.6g' % chosen.alpha, exposure=chosen.describe(),
                   input_mean='%.6f' % data.mean_level(pixels), output_mean='%.6f' % (output.mean() / 255.0),
                   status='ok', detail='; '.join(notes))

    def _clip(self, readable, destination, row):
        """One clip (one element): video.enhance_clip on local copies, as evaluate.py enhances it;
        its report row (the median alpha, the first shot's exposure, each shot in detail)."""
        path = readable.metadata.path
        if self.ratio == 'global':
            raise data.ImageError(path, 'clips take --ratio auto or a number')
        with tempfile.TemporaryDirectory() as folder:
            local = os.path.join(folder, 'in' + os.path.splitext(path)[1])
            with readable.open() as stream, open(local, 'wb') as copy:
                shutil.copyfileobj(stream, copy)
            enhanced = os.path.join(folder, 'out' + video.OUTPUT_EXTENSION)
            try:
                shots = video.enhance_clip(self.nets, local, enhanced, self.ratio, self.mode, 0.0, self.tile_size,
                                           self.fit)
            except data.ImageError as error:
                raise data.ImageError(path, error.reason) from None
            temporary = '%s.tmp-%s' % (destination, uuid.uuid4().hex)
            with open(enhanced, 'rb') as stream, \
                    FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as target:
                shutil.copyfileobj(stream, target)
            FileSystems.rename([temporary], [destination])
        alphas = [alpha for shot in shots for alpha in shot.alphas]
        yield dict(row, alpha='%.6g' % float(np.median(alphas)), exposure=shots[0].description, status='ok',
                   detail='; '.join('shot %d: frames %d-%d, alpha %.4g' % (
                       number, shot.first, shot.first + shot.frames - 1, float(np.median(shot.alphas)))
                       for number, shot in enumerate(shots, 1)))

    def _read(self, readable):
        """data.read_photo on a local copy: (pixels [H,W,3], notes, metadata); ImageError names the
        original path."""
        path = readable.metadata.path
        with tempfile.NamedTemporaryFile(suffix=os.path.splitext(path)[1]) as local:
            with readable.open() as stream:
                shutil.copyfileobj(stream, local)
            local.flush()
            try:
                return data.read_photo(local.name, self.max_pixels)
            except data.ImageError as error:
                raise data.ImageError(path, error.reason) from None

    def _enhance(self, pixels):
        """(uint8 [H,W,3] as evaluate.py saves it, exposure) for a photo's pixels: pipeline.meter for
        --ratio auto or global, then pipeline.enhance, tile by tile, as evaluate.KinD.enhance_pixels."""
        stages = None
        if isinstance(self.ratio, str):
            chosen, stages = pipeline.meter(self.nets, pixels, self.mode, self.tile_size, self.fit, self.ratio)
        else:
            chosen = exposure.Exposure(self.ratio, 'fixed')
        return pipeline.enhance(self.nets, pixels, chosen, self.mode, self.tile_size, stages=stages), chosen


def fit_asset(model_dir):
    """The brightness fit export.py copies into the SavedModel (--ratio auto)."""
    return FileSystems.join(model_dir, 'assets', brightness.FIT_FILE)


def input_pattern(path):
    """A glob as given, a local file as itself, anything else as a folder: <path>/*."""
    if any(character in path for character in GLOB_CHARACTERS) or os.path.isfile(path):
        return path
    return FileSystems.join(path, '*')


def report_path(output):
    """<output>/kindle_report-<UTC time>.csv, never an existing file."""
    stem = FileSystems.join(output, REPORT_PREFIX + time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()))
    candidate, counter = stem + '.csv', 0
    while FileSystems.exists(candidate):
        counter += 1
        candidate = '%s-%d.csv' % (stem, counter)
    return candidate


def build_pipeline(pipeline, args, report):
    """Match -> read -> name outputs -> enhance -> report CSV, on `pipeline`."""
    rows = (pipeline
            | 'Match' >> fileio.MatchFiles(input_pattern(args.input))
            | 'Images' >> beam.Filter(lambda metadata: metadata.path.lower().endswith(
                data.IMAGE_EXTENSIONS + video.VIDEO_EXTENSIONS))
            | 'Read' >> fileio.ReadMatches()
            | 'ByStem' >> beam.Map(lambda readable: (os.path.splitext(os.path.basename(readable.metadata.path))[0],
                                                     readable))
            | 'GroupByStem' >> beam.GroupByKey()
            | 'Name' >> beam.FlatMap(output_names, args.output)
            | 'Enhance' >> beam.ParDo(Enhance(args.model, args.ratio, args.mode, args.max_image_pixels,
                                              args.precision, args.tile_size)))
    _ = (rows
         | 'Csv' >> beam.Map(csv_line)
         | 'Report' >> beam.io.WriteToText(report, num_shards=1, shard_name_template='', header=','.join(COLUMNS)))


def read_report(path):
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        return list(csv.DictReader(io.TextIOWrapper(stream, encoding='utf-8')))


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='a folder or a glob of dark images')
    parser.add_argument('--output', required=True, help='folder for <name>_kindle.png and the report CSV')
    parser.add_argument('--model', required=True, help='SavedModel folder written by export.py')
    parser.add_argument('--ratio', type=utils.parse_ratio, default='auto',
                        help='illumination ratio alpha, "auto" (a tone curve for the scene) or "global" (one '
                             'metered alpha), as evaluate.py (default %(default)s, as evaluate.py)')
    parser.add_argument('--mode', choices=MODES, default=MODES[0],
                        help='fusion (released evaluate.py) or plain (R_restored x I_adjusted); '
                             'default %(default)s, as evaluate.py without ground truth')
    parser.add_argument('--precision', choices=PRECISIONS + ('auto',), default='auto',
                        help='the nets\' compute type, as evaluate.py: auto (default) is $KIND_PRECISION '
                             'where set, else bfloat16 on a worker whose CPU has it natively, else float32')
    parser.add_argument('--tile_size', type=int, default=pipeline.DEFAULT_TILE_SIZE,
                        help='largest core side of the tiles, a multiple of 16, as evaluate.py (default %(default)s)')
    parser.add_argument('--max_image_pixels', type=int, default=data.DEFAULT_MAX_IMAGE_PIXELS,
                        help='larger images are reported as failed (decompression-bomb guard, as '
                             'evaluate.py; default %(default)d)')
    return parser


def main(argv=None):
    args, beam_args = build_parser().parse_known_args(argv)
    for name in ('input', 'output', 'model'):   # workers may start elsewhere: local paths made absolute
        value = getattr(args, name)
        if '://' not in value:
            setattr(args, name, os.path.abspath(value))
    if not FileSystems.exists(FileSystems.join(args.model, 'saved_model.pb')):
        print('error: %s: no saved_model.pb (write one with export.py)' % args.model, file=sys.stderr)
        return 2
    if args.tile_size <= 0 or args.tile_size % pipeline.TILE_ALIGN:
        print('error: --tile_size must be a positive multiple of %d, got %d' % (pipeline.TILE_ALIGN, args.tile_size),
              file=sys.stderr)
        return 2
    if '://' not in args.output:
        os.makedirs(args.output, exist_ok=True)
    report = report_path(args.output)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as job:
        build_pipeline(job, args, report)
    rows = read_report(report)
    for row in rows:
        if row['status'] == 'failed':
            print('failed: %s: %s' % (row['input'], row['detail']))
    counts = {status: sum(row['status'] == status for row in rows) for status in ('ok', 'exists', 'failed')}
    print('%d enhanced, %d already there (not overwritten), %d failed; report %s'
          % (counts['ok'], counts['exists'], counts['failed'], report))
    return 1 if counts['failed'] else 0


if __name__ == '__main__':
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(main())
