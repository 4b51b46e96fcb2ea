"""Atomic file replacement: a reader sees the old file or the whole new one."""

import contextlib
import os
import stat
import tempfile

__all__ = ["atomic_file"]

# mkstemp creates its file 0600; a file written by open() gets 0666 less the umask.
# The umask can only be read by setting it, so it is read once, here, rather than
# racing other threads at every write.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _final_mode(path):
    """The permission bits ``path`` should end with: an existing file's own, else
    those a plain ``open(path, "w")`` would give."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_UMASK


def _is_special(path):
    """Whether ``path`` exists and is not a regular file (nor a folder)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _plain_open(target, mode, encoding, path):
    try:
        return open(target, mode, **({} if mode == "wb" else {"encoding": encoding}))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None


@contextlib.contextmanager
def atomic_file(path, mode="wb", *, prefix=".fastcrf-", suffix=".tmp", encoding=None):
    """Open a temporary file beside ``path``; on a clean exit, fsync it and rename it
    over ``path``; on an error (or an interrupt) delete it and leave ``path`` alone.
    The file ends with the permissions of the one it replaces, or those ``open`` would
    give a new one.  A symbolic link is kept (the file it points to is replaced); a
    target that is not a regular file (a device such as ``/dev/stdout``, a FIFO) is
    written to directly, as ``open`` would.

    Parameters
    ----------
    path : str or path-like
    mode : {"wb", "w"}, default="wb"
    prefix, suffix : str
        Of the temporary file's name (in the same folder, so the rename is atomic).
    encoding : str, optional
        For text mode.

    Yields
    ------
    file object
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fsdecode(os.fspath(path))
    # A symbolic link stays a link: its target is the file replaced.
    target = os.path.realpath(path)
    if _is_special(target):
        # A device, a FIFO, a socket (``-o /dev/stdout``): renaming over it would
        # destroy it, and its reader expects the bytes, so write to it as open() does.
        with _plain_open(target, mode, encoding, path) as f:
            yield f
        return
    folder = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as exc:
        # The error would name the temporary file, which the caller never asked for.
        raise OSError(exc.errno, exc.strerror, path) from None
    try:
        # fdopen closes fd itself when it fails (an unknown encoding, say).
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _final_mode(target))
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, path) from None
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            # A failed write or fsync (a full disk) names no file: name the target.
            raise OSError(exc.errno, exc.strerror, path) from None
        raise
