"""CQDB, the constant string <-> id dictionary inside CRFsuite model files.

A CRFsuite model stores its labels and its attributes in one CQDB chunk each
(Okazaki's "Constant Quark Database").  Layout, all integers little-endian uint32,
offsets relative to the start of the chunk::

    header      "CQDB", size (of the chunk), flag, byte-order mark 0x62445371,
                bwd_size (entries of the backward array), bwd_offset
    table refs  256 x (offset, n_buckets): the hash table of each ``hash % 256``
    records     per string: id (int32), key size (with its NUL), key bytes, NUL
    tables      per table: n_buckets x (hash, record offset); open addressing from
                bucket ``(hash >> 8) % n_buckets``, an offset of 0 marks a free one
    backward    bwd_size x record offset: id -> string

The hash is Bob Jenkins' lookup3 ``hashlittle`` of the key and its NUL, seed 0.
:func:`read_strings` reads a chunk through its backward array and checks every
offset against the chunk; :func:`write_strings` writes one that CRFsuite's own reader
(``cqdb_to_id``) can search.
"""

import struct

import numpy as np

MAGIC = b"CQDB"
BYTEORDER = 0x62445371
N_TABLES = 256
HEADER_SIZE = 24
DATA_OFFSET = HEADER_SIZE + 8 * N_TABLES


def _rot(x, k):
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


def _mix(a, b, c):
    a -= c; a ^= _rot(c, 4); c += b  # noqa: E702 (lookup3's mix, one line per step)
    b -= a; b ^= _rot(a, 6); a += c  # noqa: E702
    c -= b; c ^= _rot(b, 8); b += a  # noqa: E702
    a -= c; a ^= _rot(c, 16); c += b  # noqa: E702
    b -= a; b ^= _rot(a, 19); a += c  # noqa: E702
    c -= b; c ^= _rot(b, 4); b += a  # noqa: E702
    return a, b, c


def _final(a, b, c):
    c ^= b; c -= _rot(b, 14)  # noqa: E702
    a ^= c; a -= _rot(c, 11)  # noqa: E702
    b ^= a; b -= _rot(a, 25)  # noqa: E702
    c ^= b; c -= _rot(b, 16)  # noqa: E702
    a ^= c; a -= _rot(c, 4)  # noqa: E702
    b ^= a; b -= _rot(a, 14)  # noqa: E702
    c ^= b; c -= _rot(b, 24)  # noqa: E702
    return c


def hashlittle(keys):
    """lookup3's ``hashlittle(key, len(key), 0)`` of every key: ndarray of uint32.

    Vectorised over keys of the same number of 12-byte blocks: a key is zero-padded
    to whole blocks, which adds nothing to the tail words (lookup3 adds the tail's
    bytes only), so every key of a group takes the same steps.

    Parameters
    ----------
    keys : list of bytes
        Each at least one byte long (CQDB hashes a key with its NUL).
    """
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
    out = np.zeros(len(keys), dtype=np.uint32)
    if len(keys) == 0:
        return out
    if lengths.min() < 1:
        raise ValueError("hashlittle: a CQDB key is never empty (it ends with NUL)")
    blocks = (lengths + 11) // 12
    with np.errstate(over="ignore"):
        for n_blocks in np.unique(blocks).tolist():
            members = np.flatnonzero(blocks == n_blocks)
            width = 12 * n_blocks
            buf = b"".join(keys[i].ljust(width, b"\0") for i in members.tolist())
            words = np.frombuffer(buf, dtype="<u4").reshape(len(members), 3 * n_blocks)
            a = (np.uint32(0xDEADBEEF) + lengths[members].astype(np.uint32))
            b, c = a.copy(), a.copy()
            for block in range(n_blocks):
                a = a + words[:, 3 * block]
                b = b + words[:, 3 * block + 1]
                c = c + words[:, 3 * block + 2]
                if block < n_blocks - 1:
                    a, b, c = _mix(a, b, c)
            out[members] = _final(a, b, c)
    return out


