"""Enhance a folder or glob of dark images on Apache Beam with the SavedModel of export.py.

  python beam_enhance.py --input photos/ --output out/ --model export/kind --ratio 5 \\
      --direct_num_workers 2 --direct_running_mode multi_processing

Reads every file with an image extension matched by --input (a folder or a glob, on any filesystem
Beam supports: local, gs://, s3://, hdfs://...), enhances it with the SavedModel (loaded once per
worker) and writes <output>/<name>_kindle.png (a second input with the same name gets
<name>_kindle-1.png, ... in path order) and one CSV report per run,
<output>/kindle_report-<time>.csv: input, output, alpha, input_mean, output_mean (raw input and
saved pixels, in [0, 1]), status (ok, exists, failed) and detail (the failure reason, or notes
such as "alpha channel dropped"). Existing outputs are never overwritten: they are reported as
"exists" and not recomputed, so a rerun resumes an interrupted job. A file that cannot be read or
enhanced gets a failed row and a "failed: <file>: <reason>" line; the job itself goes on.

Images are enhanced whole (the SavedModel does not tile): memory grows with the pixel count
(--max_image_pixels, default 4 MP: 3.2 GB peak RSS per worker); larger images are reported as failed
(evaluate.py tiles them). Every other flag (--runner, --direct_num_workers, --project, ...) is a
Beam pipeline option; docs/DEPLOY.md has the commands for Dataflow, Flink and Spark.
"""
import argparse
import csv
import io
import json
import logging
import os
import sys
import tempfile
import time
import uuid

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

import brightness
import data
import utils
from constants import DEFAULT_RATIO, MODES, OUTPUT_SUFFIX

DEFAULT_MAX_IMAGE_PIXELS = 4_000_000   # whole-image inference: 3.2 GB peak RSS at 4 MP (docs/DEPLOY.md)
COLUMNS = ('input', 'output', 'alpha', 'input_mean', 'output_mean', 'status', 'detail')
REPORT_PREFIX = 'kindle_report-'
GLOB_CHARACTERS = '*?['


def csv_line(row):
    """One report row (a dict of COLUMNS) as a CSV line without its newline."""
    stream = io.StringIO()
    csv.writer(stream, lineterminator='').writerow([row.get(column, '') for column in COLUMNS])
    return stream.getvalue()


def output_names(keyed, output):
    """(stem, [ReadableFile]) -> (ReadableFile, output path): <stem>_kindle.png, then -1, -2... in
    path order, as evaluate.py names outputs that would collide."""
    stem, readables = keyed
    for index, readable in enumerate(sorted(readables, key=lambda r: r.metadata.path)):
        name = '%s%s%s.png' % (stem, OUTPUT_SUFFIX, '-%d' % index if index else '')
        yield readable, FileSystems.join(output, name)


