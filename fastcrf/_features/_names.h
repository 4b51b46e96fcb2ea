/* The C side of fastcrf/_features/_encode.pyx: the name tables' hash, slots and packed keys,
 * and the multi-threaded passes over runs of list-of-str tokens (see the design
 * notes there, c and g).  The passes that OpenMP threads run (fcrf_lookup_tokens,
 * fcrf_hash_tokens) read Python objects only through macros that do not call into
 * the interpreter, while the calling thread holds the GIL.
 */
#ifndef FASTCRF_NAMES_H
#define FASTCRF_NAMES_H

#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "_openmp.h"
#if defined(_MSC_VER) && defined(_M_X64)
#  include <intrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define FCRF_PREFETCH(p) __builtin_prefetch((const void *)(p))
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#  include <xmmintrin.h>
#  define FCRF_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#  define FCRF_PREFETCH(p) ((void)0)
#endif

/* 0, or -1 with an exception: PEP 393 strings need no preparation since 3.12. */
static inline int fcrf_str_ready(PyObject *s) {
#if PY_VERSION_HEX < 0x030C0000
    return PyUnicode_READY(s);
#else
    (void)s;
    return 0;
#endif
}

#if defined(__linux__)
#  include <sys/mman.h>
#endif
/* Ask for huge pages for a large table or arena (Linux' transparent huge pages,
 * where they are "madvise"): random probes then miss the cache, not the TLB. */
static inline void fcrf_advise_huge(void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t page = 4096, start = ((uintptr_t)p + page - 1) & ~(page - 1);
    if (n >= ((size_t)4 << 20) && (uintptr_t)p + n > start + page)
        madvise((void *)start, ((uintptr_t)p + n - start) & ~(page - 1), MADV_HUGEPAGE);
#else
    (void)p; (void)n;
#endif
}

/* The item array of a list (moved, not copied, by reorder). */
static inline PyObject **fcrf_list_items(PyObject *list) {
    return ((PyListObject *)list)->ob_item;
}

/* fastcrf's hash of a ready str, in place of CPython's SipHash (which cost a sixth
 * of the encoding of fresh strings), after wyhash/rapidhash: each 8 bytes of its
 * characters w go in as h = mum(w ^ k1, h ^ k2), mum being the 64x64 -> 128-bit
 * product folded to 64 bits, with keys drawn once per process (fcrf_seed_hash).  A
 * change of w changes the product by an amount that depends on the unknown keys, so
 * colliding names cannot be crafted in advance (a plain multiply-xorshift step has
 * key-independent differences that cancel).  Only fixed-size loads: the tail
 * overlaps the words before it, and a short string is read from its first and last
 * bytes; the byte count and the kind go in first. */
static uint64_t fcrf_hash_k0 = 0x243F6A8885A308D3ull;
static uint64_t fcrf_hash_k1 = 0x13198A2E03707344ull;
static uint64_t fcrf_hash_k2 = 0xA4093822299F31D0ull;

static inline uint64_t fcrf_mum(uint64_t a, uint64_t b) {
#if defined(__SIZEOF_INT128__)
    const __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
#elif defined(_MSC_VER) && defined(_M_X64)
    uint64_t hi;
    const uint64_t lo = _umul128(a, b, &hi);
    return lo ^ hi;
#else
    const uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    const uint64_t lo = (mid << 32) | (uint32_t)p00;
    const uint64_t hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    return lo ^ hi;
#endif
}

static inline uint64_t fcrf_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The hash keys, from a seed. */
static void fcrf_seed_hash(uint64_t seed) {
    fcrf_hash_k0 = fcrf_splitmix(&seed);
    fcrf_hash_k1 = fcrf_splitmix(&seed) | 1;
    fcrf_hash_k2 = fcrf_splitmix(&seed) | 1;
}

