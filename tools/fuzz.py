"""Coverage-guided fuzzing of fastcrf's parsers of untrusted input (atheris).

Usage::

    pip install atheris            # CPython on Linux or macOS
    python tools/fuzz.py TARGET [--seconds 60] [--runs N]
    python tools/fuzz.py all --seconds 60

TARGET is one of ``tests/fuzz_targets.py``'s ``TARGETS`` (model, columns, template,
tokens).  The fuzzer starts from the inputs kept in ``tests/fuzz_corpus/TARGET/``
(plus valid model files it writes for ``model``); an input that raises anything but
``ValueError``/``TypeError``, crashes or runs longer than ``--timeout`` seconds is
written to ``tests/fuzz_corpus/TARGET/`` (as ``crash-<sha1>``), where
``tests/test_fuzz_corpus.py`` replays it from then on: fix the bug, keep the file.
Each target runs in its own process (atheris instruments one target at a time).
Exit status: 0 when no target failed.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
CORPUS = os.path.join(TESTS, "fuzz_corpus")


def _run_one(target, seconds, runs, timeout):
    import atheris

    sys.path.insert(0, TESTS)
    with atheris.instrument_imports():
        import fastcrf  # noqa: F401  (instrumented: its Python layer guides the fuzzer)
        import fuzz_targets
    fn = fuzz_targets.TARGETS[target]
    kept = os.path.join(CORPUS, target)
    os.makedirs(kept, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"fuzz-{target}-")
    for name in os.listdir(kept):
        shutil.copy(os.path.join(kept, name), work)
    if target == "model":
        for name, data in fuzz_targets.seed_models().items():
            with open(os.path.join(work, "seed-" + name), "wb") as f:
                f.write(data)

    def one_input(data):
        try:
            fn(data)
        except BaseException:
            name = "crash-" + hashlib.sha1(data).hexdigest()
            with open(os.path.join(kept, name), "wb") as f:
                f.write(data)
            raise

    argv = [sys.argv[0], work, f"-timeout={timeout}", "-rss_limit_mb=4096",
            f"-artifact_prefix={kept}{os.sep}"]
    if seconds:
        argv.append(f"-max_total_time={seconds}")
    if runs:
        argv.append(f"-runs={runs}")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="a target name, or 'all'")
    parser.add_argument("--seconds", type=int, default=60, help="budget per target")
    parser.add_argument("--runs", type=int, default=0, help="or a number of inputs")
    parser.add_argument("--timeout", type=int, default=20,
                        help="seconds one input may take before it counts as a hang")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _run_one(args.target, args.seconds, args.runs, args.timeout)
        return 0
    sys.path.insert(0, TESTS)
    import fuzz_targets

    names = list(fuzz_targets.TARGETS) if args.target == "all" else [args.target]
    unknown = [n for n in names if n not in fuzz_targets.TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; choose from "
                     f"{', '.join(fuzz_targets.TARGETS)} or all")
    failed = []
    for name in names:
        print(f"== fuzzing {name} for {args.seconds} s" if not args.runs
              else f"== fuzzing {name} for {args.runs} inputs", flush=True)
        cmd = [sys.executable, os.path.abspath(__file__), name, "--child",
               "--seconds", str(args.seconds), "--runs", str(args.runs),
               "--timeout", str(args.timeout)]
        if subprocess.call(cmd) != 0:
            failed.append(name)
    if failed:
        print(f"failing targets: {', '.join(failed)} (inputs kept in {CORPUS})")
        return 1
    print("no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
