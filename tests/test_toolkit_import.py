import subprocess
import sys

import fastcrf


def test_submodules_load_lazily(tmp_path):
    code = ("import sys, fastcrf; "
            "assert not {'fastcrf.io', 'fastcrf.metrics', 'fastcrf.templates', "
            "'fastcrf.datasets'} & set(sys.modules), sorted(sys.modules)")
    # Outside the source tree, whose uncompiled fastcrf/ would shadow the installed one.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert fastcrf.templates.Template is not None
    assert callable(fastcrf.metrics.chunk_scores) and callable(fastcrf.io.read_conll)
    assert callable(fastcrf.datasets.make_sequences)
    assert {"io", "metrics", "templates", "datasets"} <= set(dir(fastcrf))
