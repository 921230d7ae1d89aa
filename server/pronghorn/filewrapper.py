"""`wsgi.file_wrapper`: lets an app hand the server a file to send (PEP 3333, "Optional Platform-Specific
File Handling").

The wrapper is a plain iterable of blocks, so it works anywhere an ordinary body does; the worker
recognises it and, when the file is a real file (it has a working ``fileno()``), sends it with
``os.sendfile`` instead of copying it through Python.
"""

import os


class FileWrapper:
    """Iterable over ``filelike`` in blocks of ``blksize`` bytes; ``close()`` closes the file."""

    __slots__ = ("filelike", "blksize", "close")

    def __init__(self, filelike, blksize=65536):
        self.filelike = filelike
        self.blksize = blksize
        close = getattr(filelike, "close", None)
        if close is not None:
            # PEP 3333: the wrapper's close() must call the file's close().
            self.close = close

    def __iter__(self):
        read = self.filelike.read
        blksize = self.blksize
        while True:
            block = read(blksize)
            if not block:
                return
            yield block

    def sendfile_source(self):
        """(fd, offset, size_left) when the file can be sent with os.sendfile, else None.

        The offset is the file's current position, so an app that seeked before wrapping
        gets the rest of the file, as the iterating path would send.
        """
        fileno = getattr(self.filelike, "fileno", None)
        if fileno is None:
            return None
        try:
            fd = fileno()
            offset = os.lseek(fd, 0, os.SEEK_CUR)
            size = os.fstat(fd).st_size
        except (OSError, ValueError, AttributeError, TypeError):
            # io.BytesIO raises UnsupportedOperation (an OSError); pipes can't seek.
            return None
        if hasattr(self.filelike, "tell"):
            try:
                # A buffered reader may have read ahead of its logical position.
                offset = self.filelike.tell()
            except (OSError, ValueError):
                return None
        return fd, offset, max(0, size - offset)
