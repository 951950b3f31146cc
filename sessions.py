"""A TensorFlow 1 session that gives back what oneDNN keeps per input shape: evaluate.KinD's graph
and a Beam worker's SavedModel run through one.

oneDNN keeps working buffers for every input shape a session has run, in the primitive caches of
the threads that ran it, until they close: on an AMX CPU in bfloat16 about 45 MB a thread for each
new tile shape of 1 MP, and 38 MB for each new 600x400 photo size with TF's default two inter-op
threads, never reused (docs/SPEED.md). So a session runs on one inter-op thread of its own, which
closes with it, and a session that has grown by pipeline.RETAINED_LIMIT over the new shapes it ran is
reopened with the same graph and weights (the same numbers), or by RETAINED_FLOOR while the process
holds more than RESIDENT_HIGH (a large photo's buffers: 50 MP then peaks at 1.76-1.81 GiB there,
not 2.10). No graph-mode switch here: Beam's workers keep TensorFlow's eager default.
"""
import threading

import numpy as np

import pipeline
import utils

tf = utils.import_tensorflow(graph_mode=False)   # quietly; eager execution as the caller left it

RETAINED_FLOOR, RESIDENT_HIGH = 128 << 20, 1792 << 20      # and pipeline.RETAINED_LIMIT (the memory guard's too)


def open_session(graph):
    """A session on `graph` with its own inter-op thread, whose primitive caches close with it (not
    the process's); one, as oneDNN keeps a primitive per thread that ran its shape (AMX: a process
    running 1080p frames 1.31 -> 1.10 GiB, as fast; docs/SPEED.md)."""
    return tf.Session(graph=graph, config=tf.ConfigProto(use_per_session_threads=True,
                                                         inter_op_parallelism_threads=1))


class ReopeningSession:
    """`session` (open_session's, its variables holding their weights) on its finished graph, run by
    any number of threads: run() reopens it, with the same weights, once it has kept too much."""

    def __init__(self, session):
        self.session, self.graph = session, session.graph
        with self.graph.as_default():
            variables = tf.global_variables()
        self._weights = list(zip(variables, session.run(variables)))   # (a list: TF 2 variables are unhashable)
        self._shapes, self.retained = set(), 0       # what the session ran, and how far it grew for it
        self._warm = set()                           # the fetches run at least once by any session
        self._turn, self._running, self._reopening = threading.Condition(), 0, False
        self.reopened = 0

    def close(self):
        self.session.close()

    def reopen(self):
        """A new session with the same weights, freeing what the old one kept for its shapes: the same
        graph, so the same numbers. Not while another thread runs it (run() waits for them)."""
        self.session.close()
        self.session = open_session(self.graph)
        initializers = [variable.initializer for variable, _ in self._weights]    # one run: Variable.load's feed
        self.session.run(initializers, {op.inputs[1]: value for op, (_, value) in zip(initializers, self._weights)})
        self._shapes, self.retained = set(), 0
        self.reopened += 1

    def run(self, fetches, feed, key=()):
        """session.run(fetches, feed) for a dict of fetches. A run with a shape new to the session (the
        fetches' names, the feed's shapes and `key`) counts how far the process grew over it; past
        pipeline.RETAINED_LIMIT the session is reopened first, once no other thread is running it."""
        key = (tuple(fetches), key) + tuple(np.shape(value) for value in feed.values())
        with self._turn:
            while self._reopening:
                self._turn.wait()
            new = key not in self._shapes
            if new and (self.retained > pipeline.RETAINED_LIMIT or (
                    self.retained > RETAINED_FLOOR and utils.resident_bytes() > RESIDENT_HIGH)):
                self._reopening = True
                while self._running:
                    self._turn.wait()
                self.reopen()
                self._reopening = False
                self._turn.notify_all()
            self._running += 1
            session, before = self.session, (utils.resident_bytes() if new else 0)
        try:
            return session.run(fetches, feed)
        finally:
            with self._turn:
                self._running -= 1
                if new:                               # no reopening while a run is in flight
                    self._shapes.add(key)
                    if key[0] in self._warm:          # not the fetches' first run: TF's pools grow there
                        self.retained += max(0, utils.resident_bytes() - before)
                    self._warm.add(key[0])
                self._turn.notify_all()