static inline Py_hash_t fcrf_str_hash(PyObject *s) {
    const unsigned char *p = (const unsigned char *)PyUnicode_DATA(s);
    const size_t n = (size_t)PyUnicode_GET_LENGTH(s) * PyUnicode_KIND(s);
    const uint64_t k1 = fcrf_hash_k1, k2 = fcrf_hash_k2;
    uint64_t h = fcrf_mum(fcrf_hash_k0 ^ ((uint64_t)n << 3) ^ (uint64_t)PyUnicode_KIND(s), k1);
    uint64_t w;
    size_t i = 0;
    if (n >= 8) {
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, p + i, 8);
            h = fcrf_mum(w ^ k1, h ^ k2);
        }
        if (i < n) {   /* the last 8 bytes, overlapping the words before */
            memcpy(&w, p + n - 8, 8);
            h = fcrf_mum(w ^ k1, h ^ k2);
        }
    } else if (n >= 4) {   /* first and last 4 bytes: every byte */
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        h = fcrf_mum((((uint64_t)a << 32) | b) ^ k1, h ^ k2);
    } else if (n > 0) {
        w = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
        h = fcrf_mum(w ^ k1, h ^ k2);
    }
    return (Py_hash_t)fcrf_mum(h ^ k2, (uint64_t)n ^ k1);
}

typedef struct {
    uint32_t tag;      /* the low 32 bits of the hash (slot position and filter) */
    int32_t id;        /* an id, or DROP */
    PyObject *a;       /* the name, or the key of a (key, str value) pair; NULL: empty */
    PyObject *b;       /* the pair's value; NULL for a name */
    uint64_t key;      /* offset of the characters of a (and b) in the Table's arena */
} fcrf_slot;

/* Key records (Table.arena): for each string of a key, a header
 * (length << 3 | kind) and its characters, zero-padded to 8 bytes. */
static inline size_t fcrf_key_size(PyObject *s) {
    return 8 + (((size_t)PyUnicode_GET_LENGTH(s) * PyUnicode_KIND(s) + 7) & ~(size_t)7);
}
static inline char *fcrf_key_put(char *p, PyObject *s) {
    const uint64_t n = (uint64_t)PyUnicode_GET_LENGTH(s), k = PyUnicode_KIND(s);
    const uint64_t header = (n << 3) | k;
    const size_t size = fcrf_key_size(s) - 8;
    memcpy(p, &header, 8);
    if (size > 0)
        memset(p + size, 0, 8);   /* the last word of the characters: the padding */
    memcpy(p + 8, PyUnicode_DATA(s), (size_t)(n * k));
    return p + 8 + size;
}
/* Past the record at p. */
static inline const char *fcrf_key_skip(const char *p) {
    uint64_t header;
    memcpy(&header, p, 8);
    return p + 8 + (((header >> 3) * (header & 7) + 7) & ~(uint64_t)7);
}
/* Past the record at p when it holds the characters of s, else NULL. */
static inline const char *fcrf_key_match(const char *p, PyObject *s) {
    const uint64_t n = (uint64_t)PyUnicode_GET_LENGTH(s), k = PyUnicode_KIND(s);
    uint64_t header;
    memcpy(&header, p, 8);
    if (header != ((n << 3) | k) || memcmp(p + 8, PyUnicode_DATA(s), (size_t)(n * k)) != 0)
        return NULL;
    return p + 8 + ((n * k + 7) & ~(uint64_t)7);
}

/* The id of name a (hash h) in a table of names, or -1.  Reads only. */
static inline int32_t fcrf_find_name(const fcrf_slot *slots, size_t mask,
                                     const char *arena, PyObject *a, Py_hash_t h) {
    const uint32_t tag = (uint32_t)h;
    size_t i = tag & mask;
    for (;;) {
        const fcrf_slot *s = slots + i;
        if (s->a == NULL)
            return -1;
        if (s->tag == tag && s->b == NULL
                && (s->a == a || fcrf_key_match(arena + s->key, a) != NULL))
            return s->id;
        i = (i + 1) & mask;
    }
}

/* The names of n_tok list/tuple tokens, looked up in a read-only table of names
 * by n_threads threads: out[item_off[t] + q] = id of item q of token t, or -1
 * when the table lacks it; bad[t] = 1 when an item of token t is not an exact,
 * ready str (nothing else is then written for it).  The caller holds the GIL and
 * runs no Python code meanwhile, so nothing read here can change or be freed;
 * the threads call no Python API.  As Encoder._token, each chunk of a token's
 * items is hashed (slots prefetched), then its slots' keys are prefetched, then
 * it is resolved, so that the cache misses of a chunk overlap. */
