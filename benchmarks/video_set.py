"""Rebuild the real dark video check set listed in benchmarks/video_set.csv.

  python benchmarks/video_set.py --output .video_set [--mirrors /work/.mirror]

Each row of video_set.csv (name, repo, commit, path, licence, camera, note, width, height, fps,
frames, seconds, audio) names one camera-captured dark clip in a public GitHub repository; camera
is still, handheld or moving (benchmarks/video_check.py measures shimmer on the still ones), the
note says what it shows and the last six columns what it holds. The clip is read from the fetched snapshot
of owner/name with `git --git-dir <mirror> show <commit>:<path>` (HEAD:<path> when that commit
is absent), the snapshot being looked for under --mirrors as owner+name/repo (a bare git directory
or a work tree holding .git).

Every clip is written unchanged, byte for byte, as <output>/<name><original extension>. Rows whose
source is missing are reported, one line each, and skipped; a count ends the run.
"""
import argparse
import csv
import os

from photo_set import git_dir, git_file     # the snapshots are read as the photo set's are

CSV_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'video_set.csv')


def main():
    parser = argparse.ArgumentParser(
        description='Rebuild the real dark video check set from fetched repository snapshots '
                    'into <output>/<name><extension>, each clip byte for byte.')
    parser.add_argument('--output', default='.video_set', help='folder to write (default: .video_set)')
    parser.add_argument('--mirrors', default='/work/.mirror',
                        help='folder holding the snapshots as owner+name/repo (default: /work/.mirror)')
    parser.add_argument('--csv', default=CSV_PATH, help='the clip list (default: benchmarks/video_set.csv)')
    args = parser.parse_args()

    with open(args.csv, newline='') as handle:
        rows = list(csv.DictReader(handle))
    os.makedirs(args.output, exist_ok=True)
    written = 0
    for row in rows:
        directory = git_dir(args.mirrors, row['repo'])
        data = git_file(directory, row['commit'], row['path']) if directory else None
        if data is None:
            print(f"missing: {row['name']} ({row['repo']} {row['commit'][:10]}:{row['path']})")
            continue
        extension = os.path.splitext(row['path'])[1]
        with open(os.path.join(args.output, row['name'] + extension), 'wb') as handle:
            handle.write(data)
        written += 1
    print(f'total: {written} of {len(rows)} clips in {args.output}')


if __name__ == '__main__':
    main()
