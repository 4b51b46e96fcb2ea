/* The C side of fastcrf/_features/_columns.pyx: column-file bytes -> token fields
 * (fcol_parse), and a CRF++ template's unigram lines expanded over those fields into
 * attribute ids through byte-string tables (fcol_expand).  No Python object is
 * touched: the callers run these without the GIL, over buffers they keep alive.
 *
 * The rules are io.py's (_parse) and templates.py's, on UTF-8 bytes:
 * - a line ends at "\n" only (binary files are iterated that way); line 1 loses a
 *   UTF-8 byte-order mark; a line must be valid UTF-8 as Python's strict decoder
 *   reads it;
 * - without a separator, fields are the runs between whitespace as str.split() sees
 *   it (Python's 29 whitespace code points, some of them multi-byte in UTF-8); with
 *   one, trailing "\r"s go, a line of whitespace only is blank, and the fields are
 *   what lies between the separator's occurrences (UTF-8 is self-synchronising, so a
 *   byte search finds exactly the code-point matches);
 * - a blank line, or a -DOCSTART- row (when asked), ends the sentence.
 */
#ifndef FASTCRF_COLUMNS_H
#define FASTCRF_COLUMNS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* The encoder's hash primitive and keys (fcrf_mum, fcrf_hash_k*, fcrf_seed_hash),
 * FCRF_PREFETCH and fcrf_advise_huge; it brings _openmp.h. */
#include "_names.h"
/* fcrf_murmur3_32, the hash of CRF(hash_features=...) (the hashed reader). */
#include "_murmur.h"

/* ------------------------------------------------------------------------- */
/* Growable arrays                                                            */
/* ------------------------------------------------------------------------- */

/* Make room for `need` elements of `size` bytes in *p (capacity *cap): 0 or -1. */
static int fcol_reserve(void **p, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap)
        return 0;
    int64_t n = *cap > 0 ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, (size_t)n * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Byte-string tables: key -> dense id, ids in insertion order                */
/* ------------------------------------------------------------------------- */

static inline uint64_t fcol_hash(const unsigned char *p, size_t n) {
    uint64_t h = fcrf_mum(fcrf_hash_k0 ^ (uint64_t)n, fcrf_hash_k1), w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = fcrf_mum(w ^ fcrf_hash_k1, h ^ fcrf_hash_k2);
    }
    if (n > 0) {    /* byte by byte: a libc call for a few bytes costs more */
        w = 0;
        for (size_t i = 0; i < n; i++)
            w |= (uint64_t)p[i] << (8 * i);
        h = fcrf_mum(w ^ fcrf_hash_k2, h ^ fcrf_hash_k1);
    }
    return fcrf_mum(h ^ fcrf_hash_k2, fcrf_hash_k1);
}

/* Open addressing, linear probing, at most half full; a slot packs the hash's high
 * 32 bits (a filter before the byte comparison) and the id + 1 (0: empty).  The keys
 * lie end to end in `arena`, key i at [off[i], off[i + 1]). */
typedef struct {
    uint64_t *slots;
    uint64_t mask;
    int64_t n;
    int64_t *off;
    int64_t off_cap;
    unsigned char *arena;
    int64_t arena_cap;
} fcol_table;

static void fcol_table_free(fcol_table *t) {
    free(t->slots);
    free(t->off);
    free(t->arena);
    memset(t, 0, sizeof(*t));
}

static int fcol_table_init(fcol_table *t) {
    memset(t, 0, sizeof(*t));
    t->slots = (uint64_t *)calloc(1024, sizeof(uint64_t));
    t->off = (int64_t *)malloc(64 * sizeof(int64_t));
    if (t->slots == NULL || t->off == NULL) {
        fcol_table_free(t);
        return -1;
    }
    t->mask = 1023;
    t->off_cap = 64;
    t->off[0] = 0;
    return 0;
}

