"""Old path of :mod:`fastcrf._features._encoding`, kept for pickles and user code.

The module object is the same (not a copy), so ``fastcrf._encoding.X`` is
``fastcrf._features._encoding.X`` for every name, private ones included.
"""

import sys

from ._features import _encoding

sys.modules[__name__] = _encoding