def write_png(path, pixels):
    """Write uint8 [H,W,3] pixels as a PNG through a temporary sibling and a rename."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, 'png')
    temporary = '%s.tmp-%s' % (path, uuid.uuid4().hex)
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        stream.write(buffer.getvalue())
    FileSystems.rename([temporary], [path])


class Enhance(beam.DoFn):
    """(ReadableFile, output path) -> one report row (dict of COLUMNS); writes the enhanced PNG.
    The SavedModel (and for --ratio auto its brightness fit) is loaded once per worker in setup()."""

    def __init__(self, model_dir, ratio, mode, max_pixels):
        self.model_dir, self.ratio, self.mode, self.max_pixels = model_dir, ratio, mode, max_pixels

    def setup(self):
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
        import tensorflow as tf
        self.tf = tf
        self.loaded = tf.saved_model.load(self.model_dir)   # the signatures need it alive
        self.signatures = self.loaded.signatures
        self.fit = None
        if self.ratio == 'auto':
            with FileSystems.open(fit_asset(self.model_dir)) as stream:
                self.fit = json.load(stream)

    def process(self, element):
        readable, destination = element
        row = {'input': readable.metadata.path, 'output': destination}
        if FileSystems.exists(destination):
            yield dict(row, status='exists')
            return
        try:
            raw, notes = self._read(readable)
            pixels, alpha = self._enhance(raw)
            write_png(destination, pixels)
        except (data.ImageError, OSError, self.tf.errors.OpError) as error:
            reason = error.reason if isinstance(error, data.ImageError) else \
                '%s (%s)' % (type(error).__name__, str(error).strip().splitlines()[0])
            logging.warning('failed: %s: %s', readable.metadata.path, reason)
            yield dict(row, output='', status='failed', detail=reason)
            return
        yield dict(row, alpha='%.6g' % alpha, input_mean='%.6f' % raw.mean(),
                   output_mean='%.6f' % (pixels.mean() / 255.0), status='ok', detail='; '.join(notes))

    def _read(self, readable):
        """data.read_image on a local copy: (raw RGB float32 [H,W,3] in [0,1], notes); ImageError
        names the original path."""
        path = readable.metadata.path
        with tempfile.NamedTemporaryFile(suffix=os.path.splitext(path)[1]) as local:
            local.write(readable.read())
            local.flush()
            try:
                return data.read_image(local.name, self.max_pixels)
            except data.ImageError as error:
                raise data.ImageError(path, error.reason) from None

    def _enhance(self, raw):
        """(uint8 [H,W,3] as evaluate.py saves it, alpha) for a raw image; --ratio auto meters alpha
        as evaluate.KinD.enhance_auto: stages, brightness.choose_ratio on relight, relight."""
        tf = self.tf
        if self.ratio != 'auto':
            outputs = self.signatures['enhance_float'](image=tf.constant(raw),
                                                       alpha=tf.constant(self.ratio, tf.float32))
            return outputs[self.mode + '_uint8'].numpy(), self.ratio
        stages = self.signatures['stages'](image=tf.constant(raw))
        factor = brightness.metering_factor(*raw.shape[:2])
        small = {name: tf.constant(brightness.box_downscale(value.numpy(), factor)) for name, value in stages.items()}

        def render(alpha):
            return self.signatures['relight'](alpha=tf.constant(alpha, tf.float32), **small)[self.mode].numpy()

        alpha = brightness.choose_ratio(raw, render, self.fit)
        outputs = self.signatures['relight'](alpha=tf.constant(alpha, tf.float32), **stages)
        return outputs[self.mode + '_uint8'].numpy(), alpha


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
            | 'Images' >> beam.Filter(lambda metadata: metadata.path.lower().endswith(data.IMAGE_EXTENSIONS))
            | 'Read' >> fileio.ReadMatches()
            | 'ByStem' >> beam.Map(lambda readable: (os.path.splitext(os.path.basename(readable.metadata.path))[0],
                                                     readable))
            | 'GroupByStem' >> beam.GroupByKey()
            | 'Name' >> beam.FlatMap(output_names, args.output)
            | 'Enhance' >> beam.ParDo(Enhance(args.model, args.ratio, args.mode, args.max_image_pixels)))
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
    parser.add_argument('--ratio', type=utils.parse_ratio, default=DEFAULT_RATIO,
                        help='illumination ratio alpha, or "auto": metered per image as evaluate.py '
                             '--ratio auto (default %(default)s)')
    parser.add_argument('--mode', choices=MODES, default=MODES[0],
                        help='fusion (released evaluate.py) or plain (R_restored x I_adjusted); '
                             'default %(default)s')
    parser.add_argument('--max_image_pixels', type=int, default=DEFAULT_MAX_IMAGE_PIXELS,
                        help='larger images are reported as failed, not enhanced (default %(default)d)')
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
    if args.ratio == 'auto' and not FileSystems.exists(fit_asset(args.model)):
        print('error: --ratio auto needs %s (export.py copies it from the checkpoint\'s '
              'illumination_adjust_net_train/)' % fit_asset(args.model), file=sys.stderr)
        return 2
    if '://' not in args.output:
        os.makedirs(args.output, exist_ok=True)
    report = report_path(args.output)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        build_pipeline(pipeline, args, report)
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
