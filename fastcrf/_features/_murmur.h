/* MurmurHash3_x86_32 (Austin Appleby's public-domain reference, SMHasher): the
 * 32-bit hash scikit-learn's FeatureHasher uses, so a feature-hashed fastcrf model
 * maps a name to the bucket that hash gives on every platform and in every process
 * (CPython's str hash is salted per process).  Blocks are read byte by byte as
 * little-endian words, so big-endian machines give the same value as the
 * reference on x86. */
#ifndef FCRF_MURMUR_H
#define FCRF_MURMUR_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t fcrf_rotl32(uint32_t x, int r) {
    return (x << r) | (x >> (32 - r));
}

static inline uint32_t fcrf_murmur3_32(const unsigned char *data, size_t len,
                                       uint32_t seed) {
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    const size_t nblocks = len / 4;
    uint32_t h1 = seed, k1;
    size_t i;
    for (i = 0; i < nblocks; i++) {
        const unsigned char *b = data + 4 * i;
        k1 = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16)
             | ((uint32_t)b[3] << 24);
        k1 *= c1;
        k1 = fcrf_rotl32(k1, 15);
        k1 *= c2;
        h1 ^= k1;
        h1 = fcrf_rotl32(h1, 13);
        h1 = h1 * 5 + 0xe6546b64u;
    }
    const unsigned char *tail = data + 4 * nblocks;
    k1 = 0;
    switch (len & 3) {
    case 3:
        k1 ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        k1 ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        k1 ^= (uint32_t)tail[0];
        k1 *= c1;
        k1 = fcrf_rotl32(k1, 15);
        k1 *= c2;
        h1 ^= k1;
    }
    h1 ^= (uint32_t)len;
    /* fmix32: every input bit reaches every output bit. */
    h1 ^= h1 >> 16;
    h1 *= 0x85ebca6bu;
    h1 ^= h1 >> 13;
    h1 *= 0xc2b2ae35u;
    h1 ^= h1 >> 16;
    return h1;
}

#endif
