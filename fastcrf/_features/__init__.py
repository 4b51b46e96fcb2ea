"""Feature encoding: token features (lists, dicts, strings) to attribute ids.

Unlike fastcrf._kernels this code holds the GIL and reads Python objects (its
threaded passes rely on the GIL keeping other threads out, see ``_encode.pyx``): a
different threading regime, hence a package of its own.

- ``_encoding``: vocabularies and encoded batches (EncodedSequences), the Python API.
- ``_encode``: the compiled encoding loop and name table.
"""