def write_strings(strings, what):
    """The CQDB chunk of ``strings`` (string ``i`` gets id ``i``): bytes.

    Raises
    ------
    ValueError
        For a string holding a NUL (CRFsuite ends keys at the first one), naming
        ``what``.
    """
    strings = list(strings)
    n = len(strings)
    # All keys, each with its NUL, encoded at once: the records' key bytes as they are.
    blob = "".join([s + "\0" for s in strings]).encode("utf-8", "surrogateescape")
    keys = [key + b"\0" for key in blob.split(b"\0")[:-1]]
    if len(keys) != n:
        culprit = next(s for s in strings if "\0" in s)
        raise ValueError(f"{what} {culprit!r} holds a NUL character, which a CRFsuite "
                         "model file cannot store")
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    # Records back to back from DATA_OFFSET: id (int32), key size, key with its NUL;
    # built as one array (a model has hundreds of thousands of attributes).
    offsets = DATA_OFFSET + np.concatenate(([0], np.cumsum(8 + lengths)[:-1])) \
        if n else np.zeros(0, dtype=np.int64)
    cur = DATA_OFFSET + int(lengths.sum()) + 8 * n
    records = np.empty(cur - DATA_OFFSET, dtype=np.uint8)
    head = np.empty((n, 2), dtype="<u4")
    head[:, 0] = np.arange(n)
    head[:, 1] = lengths
    at_head = (offsets - DATA_OFFSET)[:, None] + np.arange(8)
    records[at_head.ravel()] = head.view(np.uint8).ravel()
    in_key = np.ones(len(records), dtype=bool)
    in_key[at_head.ravel()] = False
    records[in_key] = np.frombuffer(blob, dtype=np.uint8)
    hashes = hashlittle(keys)
    table_of = hashes % N_TABLES
    counts = np.bincount(table_of, minlength=N_TABLES) if n else np.zeros(N_TABLES, int)
    # Each table's keys in id order, inserted by open addressing (Python ints: the
    # probing is sequential, and numpy scalars are slow one at a time).
    by_table = np.argsort(table_of, kind="stable").tolist()
    hash_of, offset_of = hashes.tolist(), offsets.tolist()
    refs, tables = [], []
    first = 0
    for t in range(N_TABLES):
        size = 2 * int(counts[t])
        if size == 0:
            refs.append((0, 0))
            continue
        slot_hash, slot_offset = [0] * size, [0] * size
        for i in by_table[first:first + size // 2]:
            k = (hash_of[i] >> 8) % size
            while slot_offset[k] != 0:
                k = (k + 1) % size
            slot_hash[k], slot_offset[k] = hash_of[i], offset_of[i]
        first += size // 2
        buckets = np.empty((size, 2), dtype="<u4")
        buckets[:, 0] = slot_hash
        buckets[:, 1] = slot_offset
        refs.append((cur, size))
        tables.append(buckets.tobytes())
        cur += 8 * size
    bwd_offset = cur if n else 0
    size = cur + 4 * n
    if size >= 2 ** 32:
        raise ValueError(f"the {what}s take more than 4 GiB, more than a CRFsuite model "
                         "file can address")
    header = MAGIC + struct.pack("<5I", size, 0, BYTEORDER, n, bwd_offset)
    table_refs = np.asarray(refs, dtype="<u4").tobytes()
    return b"".join([header, table_refs, records.tobytes(), *tables,
                     offsets.astype("<u4").tobytes()])


def read_strings(buf, begin, n, what):
    """The ``n`` strings (ids ``0 .. n-1``) of the CQDB chunk at ``buf[begin:]``.

    Every offset is checked against the chunk; a key that is not UTF-8 is decoded
    with ``surrogateescape`` (so it round-trips to the same bytes).

    Raises
    ------
    ValueError
        For a chunk that is truncated, inconsistent or not a CQDB, naming ``what``.
    """
    def bad(why):
        return ValueError(f"the {what} dictionary is corrupted: {why}")

    if begin < 0 or begin + DATA_OFFSET > len(buf):
        raise bad("it lies outside the file")
    if buf[begin:begin + 4] != MAGIC:
        raise bad("no CQDB chunk at its offset")
    size, _flag, order, bwd_size, bwd_offset = struct.unpack_from("<5I", buf, begin + 4)
    if order != BYTEORDER:
        raise bad(f"byte-order mark {order:#x}")
    if begin + size > len(buf) or size < DATA_OFFSET:
        raise bad(f"its size ({size} bytes) runs past the end of the file")
    if n == 0:
        return []
    if bwd_offset == 0 or bwd_size < n or bwd_offset + 4 * n > size:
        raise bad(f"its id -> string array cannot hold {n} entries")
    chunk = bytes(memoryview(buf)[begin:begin + size])
    u8 = np.frombuffer(chunk, dtype=np.uint8)
    # Every record's header (id, key size) is gathered and checked at once, and the
    # keys are decoded together: a model has hundreds of thousands of attributes, and
    # one Python step per key was most of the time a tagger took to open one.
    offs = np.frombuffer(chunk, dtype="<u4", count=n, offset=bwd_offset).astype(np.int64)
    outside = (offs < DATA_OFFSET) | (offs + 8 > size)
    safe = np.where(outside, 0, offs)             # gathered, never used when outside
    head = np.ascontiguousarray(u8[safe[:, None] + np.arange(8)])
    rid = head[:, :4].copy().view("<i4").ravel()
    ksize = head[:, 4:].copy().view("<u4").ravel().astype(np.int64)
    ends = safe + 8 + ksize                       # one past each key's NUL
    bad_key = (ksize < 1) | (ends > size)
    bad_key[~bad_key] = u8[ends[~bad_key] - 1] != 0
    bad_id = rid != np.arange(n)
    failing = np.flatnonzero(outside | bad_id | bad_key)
    if len(failing):  # the first bad entry, checked in the order of its fields
        i = int(failing[0])
        if outside[i]:
            raise bad(f"entry {i} points outside the chunk")
        if bad_id[i]:
            raise bad(f"entry {i} holds id {rid[i]}")
        raise bad(f"entry {i} has a key that runs past the chunk or lacks its NUL")
    # The keys with their NULs, back to back: one decode, one split.
    starts = offs + 8
    pos = np.arange(int(ksize.sum())) + np.repeat(starts - (np.cumsum(ksize) - ksize), ksize)
    strings = u8[pos].tobytes().decode("utf-8", "surrogateescape").split("\0")
    if len(strings) == n + 1:
        return strings[:-1]
    # Some key holds a NUL before its own: it ends there, as a C string does.
    return [chunk[a:chunk.index(b"\0", a)].decode("utf-8", "surrogateescape")
            for a in starts.tolist()]
