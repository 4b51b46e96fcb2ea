/* Lock-free hand-off between the SGD trainer's threads (fastcrf/_kernels/_sgd_engine.pyx, sgd_epoch).
 *
 * One thread (the master) runs the epoch; the others only help with the work items
 * of each mini-batch.  The master publishes a generation of items as a claim word
 *     [generation : 32 bits][end : 16 bits][next : 16 bits]
 * and every thread, the master included, takes items by compare-and-swap on it.
 * The master never waits for a helper that has not claimed anything, so a helper
 * that the OS has descheduled (a loaded machine) costs nothing but its share of the
 * work; an OpenMP barrier per mini-batch would stall the whole epoch on it instead
 * (measured: a 0.3 s epoch took 19 s while another process held one of two cores).
 * Which thread computes a sequence does not change the result: every sequence writes
 * only its own output slots.
 */
#ifndef FASTCRF_SYNC_H
#define FASTCRF_SYNC_H

#include <stdint.h>

#if defined(_MSC_VER)
#  include <windows.h>
#  include <intrin.h>
static inline int64_t fcrf_sync_load(volatile int64_t* p)
{
    return _InterlockedCompareExchange64((volatile long long*) p, 0, 0);
}
static inline void fcrf_sync_store(volatile int64_t* p, int64_t v)
{
    _InterlockedExchange64((volatile long long*) p, v);
}
static inline int fcrf_sync_cas(volatile int64_t* p, int64_t expected, int64_t desired)
{
    return _InterlockedCompareExchange64((volatile long long*) p, desired, expected)
           == expected;
}
static inline void fcrf_sync_add(volatile int64_t* p, int64_t v)
{
    _InterlockedExchangeAdd64((volatile long long*) p, v);
}
static inline void fcrf_sync_pause(void) { YieldProcessor(); }
static inline void fcrf_sync_yield(void) { SwitchToThread(); }

#else
#  include <sched.h>
static inline int64_t fcrf_sync_load(volatile int64_t* p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void fcrf_sync_store(volatile int64_t* p, int64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline int fcrf_sync_cas(volatile int64_t* p, int64_t expected, int64_t desired)
{
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}
static inline void fcrf_sync_add(volatile int64_t* p, int64_t v)
{
    __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
}
static inline void fcrf_sync_pause(void)
{
#  if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#  endif
}
static inline void fcrf_sync_yield(void) { sched_yield(); }

#endif

/* Pauses before a waiting thread starts yielding its core. */
#define FCRF_SPINS 4000

/* A helper's wait for the next generation: spin for about the length of a
 * mini-batch, then give the core away at every check.  (On a busy machine two
 * threads can be slower than one whatever the waiting policy; fastcrf._sgd then
 * runs the epoch on one thread, see _ThreadChoice.) */
static inline void fcrf_sync_wait(int64_t* spins)
{
    if (++*spins < FCRF_SPINS)
        fcrf_sync_pause();
    else
        fcrf_sync_yield();
}

/* The claim word of generation gen for a batch of n (< 65536) items, none taken:
 * [generation : 32 bits][end : 16 bits][next : 16 bits], the items left being
 * next .. end - 1. */
static inline int64_t fcrf_claim_word(int64_t gen, int64_t n)
{
    return (gen << 32) | (n << 16);
}

/* Take an item of generation gen: its index, or -1 when the batch is all taken or
 * the master has moved on to another generation.  The master takes items from the
 * front, helpers from the back, so that with two items (the weight parts of
 * fastcrf/_kernels/_sgd_engine.pyx) each thread gets the same one every time unless the other
 * is late: a part's weight rows then stay in one core's cache.  (Both claiming
 * from the front, the helper won the race for the first part of a quarter of the
 * steps on a 2-vCPU Xeon, and moving the rows cost the second core's whole gain.) */
static inline int64_t fcrf_claim(volatile int64_t* word, int64_t gen, int from_back)
{
    for (;;) {
        const int64_t c = fcrf_sync_load(word);
        const int64_t end = (c >> 16) & 0xffff, next = c & 0xffff;
        if ((c >> 32) != gen || next >= end)
            return -1;
        if (from_back) {
            if (fcrf_sync_cas(word, c, c - ((int64_t) 1 << 16)))
                return end - 1;
        } else if (fcrf_sync_cas(word, c, c + 1)) {
            return next;
        }
    }
}

#endif
