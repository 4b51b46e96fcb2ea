# The weight parts of the SGD engine, shared by the layout preparation (_prep.pyx:
# balanced_parts, split_parts) and the engine that runs on them (_sgd_engine.pyx).

cdef enum:
    # The state weights are split into this many parts (split_parts) for the emission
    # scores and the step, whatever the thread count: a sequence's emission scores
    # are its parts' sums added in part order, so results do not depend on it.
    # Thread 0 takes items from the front and helpers from the back (_sync.h), so
    # thread 0 runs part 0 and a helper part 1 unless the other is late: each part's
    # weight rows then stay in one core's cache (with every row visited by both
    # cores, the step took three times as long).
    N_PARTS = 2
    # Attributes go to the parts in blocks of 2**BLOCK_SHIFT consecutive ids
    # (balanced_parts), not one by one, because neighbouring rows share cache lines
    # and the hardware prefetchers fetch the lines next to a row: a line of one part
    # that the other core's cache holds must be taken from it before it is written.
    # The weights are 64-byte aligned (fastcrf._sgd), so a block of dense rows is
    # whole lines.  CoNLL-2000 on a 2-vCPU Xeon: with blocks of 16 ids, the update
    # on two threads took as long as on one (each half at ~2x the one-thread cost
    # per entry); with 64, an epoch is ~20% faster.  Larger blocks balance worse:
    # the first ones hold the frequent attributes, whose rows stay in cache.
    BLOCK_SHIFT = 6
