"""The worker's app threads (``--threads N`` above 1): N threads taking requests from one queue.

The event loop hands each request to ``submit``; a free thread runs it, and the thread hands
the response back to the loop itself (call_soon_threadsafe, see worker.py), so nothing waits on
a result here. That is why this is not concurrent.futures.ThreadPoolExecutor: its per-task
Future, its Condition and its idle-thread semaphore add several lock round trips between the
loop and the threads to every request, and on two cores each one that blocks is a futex wake
and a context switch.
"""

import queue
import threading

__all__ = ["AppThreads"]


class AppThreads:
    def __init__(self, count, log, name="pronghorn-app"):
        self.log = log
        self._jobs = queue.SimpleQueue()  # C: put never blocks, get sleeps on one lock
        self._threads = [threading.Thread(target=self._serve, name=f"{name}_{i}", daemon=True)
                         for i in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, func, *args):
        """Run func(*args) in the next free thread."""
        self._jobs.put((func, args))

    def _serve(self):
        get = self._jobs.get
        while True:
            job = get()
            if job is None:
                return
            func, args = job
            try:
                func(*args)
            except Exception:  # (the worker's jobs catch their own; this keeps the thread alive)
                self.log.exception("app thread job failed")
            job = func = args = None  # drop the request's objects before waiting for the next

    def shutdown(self):
        """Drop the requests no thread has started; each thread ends after its current one.
        Does not wait: a stuck app must not hold the worker's exit."""
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._jobs.put(None)
