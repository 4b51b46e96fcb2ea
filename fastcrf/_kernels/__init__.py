"""The compiled numerics: nogil kernels that trust their (validated) inputs.

- ``_core``: the dense lattice (scaled forward-backward with its log-space fallback,
  Viterbi, path scores) and the chain constants, for one sequence and for a batch.
- ``_sparse``: the same over sparse token features (emission rows built from the
  state weights): forward-backward, the state gradient, Viterbi.
- ``_sgd_engine``: one epoch of (averaged) SGD over mini-batches.
- ``_online_engine``: one epoch of the perceptron / passive-aggressive.
- ``_prep``: layout preparation before training (tail pairs, the weight parts).
- ``_vector``: the one-pass vector steps of the OWL-QN optimiser.
- ``*.h``: the C row kernels (``_kernels.h``, ``_rows.h``, ``_padded.h``), the
  thread hand-off (``_sync.h``), the OpenMP shim and the shared limits.
"""
