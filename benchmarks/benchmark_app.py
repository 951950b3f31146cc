"""The relighting page (app.py) under load, on 600x400 photos (scikit-image's coffee darkened by
evaluate.simulate_low_light): server-side times, several clients at once, and tabs opening and
closing.

  python benchmarks/benchmark_app.py                        # the three runs, about 6 minutes
  python benchmarks/benchmark_app.py --runs server          # in this process: per move, per drag event
  python benchmarks/benchmark_app.py --runs clients --clients 1 4 8
  python benchmarks/benchmark_app.py --runs churn --sessions 100
  python benchmarks/benchmark_app.py --runs churn --never_closed    # 500 tabs that never close
  ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/benchmark_app.py --runs server --precision float32

server: app.Relighter and Gradio's image encoding in this process. First view (read, one full pass,
--ratio auto metering, the first output, both shown files); a move (exact relight of the preview,
uint8, the shown file); a drag event (the adjustment net on the draft's I, upsampled, the fusion,
the shown file); the decomposition tab; a full pass for scale; exact moves of 4 tabs at once with
1, 2 or 3 relights at a time (app.Turns; app.RELIGHTS_AT_ONCE is 2); the memory a photo holds.
Medians and 90th percentiles of wall time after one warm-up, and the median CPU time (all threads).
ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN at AVX2: an AVX2 CPU's float32 on this one (bfloat16 does not
run under that cap).

clients: `python app.py` in a subprocess, and clients over loopback speaking Gradio's HTTP
protocol as a tab does (Session). Each opens its own photo (the same scene, its own sensor noise);
then all make --moves exact relights at random levels at once (a drag's release: the `relight`
event), each fetching the shown image, for at most --seconds. Per move: median and p90 of the
client's wall time; total moves per second; the server's CPU time per move (its capacity is the
cores over that) and the clients' (this process, on the same cores); the server's peak RSS
(VmHWM). Then every client's last image is compared with its own photo relit here (no
cross-talk). --client gradio_client measures as issue 24 did.

churn: a fresh server; --sessions tabs one after another, each opening its own photo (the same
scene, its own sensor noise), make two moves and close (their heartbeat connection ends, as a closed
tab's does); with --never_closed, 500 tabs make one move and never close (no heartbeat connection, so
no unload: a vanished tab, or a script). The server's RSS, and the disk use of Gradio's temporary
folder and of the page's own files (its tabs' photo files and downloads, beyond Gradio's), after the
1st and 5th tab and every 10th (every 50th never closed).

The machine's load average is printed first: other jobs on the CPU slow every figure.
"""
import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import app  # noqa: E402
import data  # noqa: E402
import evaluate  # noqa: E402

DRAG_TARGET_S = 0.060          # issue 24: a drag event on an AVX2 CPU at 600x400
MOVES_PER_SESSION = 2          # churn: moves each session makes before it closes
CHURN_REPORT_EVERY = 10        # churn: RSS after every this many sessions
NEVER_CLOSED_SESSIONS = 500    # churn --never_closed: sessions (issue 34), each making one move,
NEVER_CLOSED_REPORT_EVERY = 50     # and RSS after every this many
CHURN_BASELINE = 5             # churn: the change is counted from this many sessions
SETTLE_S = 1.0                 # churn: wait after a close for the server's unload
TABS = 4                       # server: tabs moving at once for the relights-at-a-time comparison
SERVER_START_S = 180           # the longest wait for `python app.py` to print its address
EVENT_TIMEOUT_S = 300          # the longest a client waits for an answer
API_PREFIX = '/gradio_api'     # Gradio's routes (gradio.route_utils.API_PREFIX)


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


def slider_levels(rng, count):
    """`count` random levels on the slider's steps."""
    return np.round(rng.uniform(*app.EV_RANGE, count), app.EV_DECIMALS).tolist()


def dark_photo(folder, index):
    """A 600x400 dark photo (coffee, with the simulated sensor noise of seed `index`): its path."""
    import skimage.data
    from PIL import Image
    path = os.path.join(folder, 'coffee_%02d.png' % index)
    Image.fromarray(evaluate.simulate_low_light(skimage.data.coffee(), np.random.default_rng(index))).save(path)
    return path


