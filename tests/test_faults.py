"""Faults: a full disk or a failing write, fsync or rename while a model or a column
file is written leaves the previous file intact and no partial file beside it; an
interrupted fit keeps the previous model."""

import errno
import os
import stat
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from fastcrf import CRF, cli
from fastcrf._atomic import atomic_file
from fastcrf._train import progress
from fastcrf.io import load_conll, write_conll

SENTENCES = [[("w%d" % (i % 7), "B-X" if i % 3 == 0 else "O") for i in range(n)]
             for n in range(2, 40)]
X = [[[f"w={w}", f"p={w[-1]}"] for w, _ in s] for s in SENTENCES]
Y = [[label for _, label in s] for s in SENTENCES]


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """A file that takes ``room`` bytes, then fails as a full disk does (after
    writing what fits, as ``write(2)`` does)."""

    def __init__(self, f, room):
        self._f, self._room = f, room

    def write(self, data):
        data = bytes(data) if not isinstance(data, str) else data
        if len(data) > self._room:
            self._f.write(data[: self._room])
            self._room = 0
            enospc()
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def full_disk(monkeypatch, room):
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: FullDisk(real(*a, **k), room))


# Each way a write can fail: the data (early, late), fsync, the rename.
FAULTS = {
    "write-first-byte": lambda mp: full_disk(mp, 0),
    "write-midway": lambda mp: full_disk(mp, 200),
    "fsync": lambda mp: mp.setattr(os, "fsync", enospc),
    "replace": lambda mp: mp.setattr(os, "replace", enospc),
}


def folder_state(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def fitted():
    return CRF(algorithm="lbfgs", max_iterations=5).fit(X, Y)


@pytest.fixture(scope="module")
def refitted():
    return CRF(algorithm="lbfgs", max_iterations=8, c2=0.5).fit(X, Y)


@pytest.mark.parametrize("fault", FAULTS)
def test_failed_save_keeps_the_previous_model(tmp_path, monkeypatch, fitted, refitted, fault):
    path = tmp_path / "model.npz"
    fitted.save(path)
    before = folder_state(tmp_path)
    with monkeypatch.context() as mp:
        FAULTS[fault](mp)
        with pytest.raises(OSError) as info:
            refitted.save(path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert folder_state(tmp_path) == before  # no partial file, the old one untouched
    assert CRF.load(path).predict(X) == fitted.predict(X)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", ["tagged.txt", "tagged.txt.gz"])
def test_failed_write_conll_keeps_the_previous_file(tmp_path, monkeypatch, fault, name):
    path = tmp_path / name
    write_conll(path, SENTENCES[:3])
    before = folder_state(tmp_path)
    with monkeypatch.context() as mp:
        FAULTS[fault](mp)
        with pytest.raises(OSError):
            write_conll(path, SENTENCES)
    assert folder_state(tmp_path) == before
    rows, labels = load_conll(path)
    assert len(rows) == 3


def test_cli_outputs_on_a_full_disk(tmp_path, monkeypatch, capsys):
    data = tmp_path / "train.txt"
    write_conll(data, SENTENCES)
    template = tmp_path / "template"
    template.write_text("U00:%x[0,0]\nU01:%x[-1,0]\nB\n")
    model, tagged = tmp_path / "model.npz", tmp_path / "tagged.txt"
    train = ["train", "-q", "-a", "lbfgs", "-i", "3", "-t", str(template), "-m", str(model),
             str(data)]
    assert cli.main(train) == 0
    assert cli.main(["tag", "-q", "-m", str(model), "-o", str(tagged), str(data)]) == 0
    capsys.readouterr()
    before = folder_state(tmp_path)
    for argv in (train[:5] + ["5"] + train[6:],
                 ["tag", "-q", "-i", "-m", str(model), "-o", str(tagged), str(data)]):
        with monkeypatch.context() as mp:
            full_disk(mp, 100)
            assert cli.main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]
        # One line that names the file the user asked for, not a temporary one.
        assert err.startswith("fastcrf: error: ") and "No space left on device" in err
        assert str(model if argv[0] == "train" else tagged) in err
        assert folder_state(tmp_path) == before


def test_a_real_file_size_limit(tmp_path, fitted, refitted):
    """Not simulated: the kernel refuses the write (RLIMIT_FSIZE, EFBIG) in a child."""
    resource = pytest.importorskip("resource")
    if not hasattr(resource, "RLIMIT_FSIZE"):
        pytest.skip("no RLIMIT_FSIZE on this platform")
    path = tmp_path / "model.npz"
    fitted.save(path)
    before = folder_state(tmp_path)
    refitted_path = tmp_path.parent / f"{tmp_path.name}-refitted.npz"
    refitted.save(refitted_path)
    big = os.path.getsize(refitted_path)
    code = textwrap.dedent(f"""
        import resource, signal, sys
        from fastcrf import CRF
        crf = CRF.load({str(refitted_path)!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({big // 2}, {big // 2}))
        try:
            crf.save({str(path)!r})
        except OSError as exc:
            print("errno", exc.errno)
            sys.exit(3)
    """)
    # Not run from the source checkout, whose fastcrf folder has no compiled kernels
    # in a non-editable install.
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert f"errno {errno.EFBIG}" in proc.stdout
    assert folder_state(tmp_path) == before
    assert CRF.load(path).predict(X) == fitted.predict(X)


def test_interrupted_fit_keeps_the_previous_model(monkeypatch, fitted):
    crf = CRF(algorithm="lbfgs", max_iterations=5).fit(X, Y)
    state = crf.state_weights_.copy()
    real = progress.Progress.callback

    def interrupt(self, epoch, info, weights_fn):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, epoch, info, weights_fn)

    for algorithm in ("lbfgs", "asgd", "ap"):
        crf.set_params(algorithm=algorithm, max_iterations=10)
        with monkeypatch.context() as mp:
            mp.setattr(progress.Progress, "callback", interrupt)
            with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # asgd on a small set warns
                crf.fit(X, Y)
        np.testing.assert_array_equal(crf.state_weights_, state)
        assert crf.predict(X) == fitted.predict(X)
        assert crf.n_iter_ == fitted.n_iter_