static int fcol_table_grow(fcol_table *t) {
    const uint64_t size = 2 * (t->mask + 1), mask = size - 1;
    uint64_t *slots = (uint64_t *)calloc(size, sizeof(uint64_t));
    if (slots == NULL)
        return -1;
    for (int64_t i = 0; i < t->n; i++) {
        const uint64_t h = fcol_hash(t->arena + t->off[i], (size_t)(t->off[i + 1] - t->off[i]));
        uint64_t s = h & mask;
        while (slots[s])
            s = (s + 1) & mask;
        slots[s] = (h & 0xFFFFFFFF00000000ull) | (uint64_t)(i + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->mask = mask;
    return 0;
}

/* The id of key [p, p + n), added with the next id when new: >= 0, or -1 (memory). */
static int64_t fcol_table_id(fcol_table *t, const unsigned char *p, size_t n) {
    const uint64_t h = fcol_hash(p, n), tag = h & 0xFFFFFFFF00000000ull;
    uint64_t s = h & t->mask;
    for (;;) {
        const uint64_t v = t->slots[s];
        if (v == 0)
            break;
        if ((v & 0xFFFFFFFF00000000ull) == tag) {
            const int64_t i = (int64_t)(v & 0xFFFFFFFFull) - 1;
            if ((size_t)(t->off[i + 1] - t->off[i]) == n
                    && memcmp(t->arena + t->off[i], p, n) == 0)
                return i;
        }
        s = (s + 1) & t->mask;
    }
    const int64_t i = t->n, end = t->off[i];
    if (i >= 0x7FFFFFFE
            || fcol_reserve((void **)&t->off, &t->off_cap, i + 2, sizeof(int64_t))
            || fcol_reserve((void **)&t->arena, &t->arena_cap, end + (int64_t)n + 1, 1))
        return -1;
    if (n > 0)
        memcpy(t->arena + end, p, n);
    t->off[i + 1] = end + (int64_t)n;
    t->slots[s] = tag | (uint64_t)(i + 1);
    t->n = i + 1;
    if ((uint64_t)t->n * 2 > t->mask + 1 && fcol_table_grow(t))
        return -1;
    return i;
}

/* The combinations of up to four column codes, kept in the slot itself (one cache
 * miss a lookup, where a byte key costs three: slot, offset, arena).  id1 is the id
 * + 1 (0: empty). */
#define FCOL_INLINE_CELLS 4
typedef struct {
    uint64_t k0, k1;
    int64_t id1;
} fcol_cslot;

typedef struct {
    fcol_cslot *slots;
    uint64_t mask;
    int64_t n;
} fcol_combos;

static int fcol_combos_init(fcol_combos *t) {
    t->slots = (fcol_cslot *)calloc(1024, sizeof(fcol_cslot));
    t->mask = 1023;
    t->n = 0;
    return t->slots == NULL ? -1 : 0;
}

static inline uint64_t fcol_combo_hash(uint64_t k0, uint64_t k1) {
    return fcrf_mum(fcrf_mum(k0 ^ fcrf_hash_k1, k1 ^ fcrf_hash_k2) ^ fcrf_hash_k0, fcrf_hash_k1);
}

/* The slot of (k0, k1), whose fcol_combo_hash is h: its own, or the empty one where
 * it goes. */
static inline fcol_cslot *fcol_combo_slot(const fcol_combos *t, uint64_t k0, uint64_t k1,
                                          uint64_t h) {
    uint64_t s = h & t->mask;
    for (;;) {
        fcol_cslot *c = t->slots + s;
        if (c->id1 == 0 || (c->k0 == k0 && c->k1 == k1))
            return c;
        s = (s + 1) & t->mask;
    }
}

/* Fill the empty slot c with (k0, k1) -> id; 0, or -1 (memory). */
static int fcol_combo_add(fcol_combos *t, fcol_cslot *c, uint64_t k0, uint64_t k1,
                          int64_t id) {
    c->k0 = k0;
    c->k1 = k1;
    c->id1 = id + 1;
    t->n++;
    if ((uint64_t)t->n * 2 <= t->mask + 1)
        return 0;
    const uint64_t size = 2 * (t->mask + 1), mask = size - 1;
    fcol_cslot *slots = (fcol_cslot *)calloc(size, sizeof(fcol_cslot));
    if (slots == NULL)
        return -1;
    fcrf_advise_huge(slots, size * sizeof(fcol_cslot));
    for (uint64_t i = 0; i <= t->mask; i++) {
        const fcol_cslot d = t->slots[i];
        if (d.id1 == 0)
            continue;
        uint64_t j = fcol_combo_hash(d.k0, d.k1) & mask;
        while (slots[j].id1)
            j = (j + 1) & mask;
        slots[j] = d;
    }
    free(t->slots);
    t->slots = slots;
    t->mask = mask;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* The parser                                                                 */
/* ------------------------------------------------------------------------- */

enum {
    FCOL_FULL = 0,       /* max_sentences sentences, or the end of the input (final) */
    FCOL_MORE = 1,       /* the buffer ends inside a line or sentence: read on */
    FCOL_NOMEM = -1,
    FCOL_DECODE = -2,    /* err_line is not valid UTF-8 */
    FCOL_RAGGED = -3     /* err_line has err_fields fields, not n_fields */
};

/* One chunk of sentences: per token, n_fields (start, end) byte ranges into the
 * buffer; per sentence its token count.  n_fields and first_line (the row that set
 * it) belong to the file; lineno and pos say where the next call starts. */
typedef struct {
    int64_t *fields;      /* [n_tokens][n_fields][2] */
    int64_t fields_cap;
    int64_t *seq_len;     /* [n_seq] */
    int64_t seq_cap;
    int64_t n_tokens, n_seq;
    int64_t n_fields;     /* -1 until the file's first row */
    int64_t first_line;
    int64_t lineno;       /* lines before pos */
    int64_t pos;
    const unsigned char *sep;   /* NULL: any whitespace */
    int64_t sep_len;
    int docstart;
    int64_t err_line, err_start, err_end, err_fields;
} fcol_parser;

/* Bytes of the whitespace code point at p (< end), or 0. */
static inline int fcol_space(const unsigned char *p, const unsigned char *end) {
    const unsigned char c = p[0];
    if (c < 0x80)
        return (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) ? 1 : 0;
    if (c == 0xC2)
        return (p + 1 < end && (p[1] == 0x85 || p[1] == 0xA0)) ? 2 : 0;
    if (c == 0xE1)
        return (p + 2 < end && p[1] == 0x9A && p[2] == 0x80) ? 3 : 0;
    if (c == 0xE2 && p + 2 < end) {
        if (p[1] == 0x80)
            return (p[2] <= 0x8A || p[2] == 0xA8 || p[2] == 0xA9 || p[2] == 0xAF) ? 3 : 0;
        return (p[1] == 0x81 && p[2] == 0x9F) ? 3 : 0;
    }
    if (c == 0xE3)
        return (p + 2 < end && p[1] == 0x80 && p[2] == 0x80) ? 3 : 0;
    return 0;
}

/* Whether [p, end) is UTF-8 as Python's strict decoder accepts it (no overlong
 * forms, surrogates or code points above U+10FFFF). */
static int fcol_valid_utf8(const unsigned char *p, const unsigned char *end) {
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        int n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c == 0xE0) { n = 2; lo = 0xA0; }
        else if (c == 0xED) { n = 2; hi = 0x9F; }
        else if (c >= 0xE1 && c <= 0xEF) n = 2;
        else if (c == 0xF0) { n = 3; lo = 0x90; }
        else if (c == 0xF4) { n = 3; hi = 0x8F; }
        else if (c >= 0xF1 && c <= 0xF3) n = 3;
        else return 0;
        if (end - p <= n || p[1] < lo || p[1] > hi)
            return 0;
        for (int k = 2; k <= n; k++)
            if (p[k] < 0x80 || p[k] > 0xBF)
                return 0;
        p += n + 1;
    }
    return 1;
}

static int fcol_end_sentence(fcol_parser *ps, int64_t start_token) {
    if (ps->n_tokens == start_token)
        return 0;
    if (fcol_reserve((void **)&ps->seq_len, &ps->seq_cap, ps->n_seq + 1, sizeof(int64_t)))
        return -1;
    ps->seq_len[ps->n_seq++] = ps->n_tokens - start_token;
    return 0;
}

/* Append one field [a, b) of the current row (k-th); the row is checked when done. */
static inline int fcol_field(fcol_parser *ps, int64_t *scratch_n, int64_t **scratch,
                             int64_t *scratch_cap, int64_t a, int64_t b) {
    if (fcol_reserve((void **)scratch, scratch_cap, 2 * (*scratch_n + 1), sizeof(int64_t)))
        return -1;
    (*scratch)[2 * *scratch_n] = a;
    (*scratch)[2 * *scratch_n + 1] = b;
    (*scratch_n)++;
    (void)ps;
    return 0;
}

/* Parse buf[ps->pos, len) into whole sentences appended to the chunk, until it holds
 * max_sentences or the input ends.  Without `final` the text after the last whole
 * sentence is left for the next call (ps->pos then points at it); with it, the end
 * of the buffer ends the last sentence.  Returns FCOL_FULL, FCOL_MORE or an error
 * (err_* describe it). */
static int fcol_parse(fcol_parser *ps, const unsigned char *buf, int64_t len,
                      int64_t max_sentences, int final) {
    static const char DOCSTART[] = "-DOCSTART-";
    int64_t *row = NULL, row_cap = 0, row_n;
    int64_t pos = ps->pos, lineno = ps->lineno, start_token = ps->n_tokens;
    int status = FCOL_MORE;
    /* Where a call ends when the buffer runs out: after the last line that left no
     * sentence open. */
    int64_t safe_pos = pos, safe_line = lineno, safe_tokens = ps->n_tokens;
    while (pos < len || (final && ps->n_tokens > start_token)) {
        if (pos >= len) {       /* final: the input's last sentence */
            if (fcol_end_sentence(ps, start_token)) { status = FCOL_NOMEM; goto done; }
            start_token = ps->n_tokens;
            safe_pos = pos; safe_line = lineno; safe_tokens = ps->n_tokens;
            break;
        }
        const unsigned char *nl = (const unsigned char *)memchr(buf + pos, '\n',
                                                                (size_t)(len - pos));
        if (nl == NULL && !final)
            break;
        const int64_t next = nl ? (nl - buf) + 1 : len;
        int64_t a = pos, e = nl ? (nl - buf) : len;
        lineno++;
        if (lineno == 1 && e - a >= 3 && buf[a] == 0xEF && buf[a + 1] == 0xBB
                && buf[a + 2] == 0xBF)
            a += 3;
        if (!fcol_valid_utf8(buf + a, buf + e)) {
            ps->err_line = lineno; ps->err_start = pos; ps->err_end = next;
            status = FCOL_DECODE;
            goto done;
        }
        row_n = 0;
        if (ps->sep == NULL) {
            int64_t i = a;
            while (i < e) {
                int w;
                while (i < e && (w = fcol_space(buf + i, buf + e)) > 0)
                    i += w;
                if (i >= e)
                    break;
                const int64_t f = i;
                while (i < e && fcol_space(buf + i, buf + e) == 0)
                    i++;
                if (fcol_field(ps, &row_n, &row, &row_cap, f, i)) { status = FCOL_NOMEM; goto done; }
            }
        } else {
            while (e > a && buf[e - 1] == '\r')
                e--;
            int64_t i = a;
            int w;
            while (i < e && (w = fcol_space(buf + i, buf + e)) > 0)
                i += w;
            if (i < e) {    /* not blank */
                const int64_t m = ps->sep_len;
                int64_t f = a;
                i = a;
                while (i + m <= e) {
                    if (memcmp(buf + i, ps->sep, (size_t)m) == 0) {
                        if (fcol_field(ps, &row_n, &row, &row_cap, f, i)) { status = FCOL_NOMEM; goto done; }
                        i += m;
                        f = i;
                    } else {
                        i++;
                    }
                }
                if (fcol_field(ps, &row_n, &row, &row_cap, f, e)) { status = FCOL_NOMEM; goto done; }
            }
        }
        pos = next;
        const int blank = row_n == 0;
        const int doc = !blank && ps->docstart && row[1] - row[0] == 10
                        && memcmp(buf + row[0], DOCSTART, 10) == 0;
        if (blank || doc) {
            if (ps->n_tokens > start_token) {
                if (fcol_end_sentence(ps, start_token)) { status = FCOL_NOMEM; goto done; }
                start_token = ps->n_tokens;
            }
            safe_pos = pos; safe_line = lineno; safe_tokens = ps->n_tokens;
            if (ps->n_seq >= max_sentences) {
                status = FCOL_FULL;
                goto done;
            }
            continue;
        }
        if (ps->n_fields < 0) {
            ps->n_fields = row_n;
            ps->first_line = lineno;
        } else if (row_n != ps->n_fields) {
            ps->err_line = lineno; ps->err_start = a; ps->err_end = next;
            ps->err_fields = row_n;
            status = FCOL_RAGGED;
            goto done;
        }
        if (fcol_reserve((void **)&ps->fields, &ps->fields_cap,
                         2 * ps->n_fields * (ps->n_tokens + 1), sizeof(int64_t))) {
            status = FCOL_NOMEM;
            goto done;
        }
        memcpy(ps->fields + 2 * ps->n_fields * ps->n_tokens, row,
               (size_t)(2 * row_n) * sizeof(int64_t));
        ps->n_tokens++;
    }
    if (final && pos >= len)
        status = FCOL_FULL;
done:
    free(row);
    if (status == FCOL_FULL || status == FCOL_MORE) {
        /* An open sentence is parsed again, whole, by the next call. */
        ps->n_tokens = safe_tokens;
        ps->pos = safe_pos;
        ps->lineno = safe_line;
    }
    return status;
}

/* ------------------------------------------------------------------------- */
/* Template expansion                                                         */
/* ------------------------------------------------------------------------- */

/* A unigram line: n_cells macros (row, field index in the file) and the n_cells + 1
 * literal pieces around them, UTF-8.  Its attribute at a token is keyed first by the
 * cells' column codes (a few int32, one table per line), so only the first
 * occurrence of each combination builds the string and looks it up by its bytes
 * (two combinations, or two lines, may give the same string: one attribute). */
typedef struct {
    int n_cells;
    const int32_t *rows;
    const int32_t *cols;          /* index into the expander's columns */
    const unsigned char *const *pieces;
    const int64_t *piece_len;
    fcol_combos small;            /* n_cells 0 or 2..FCOL_INLINE_CELLS */
    int32_t *keys;                /* [combination][FCOL_INLINE_CELLS] codes of small's */
    int64_t keys_cap;
    fcol_table combos;            /* more cells: the codes as bytes */
    int32_t *attr;                /* combination -> attribute id (-1: none yet) */
    int64_t attr_n, attr_cap;
    int64_t *seen;                /* combination -> occurrences so far */
    int64_t seen_cap;
} fcol_rule;

#define FCOL_BOUNDARY 8   /* CRF++'s _B-1.._B-8 take codes 0..7, _B+1.._B+8 8..15 */

/* The column codes of rule's cells at token t (position p of a sentence of L). */
static inline void fcol_key(const fcol_rule *rule, int32_t *const *codes, int64_t t,
                            int64_t p, int64_t L, int32_t *key) {
    for (int j = 0; j < rule->n_cells; j++) {
        const int64_t i = p + rule->rows[j];
        key[j] = i < 0 ? (int32_t)(-i - 1)
               : i >= L ? (int32_t)(FCOL_BOUNDARY + i - L)
               : codes[rule->cols[j]][t + rule->rows[j]];
    }
}

/* Feature hashing in the reader: n_buckets 0 numbers the attribute strings
 * themselves; otherwise an attribute is its string's bucket,
 * fcrf_murmur3_32(utf8, seed) % n_buckets (fastcrf/_features/_hashing.py), and
 * `names` numbers the buckets (4-byte keys), so it holds no string. */
typedef struct {
    uint32_t n_buckets;
    uint32_t seed;
} fcol_hashing;

/* The attribute of rule's cells `key`, looked up by its string, or by its bucket
 * (added when new): >= 0, or -1 (memory). */
static int64_t fcol_attribute(const fcol_rule *rule, const int32_t *key,
                              const fcol_table *columns, fcol_table *names,
                              const fcol_hashing *hashing,
                              unsigned char **scratch, int64_t *scratch_cap) {
    int64_t n = 0;
    for (int j = 0; j <= rule->n_cells; j++) {
        const fcol_table *col = j < rule->n_cells ? columns + rule->cols[j] : NULL;
        const int64_t m = col ? col->off[key[j] + 1] - col->off[key[j]] : 0;
        if (fcol_reserve((void **)scratch, scratch_cap, n + rule->piece_len[j] + m + 1, 1))
            return -1;
        memcpy(*scratch + n, rule->pieces[j], (size_t)rule->piece_len[j]);
        n += rule->piece_len[j];
        if (m > 0)
            memcpy(*scratch + n, col->arena + col->off[key[j]], (size_t)m);
        n += m;
    }
    if (hashing->n_buckets) {
        const uint32_t bucket = fcrf_murmur3_32(*scratch, (size_t)n, hashing->seed)
                                % hashing->n_buckets;
        return fcol_table_id(names, (const unsigned char *)&bucket, sizeof(bucket));
    }
    return fcol_table_id(names, *scratch, (size_t)n);
}

/* Tokens looked ahead in phase 1: their slots are fetched meanwhile (a power of 2). */
#define FCOL_AHEAD 16

/* A combination of at most FCOL_INLINE_CELLS codes as the two words of its slot
 * (unused cells 0), and its hash. */
typedef struct {
    uint64_t k[2];
    uint64_t h;
} fcol_skey;

static inline void fcol_small_key(const fcol_rule *rule, int32_t *const *codes, int64_t t,
                                  const int32_t *pos, const int32_t *len, fcol_skey *out) {
    int32_t key[FCOL_INLINE_CELLS] = {0};
    fcol_key(rule, codes, t, pos[t], len[t], key);
    memcpy(out->k, key, sizeof(key));    /* a fixed size: no libc call */
    out->h = fcol_combo_hash(out->k[0], out->k[1]);
}

/* Phase 1 of a rule of 0 or 2..FCOL_INLINE_CELLS cells: each token's combination id
 * (the rule's own numbering, first seen first) into cid.  The key and hash of token
 * t + FCOL_AHEAD are made, and its slot fetched, while token t is resolved; each key
 * is made once (a ring of FCOL_AHEAD keys).  0, or -1 (memory). */
static int fcol_small_combos(fcol_rule *rule, int32_t *const *codes, const int32_t *pos,
                             const int32_t *len, int64_t T, int32_t *cid) {
    fcol_skey ring[FCOL_AHEAD];
    for (int64_t u = 0; u < T && u < FCOL_AHEAD; u++)
        fcol_small_key(rule, codes, u, pos, len, ring + u);
    for (int64_t t = 0; t < T; t++) {
        fcol_skey *r = ring + (t & (FCOL_AHEAD - 1));
        const uint64_t k0 = r->k[0], k1 = r->k[1], h = r->h;
        if (t + FCOL_AHEAD < T) {
            fcol_small_key(rule, codes, t + FCOL_AHEAD, pos, len, r);
            FCRF_PREFETCH(rule->small.slots + (r->h & rule->small.mask));
        }
        fcol_cslot *slot = fcol_combo_slot(&rule->small, k0, k1, h);
        int64_t c = slot->id1 - 1;
        if (c < 0) {
            c = rule->small.n;
            if (fcol_reserve((void **)&rule->keys, &rule->keys_cap,
                             (c + 1) * FCOL_INLINE_CELLS, sizeof(int32_t))
                    || fcol_combo_add(&rule->small, slot, k0, k1, c))
                return -1;
            const uint64_t k[2] = {k0, k1};
            memcpy(rule->keys + c * FCOL_INLINE_CELLS, k, sizeof(k));
        }
        cid[t] = (int32_t)c;
    }
    return 0;
}

/* Phase 1, one rule over a chunk's T tokens: each token's combination id into cid.
 * A single cell's combination is its column code; 0 or 2..FCOL_INLINE_CELLS cells
 * are looked up in the rule's inline table (fcol_small_combos), more by their
 * codes' bytes.  Rules share nothing here, so threads may run different rules at
 * once.  0, or -1 (memory). */
static int fcol_rule_combos(fcol_rule *rule, int32_t *const *codes, const int32_t *pos,
                            const int32_t *len, int64_t T, int32_t *cid) {
    int32_t key[64];
    const int m = rule->n_cells;
    if (m != 1 && m <= FCOL_INLINE_CELLS)
        return fcol_small_combos(rule, codes, pos, len, T, cid);
    for (int64_t t = 0; t < T; t++) {
        fcol_key(rule, codes, t, pos[t], len[t], key);
        int64_t c;
        if (m == 1) {
            c = key[0];
        } else {
            c = fcol_table_id(&rule->combos, (const unsigned char *)key,
                              (size_t)m * sizeof(int32_t));
            if (c < 0)
                return -1;
        }
        cid[t] = (int32_t)c;
    }
    return 0;
}

/* The end of phase 1, one rule: room for every combination found (a new one has no
 * attribute yet, and 0 occurrences); each token's combination is counted and, in
 * cid, replaced by its attribute when it has one, by -1 - c when not (phase 2 makes
 * it).  Done here, rule by rule, the rule's arrays stay in cache for the chunk.
 * 0, or -1 (memory). */
static int fcol_rule_attrs(fcol_rule *rule, const fcol_table *columns, int64_t T,
                           int32_t *cid) {
    const int64_t n = rule->n_cells == 1 ? columns[rule->cols[0]].n
                    : rule->n_cells <= FCOL_INLINE_CELLS ? rule->small.n
                    : rule->combos.n;
    if (fcol_reserve((void **)&rule->attr, &rule->attr_cap, n, sizeof(int32_t))
            || fcol_reserve((void **)&rule->seen, &rule->seen_cap, n, sizeof(int64_t)))
        return -1;
    for (int64_t c = rule->attr_n; c < n; c++) {
        rule->attr[c] = -1;
        rule->seen[c] = 0;
    }
    if (n > rule->attr_n)
        rule->attr_n = n;
    for (int64_t t = 0; t < T; t++) {
        const int32_t c = cid[t], a = rule->attr[c];
        rule->seen[c]++;
        cid[t] = a >= 0 ? a : -1 - c;
    }
    return 0;
}

/* The column codes of combination c of a rule (see fcol_rule_combos). */
static inline const int32_t *fcol_combo_key(const fcol_rule *rule, const int32_t *c) {
    if (rule->n_cells == 1)
        return c;
    if (rule->n_cells <= FCOL_INLINE_CELLS)
        return rule->keys + (int64_t)*c * FCOL_INLINE_CELLS;
    return (const int32_t *)(rule->combos.arena + rule->combos.off[*c]);
}

/* Each token's attribute ids, token-major and in rule order (so new attributes get
 * first-seen ids exactly as the Python path numbers them), from the column codes
 * codes[c][t].  Phase 1 (fcol_rule_combos, fcol_rule_attrs) runs rule by rule, on
 * n_threads OpenMP threads: a rule's tables stay in cache for the whole chunk,
 * where token-major lookups would take turns over all the tables; it leaves the
 * attribute of every combination seen in an earlier chunk.  Phase 2 walks the
 * tokens in order: a combination new in this chunk builds its string and looks it
 * up in `names` (its later tokens find it in rule->attr).  The ids never depend on the
 * thread count.  0, or -1 (memory). */
static int fcol_expand(fcol_rule *rules, int n_rules, int32_t *const *codes,
                       const fcol_table *columns, const int64_t *seq_len, int64_t n_seq,
                       fcol_table *names, const fcol_hashing *hashing, int32_t *out,
                       int n_threads, int32_t **work, int64_t *work_cap) {
    unsigned char *scratch = NULL;
    int64_t scratch_cap = 0, T = 0;
    int status = -1, failed = 0;
    for (int64_t s = 0; s < n_seq; s++)
        T += seq_len[s];
    /* pos [T], len [T] and cid [n_rules][T] in the caller's work buffer, kept from
     * chunk to chunk: fresh pages for each chunk cost the kernel's zeroing. */
    if (fcol_reserve((void **)work, work_cap, (T + 1) * (n_rules + 2), sizeof(int32_t)))
        return -1;
    int32_t *pos = *work, *len = pos + T + 1, *cid = len + T + 1;
    for (int64_t s = 0, t = 0; s < n_seq; s++)
        for (int64_t p = 0; p < seq_len[s]; p++, t++) {
            pos[t] = (int32_t)p;
            len[t] = (int32_t)seq_len[s];
        }
    #pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
    for (int r = 0; r < n_rules; r++)
        if (fcol_rule_combos(rules + r, codes, pos, len, T, cid + (int64_t)r * T)
                || fcol_rule_attrs(rules + r, columns, T, cid + (int64_t)r * T)) {
            #pragma omp atomic write
            failed = 1;
        }
    if (failed)
        goto done;
    for (int64_t t = 0; t < T; t++) {
        for (int r = 0; r < n_rules; r++) {
            int32_t id = cid[(int64_t)r * T + t];
            if (id < 0) {
                fcol_rule *rule = rules + r;
                const int32_t c = -1 - id;
                id = rule->attr[c];
                if (id < 0) {
                    const int64_t a = fcol_attribute(rule, fcol_combo_key(rule, &c),
                                                     columns, names, hashing, &scratch,
                                                     &scratch_cap);
                    if (a < 0)
                        goto done;
                    id = rule->attr[c] = (int32_t)a;
                }
            }
            out[t * n_rules + r] = id;
        }
    }
    status = 0;
done:
    free(scratch);
    return status;
}

/* counts[id] (n_names of them, zeroed here) = the occurrences of attribute id so far:
 * the sum of its combinations' over the rules. */
static void fcol_counts(const fcol_rule *rules, int n_rules, int64_t *counts,
                        int64_t n_names) {
    memset(counts, 0, (size_t)n_names * sizeof(int64_t));
    for (int r = 0; r < n_rules; r++)
        for (int64_t c = 0; c < rules[r].attr_n; c++)
            counts[rules[r].attr[c]] += rules[r].seen[c];
}

/* Each token's code of field `field` in `table` (new values get the next codes). */
static int fcol_intern(const fcol_parser *ps, const unsigned char *buf, int64_t field,
                       fcol_table *table, int32_t *out) {
    const int64_t stride = 2 * ps->n_fields;
    for (int64_t t = 0; t < ps->n_tokens; t++) {
        const int64_t *f = ps->fields + stride * t + 2 * field;
        const int64_t id = fcol_table_id(table, buf + f[0], (size_t)(f[1] - f[0]));
        if (id < 0)
            return -1;
        out[t] = (int32_t)id;
    }
    return 0;
}

#endif