def dark_photos(folder, count):
    """`count` dark photos (dark_photo): their paths."""
    return [dark_photo(folder, index) for index in range(count)]


def disk_mib(folder, counted):
    """MiB of disk the files and folders under folder use, each (inode) counted once: those in
    `counted` (a set of inodes, to which folder's are added) are left out."""
    used = 0
    for directory, folders, names in os.walk(folder):
        for name in folders + names:
            try:
                status = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:           # removed meanwhile
                continue
            if status.st_ino not in counted:
                counted.add(status.st_ino)
                used += status.st_blocks * 512
    return used / 2 ** 20


def server_run(args, folder):
    """Server-side times in this process (app.Relighter and gr.Image's encoding)."""
    import gradio as gr
    relighter = app.Relighter(args.checkpoint_dir, args.precision)
    shown = gr.Image(format=app.SHOWN_FORMAT, interactive=False)
    path = dark_photos(folder, 1)[0]
    mode = 'fusion'

    def first_view():
        photo = relighter.open(path, mode)
        shown.postprocess(photo.before)
        shown.postprocess(data.to_uint8(relighter.relight(photo, photo.start, mode)))
        return photo

    views = timed(first_view, args.views)
    photo = first_view()
    levels = iter(slider_levels(np.random.default_rng(0), 2 * args.moves + 2))
    moves = timed(lambda: shown.postprocess(data.to_uint8(relighter.relight(photo, next(levels), mode))),
                  args.moves)
    drags = timed(lambda: shown.postprocess(relighter.draft(photo, next(levels), mode)), args.moves)
    tab = timed(lambda: relighter.decomposition(photo, photo.start, mode), args.views)

    def moves_per_second(slots):
        """Exact moves per second of TABS tabs moving at once, `slots` relights at a time (app.Turns)."""
        turns = app.Turns(slots)

        def tab(index):
            for level in slider_levels(np.random.default_rng(index), args.moves // 2):
                turns.run(turns.enter((index, 'after')), lambda: shown.postprocess(
                    data.to_uint8(relighter.relight(photo, level, mode))))

        threads = [threading.Thread(target=tab, args=(index,)) for index in range(TABS)]
        begin = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return TABS * (args.moves // 2) / (time.perf_counter() - begin)

    at_once = {slots: moves_per_second(slots) for slots in (1, 2, 3)}
    full = timed(lambda: relighter.kind.enhance(photo.image, 3.0, mode), args.views)
    side = evaluate.DEFAULT_TILE_SIZE      # the largest preview: app.PREVIEW_PIXELS

    def zeros(channels):
        return np.zeros((side, side, channels), np.float32)

    largest = app.Photo(path, np.zeros((side, side, 3), np.uint8), zeros(3), {
        'reflectance': zeros(3), 'illumination': zeros(1), 'restored': zeros(3)}, 'auto', {}, 0.0, '')
    relighter.close()
    height, width = photo.image.shape[:2]
    print('photo: %dx%d; precision %s (%s); %d CPU cores; ONEDNN_MAX_CPU_ISA=%s' % (
        width, height, relighter.kind.precision, args.precision, os.cpu_count(),
        os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')))
    print('first view (read, one full pass, --ratio auto, first output, 2 files): %s' % percentiles(views))
    print('move: exact relight + uint8 + shown file:                          %s' % percentiles(moves))
    small = photo.draft[2].shape
    print('drag event: adjustment net at %dx%d, upsampled, fusion, shown file: %s'
          % (small[1], small[0], percentiles(drags)))
    print('decomposition tab (adjusted I: adjustment net on the stored I):    %s' % percentiles(tab))
    print('full pass (KinD.enhance), for scale:                                %s' % percentiles(full))
    print('moves of %d tabs at once (exact, in this process), by relights at a time: %s' % (
        TABS, ', '.join('%d: %.1f moves/s' % item for item in at_once.items())))
    print('memory a photo holds: %.1f MiB at %dx%d, %.1f MiB at the largest preview (%dx%d)'
          % (photo.nbytes / 2 ** 20, width, height, largest.nbytes / 2 ** 20, side, side))
    drag = np.median(np.array(drags)[:, 0])
    print('drag-event target %.0f ms (on an AVX2 CPU): %s here (median %.1f ms)'
          % (1000 * DRAG_TARGET_S, 'meets' if drag <= DRAG_TARGET_S else 'MISSES', 1000 * drag))


class Server:
    """`python app.py` on a free port in a subprocess, its temporary files (Gradio's in
    gradio_folder, the page's own beside it) under temp_folder; its RSS from /proc."""

    def __init__(self, args, temp_folder):
        self.gradio_folder = os.path.join(temp_folder, 'gradio')
        self.temp_folder = temp_folder
        with socket.socket() as probe:
            probe.bind((app.HOST, 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, 'app.py'), '--port', str(self.port), '--checkpoint_dir',
             args.checkpoint_dir, '--precision', args.precision], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, TMPDIR=temp_folder, GRADIO_TEMP_DIR=self.gradio_folder))
        deadline = time.time() + SERVER_START_S
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if 'KinD relighting page:' in line or time.time() > deadline:
                break
        if 'KinD relighting page:' not in lines[-1]:
            self.stop()
            sys.exit('the server did not start:\n' + ''.join(lines[-20:]))
        self.address = 'http://%s:%d' % (app.HOST, self.port)
        threading.Thread(target=self.process.stdout.read, daemon=True).start()   # keep its pipe drained

    def memory_mib(self, field):
        """VmRSS (now) or VmHWM (peak) of the server, MiB."""
        with open('/proc/%d/status' % self.process.pid) as status:
            for line in status:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024.0
        raise RuntimeError('%s not in /proc/%d/status' % (field, self.process.pid))

    def disk_mib(self):
        """(MiB of Gradio's temporary folder, MiB of the page's own files beyond those)."""
        counted = set()
        gradio = disk_mib(self.gradio_folder, counted)
        return gradio, sum(disk_mib(os.path.join(self.temp_folder, name), counted)
                           for name in os.listdir(self.temp_folder) if name.startswith('kind_app_'))

    def cpu_s(self):
        """CPU seconds the server has used (all threads)."""
        with open('/proc/%d/stat' % self.process.pid) as stat:
            fields = stat.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')   # utime + stime

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Session:
    """One client of the page over plain HTTP, as a browser tab talks to it: its own session hash,
    a heartbeat connection held open while it lives (closing it is closing the tab; without one the
    session never closes), and events through Gradio's queue (POST queue/join, then the session's
    event stream)."""

    def __init__(self, address, api, heartbeat=True):
        import httpx
        self.address, self.api, self.session = address, api, uuid.uuid4().hex
        self.http = httpx.Client(base_url=address + API_PREFIX, timeout=EVENT_TIMEOUT_S)
        self.heartbeat = None
        if heartbeat:
            host, port = address.split('//')[1].split(':')
            self.heartbeat = socket.create_connection((host, int(port)))
            self.heartbeat.sendall(('GET %s/heartbeat/%s HTTP/1.1\r\nHost: %s\r\n\r\n'
                                    % (API_PREFIX, self.session, host)).encode())

    @staticmethod
    def endpoints(address):
        """{api name: (fn_index, inputs count)} of the page's named events."""
        import httpx
        config = httpx.get(address + '/config', timeout=EVENT_TIMEOUT_S).json()
        return {event['api_name']: (event['id'], len(event['inputs'])) for event in config['dependencies']
                if event.get('api_name')}

    def call(self, name, *values):
        """The outputs of a named event (its state inputs sent as null, as the page sends them)."""
        fn_index, inputs = self.api[name]
        data = list(values) + [None] * (inputs - len(values))
        self.http.post('/queue/join', json={'data': data, 'fn_index': fn_index, 'session_hash': self.session,
                                            'event_data': None, 'trigger_id': None}).raise_for_status()
        with self.http.stream('GET', '/queue/data', params={'session_hash': self.session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[len('data:'):]) if line.startswith('data:') else {}
                if message.get('msg') == 'process_completed':
                    if not message.get('success'):
                        raise RuntimeError('%s failed: %s' % (name, message.get('output')))
                    return message['output']['data']
        raise RuntimeError('%s: the event stream ended without a result' % name)

    def open(self, path):
        """Upload and open a photo; the slider's level it starts at."""
        with open(path, 'rb') as photo:
            uploaded = self.http.post('/upload', files={'files': (os.path.basename(path), photo)}).json()[0]
        file_data = {'path': uploaded, 'orig_name': os.path.basename(path), 'meta': {'_type': 'gradio.FileData'}}
        self.level = self.call('open', file_data, 'fusion')[3]

    def move(self, level):
        """Relight at `level` (the slider released) and fetch the shown image: its uint8 pixels."""
        from PIL import Image
        shown = self.call('relight', level, 'fusion')[0]
        self.level = level
        return np.asarray(Image.open(io.BytesIO(self.http.get(shown['url']).content)))

    def close(self):
        """Close the tab (where it holds a heartbeat connection) and the client."""
        if self.heartbeat is not None:
            self.heartbeat.close()
        self.http.close()


class GradioClientSession:
    """One client through gradio_client, as issue 24's load test made them: about 65 ms more per
    event than Session, spent in the client."""

    def __init__(self, address, api):
        import httpx
        from gradio_client import Client
        self.client = Client(address, verbose=False, download_files=False, analytics_enabled=False)
        self.http = httpx.Client(timeout=EVENT_TIMEOUT_S)

    def open(self, path):
        from gradio_client import handle_file
        self.level = self.client.predict(handle_file(path), 'fusion', api_name='/open')[2]   # no state outputs

    def move(self, level):
        from PIL import Image
        shown = self.client.predict(level, 'fusion', api_name='/relight')[0]
        self.level = level
        return np.asarray(Image.open(io.BytesIO(self.http.get(shown['url']).content)))

    def close(self):
        self.http.close()
        self.client.close()


CLIENTS = {'http': Session, 'gradio_client': GradioClientSession}


def clients_run(args, folder):
    """N clients at once for each N of args.clients; then the no-cross-talk check."""
    server = Server(args, tempfile.mkdtemp(dir=folder))
    api = Session.endpoints(server.address)
    paths = dark_photos(folder, max(args.clients))
    print('server: %s, precision %s; %d CPU cores; RSS after start %.0f MiB; clients: %s'
          % (server.address, args.precision, os.cpu_count(), server.memory_mib('VmRSS'), args.client))
    print('| clients | moves | median per move | p90 per move | moves/s (all clients) | server CPU per move '
          '| clients\' CPU per move | peak RSS | slowest first view |')
    print('|---|---|---|---|---|---|---|---|---|')
    last = {}
    try:
        for count in args.clients:
            sessions = [CLIENTS[args.client](server.address, api) for _ in range(count)]
            opened = [None] * count
            times = [[] for _ in range(count)]
            started = threading.Barrier(count + 1)

            def client(index):
                begin = time.perf_counter()
                sessions[index].open(paths[index])
                opened[index] = time.perf_counter() - begin
                started.wait()
                deadline = time.perf_counter() + args.seconds
                levels = slider_levels(np.random.default_rng(100 + index), args.moves)
                for level in levels:
                    if time.perf_counter() > deadline:
                        break
                    begin = time.perf_counter()
                    image = sessions[index].move(level)
                    times[index].append(time.perf_counter() - begin)
                last[index] = (paths[index], sessions[index].level, image)

            threads = [threading.Thread(target=client, args=(index,)) for index in range(count)]
            for thread in threads:
                thread.start()
            started.wait()
            begin, cpu, clients_cpu = time.perf_counter(), server.cpu_s(), time.process_time()
            for thread in threads:
                thread.join()
            wall, cpu, clients_cpu = (time.perf_counter() - begin, server.cpu_s() - cpu,
                                      time.process_time() - clients_cpu)
            for session in sessions:
                session.close()
            moves = np.concatenate(times) * 1000
            print('| %d | %d | %.0f ms | %.0f ms | %.1f | %.0f ms | %.0f ms | %.0f MiB | %.1f s |' % (
                count, len(moves), np.median(moves), np.percentile(moves, 90), len(moves) / wall,
                1000 * cpu / len(moves), 1000 * clients_cpu / len(moves), server.memory_mib('VmHWM'), max(opened)))
    finally:
        server.stop()
    relighter = app.Relighter(args.checkpoint_dir, args.precision)
    differences = [int(np.abs(image.astype(int) - data.to_uint8(relighter.relight(relighter.open(path), level,
                                                                                  'fusion'))).max())
                   for path, level, image in last.values()]
    relighter.close()
    print('no cross-talk: %d of %d clients\' last images equal their own photo relit here, byte for byte '
          '(largest differences: %s levels)' % (differences.count(0), len(differences), differences))


def churn_run(args, folder):
    """args.sessions sessions one after another, closed after MOVES_PER_SESSION moves, or never closed
    after one; the server's RSS and its files' disk use after the 1st, the CHURN_BASELINE-th and every
    report_every-th."""
    never_closed = args.never_closed
    sessions = args.sessions or (NEVER_CLOSED_SESSIONS if never_closed else 100)
    moves, report_every = (1, NEVER_CLOSED_REPORT_EVERY) if never_closed else (MOVES_PER_SESSION, CHURN_REPORT_EVERY)
    server = Server(args, tempfile.mkdtemp(dir=folder))
    api = Session.endpoints(server.address)
    levels = slider_levels(np.random.default_rng(0), moves * sessions)
    rows = []
    begin = time.perf_counter()
    try:
        for index in range(sessions):
            path = dark_photo(folder, index)
            session = Session(server.address, api, heartbeat=not never_closed)
            session.open(path)
            for level in levels[moves * index:moves * (index + 1)]:
                session.move(level)
            session.close()
            os.remove(path)
            count = index + 1
            if count in (1, CHURN_BASELINE) or count % report_every == 0:
                time.sleep(SETTLE_S)
                rows.append((count, (time.perf_counter() - begin) / 60, server.memory_mib('VmRSS'))
                            + server.disk_mib())
    finally:
        server.stop()
    print('server: precision %s; %d sessions in %.0f s, each: open its photo, %d move(s), %s; %d CPU cores'
          % (args.precision, sessions, time.perf_counter() - begin, moves,
             'never closed (no heartbeat, no unload)' if never_closed else 'close', os.cpu_count()))
    baseline_count, _, baseline = ([row for row in rows if row[0] == CHURN_BASELINE] or rows)[0][:3]
    print('| sessions | minutes | server RSS | change since session %d | Gradio\'s temporary folder | the page\'s '
          'files |' % baseline_count)
    print('|---|---|---|---|---|---|')
    for count, minutes, rss, gradio, own in rows:
        print('| %d | %.1f | %.0f MiB | %+.0f MiB | %.1f MiB | %.1f MiB |' % (count, minutes, rss, rss - baseline,
                                                                          gradio, own))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint_dir', default=os.path.join(ROOT, 'checkpoint'))
    parser.add_argument('--precision', default='auto', choices=app.PRECISIONS)
    parser.add_argument('--runs', nargs='+', default=['server', 'clients', 'churn'],
                        choices=['server', 'clients', 'churn'])
    parser.add_argument('--moves', type=int, default=20, help='moves timed, per client (default: %(default)s)')
    parser.add_argument('--views', type=int, default=3, help='first views timed (default: %(default)s)')
    parser.add_argument('--clients', type=int, nargs='+', default=[1, 4],
                        help='clients at once, one run each (default: %(default)s)')
    parser.add_argument('--client', default='http', choices=sorted(CLIENTS),
                        help='clients: plain HTTP as a tab, or gradio_client as issue 24 measured '
                             '(default: %(default)s)')
    parser.add_argument('--seconds', type=float, default=60,
                        help='a client stops moving after this long (default: %(default)s)')
    parser.add_argument('--sessions', type=int,
                        help='churn: sessions (default: 100, or %d never closed)' % NEVER_CLOSED_SESSIONS)
    parser.add_argument('--never_closed', action='store_true',
                        help='churn: the sessions never close (no heartbeat connection, so no unload)')
    args = parser.parse_args()
    runs = {'server': server_run, 'clients': clients_run, 'churn': churn_run}
    print('load average before: %.2f %.2f %.2f (1, 5, 15 min) on %d CPU cores' % (os.getloadavg() + (os.cpu_count(),)))
    with tempfile.TemporaryDirectory() as folder:
        for name in args.runs:
            print('\n== %s' % name, flush=True)
            runs[name](args, folder)


if __name__ == '__main__':
    main()