@pytest.mark.parametrize("fault", FAULTS)
def test_failed_crfsuite_model_write_keeps_the_previous_file(tmp_path, monkeypatch, fault):
    from fastcrf.pycrfsuite import Tagger, Trainer

    def train(path, iterations):
        trainer = Trainer(verbose=False)
        for xseq, yseq in zip(X, Y):
            trainer.append(xseq, yseq)
        trainer.set_params({"max_iterations": iterations})
        trainer.train(str(path))

    path = tmp_path / "model.crfsuite"
    train(path, 3)
    before = folder_state(tmp_path)
    with monkeypatch.context() as mp:
        FAULTS[fault](mp)
        with pytest.raises(OSError):
            train(path, 6)
    assert folder_state(tmp_path) == before
    tagger = Tagger()
    tagger.open(str(path))
    assert len(tagger.tag(X[0])) == len(X[0])


def test_atomic_file_keeps_the_usual_permissions(tmp_path):
    # A new file gets what open() would give it (not mkstemp's 0600); a replaced file
    # keeps its own mode.
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    new = tmp_path / "new.txt"
    with atomic_file(new, "w") as f:
        f.write("y")
    assert stat.S_IMODE(new.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    os.chmod(new, 0o640)
    with atomic_file(new, "w") as f:
        f.write("z")
    assert stat.S_IMODE(new.stat().st_mode) == 0o640 and new.read_text() == "z"


def test_atomic_file_with_a_bad_encoding_leaks_nothing(tmp_path):
    target = tmp_path / "out.txt"
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(3):
        with pytest.raises(LookupError):
            with atomic_file(target, "w", encoding="no-such-codec"):
                pass
    assert os.listdir(tmp_path) == []
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_atomic_file_keeps_a_symbolic_link(tmp_path):
    real = tmp_path / "real.npz"
    real.write_bytes(b"old")
    link = tmp_path / "link.npz"
    os.symlink(real.name, link)
    with atomic_file(link) as f:
        f.write(b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_atomic_file_writes_into_a_fifo(tmp_path):
    # `crf_test -o FIFO` (or /dev/stdout): the reader gets the bytes and the FIFO stays.
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with atomic_file(fifo, "w", encoding="utf-8") as f:
        f.write("tagged\n")
    reader.join(timeout=30)
    assert got == [b"tagged\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.listdir(tmp_path) == ["pipe"]