#define FCRF_LOOKUP_CHUNK 64
#if PY_VERSION_HEX < 0x030C0000
#  define FCRF_STR_IS_READY(s) PyUnicode_IS_READY(s)
#else
#  define FCRF_STR_IS_READY(s) 1   /* always, since 3.12 */
#endif
/* The item array of a list or tuple token, and whether an item is an exact ready
 * str: what the threaded passes below may read without the C API. */
static inline PyObject **fcrf_token_items(PyObject *tok) {
    return PyList_Check(tok) ? ((PyListObject *)tok)->ob_item
                             : ((PyTupleObject *)tok)->ob_item;
}
static inline int fcrf_plain_str(PyObject *p) {
    return PyUnicode_CheckExact(p) && FCRF_STR_IS_READY(p);
}

static void fcrf_lookup_tokens(PyObject *const *tokens, const int64_t *item_off,
                               Py_ssize_t n_tok, const fcrf_slot *slots, size_t mask,
                               const char *arena, int32_t *out, unsigned char *bad,
                               int n_threads) {
    Py_ssize_t t;
    #pragma omp parallel for schedule(static, 256) num_threads(n_threads)
    for (t = 0; t < n_tok; t++) {
        PyObject **items = fcrf_token_items(tokens[t]);
        const Py_ssize_t m = (Py_ssize_t)(item_off[t + 1] - item_off[t]);
        int32_t *ids = out + item_off[t];
        Py_hash_t h[FCRF_LOOKUP_CHUNK];
        Py_ssize_t lo, q, n;
        bad[t] = 0;
        for (lo = 0; lo < m && !bad[t]; lo += FCRF_LOOKUP_CHUNK) {
            n = m - lo < FCRF_LOOKUP_CHUNK ? m - lo : FCRF_LOOKUP_CHUNK;
            for (q = 0; q < n; q++) {
                PyObject *p = items[lo + q];
                if (!fcrf_plain_str(p)) {
                    bad[t] = 1;
                    break;
                }
                h[q] = fcrf_str_hash(p);
                FCRF_PREFETCH(slots + ((uint32_t)h[q] & mask));
            }
            if (bad[t])
                break;
            for (q = 0; q < n; q++) {
                const fcrf_slot *s = slots + ((uint32_t)h[q] & mask);
                if (s->a != NULL && s->tag == (uint32_t)h[q] && s->a != items[lo + q])
                    FCRF_PREFETCH(arena + s->key);
            }
            for (q = 0; q < n; q++)
                ids[lo + q] = fcrf_find_name(slots, mask, arena, items[lo + q], h[q]);
        }
    }
}

/* The names of n_tok list/tuple tokens, hashed by n_threads threads: item q of
 * token t goes to flat[item_off[t] + q] with its hash in hashes[...]; bad[t] = 1
 * when an item of token t is not an exact, ready str (the rest of that token is
 * then not written).  Same conditions as fcrf_lookup_tokens. */
static void fcrf_hash_tokens(PyObject *const *tokens, const int64_t *item_off,
                             Py_ssize_t n_tok, PyObject **flat, Py_hash_t *hashes,
                             unsigned char *bad, int n_threads) {
    Py_ssize_t t;
    #pragma omp parallel for schedule(static, 64) num_threads(n_threads)
    for (t = 0; t < n_tok; t++) {
        PyObject **items = fcrf_token_items(tokens[t]);
        const int64_t lo = item_off[t];
        const Py_ssize_t m = (Py_ssize_t)(item_off[t + 1] - lo);
        Py_ssize_t q;
        bad[t] = 0;
        for (q = 0; q < m; q++) {
            PyObject *p = items[q];
            if (!fcrf_plain_str(p)) {
                bad[t] = 1;
                break;
            }
            flat[lo + q] = p;
            hashes[lo + q] = fcrf_str_hash(p);
        }
    }
}

#endif
