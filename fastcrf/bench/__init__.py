"""``fastcrf bench``: side-by-side benchmarks that any user can run from the install.

The suite trains and tags with fastcrf and with the peers that are installed
(python-crfsuite, sklearn-crfsuite; ``pip install "fastcrf[bench]"``), on the same
features, each run in its own child process so its peak memory is its own, the tools
alternating round after round so that machine noise hits them alike.  It reports
medians and min-max over rounds and ratios against fastcrf.

Modules, one job each:

- :mod:`~fastcrf.bench.workloads`: the data (a built-in synthetic corpus, or column
  files with a CRF++ template), rebuilt the same way in every child;
- :mod:`~fastcrf.bench.tools`: what each tool runs for each algorithm;
- :mod:`~fastcrf.bench.worker`: one measured run in a child process;
- :mod:`~fastcrf.bench.suite`: the rounds, and their summary;
- :mod:`~fastcrf.bench.report`: the table, the JSON file and the plot;
- :mod:`~fastcrf.bench.layers`: the dense API and the torch layer against pytorch-crf
  (``--layers``).

:func:`run_suite` is the programmatic entry point; the command line is
``fastcrf bench`` (:mod:`fastcrf.cli`).
"""

from .suite import run_suite, summarise
from .tools import ALGORITHMS, TOOLS

__all__ = ["ALGORITHMS", "TOOLS", "run_suite", "summarise"]
