/* Two interleaved binary range decoders against one: the prototype of a detail-band
   coder with two decoding chains (issue 18, stop 27, benchmarks/results/lossy_speed.md
   "Stop 27, branch band"). Same decision sequence both ways: 2^22 binary decisions,
   each in an adaptive model (lossyband.c's: 16-bit probability, count-based rate) of a
   context made of a slowly changing "activity" class (8) and the previous two bits of
   its chain, as a zero decision's context depends on the decision before it;
   p(1) = pscale * (0.01 + 0.06 class + 0.25 prev1 + 0.1 prev2). (a) one stream;
   (b) blocks of G decisions alternately in two streams with their own models, decoded
   G at a time from each, the two decoders' steps interleaved one by one. Prints
   ns per decision (minimum of 9 decodes), the bytes of both, and the speed-up.

       gcc -O3 -std=gnu99 -fno-strict-aliasing -o /tmp/two_chain benchmarks/two_chain_bench.c
       /tmp/two_chain G PSCALE        # e.g. 4 1.0
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
/* lossyband.c itself: its binary models, RECIP, bit_update, enc_bit and dec_bit */
#include "../codec_core/_native/lossyband.c"
static void enc_start(Encoder *e, uint8_t *out, size_t cap) { memset(e, 0, sizeof *e); e->range = 0xFFFFFFFF; e->cache_size = 1; e->out = out; e->out_cap = cap; }
static size_t enc_finish(Encoder *e) { for (int k = 0; k < 5; k++) enc_shift_low(e); return e->pos; }
static void dec_start(Decoder *d, const uint8_t *in, size_t n) {
    memset(d, 0, sizeof *d); d->in = in; d->in_len = n; d->range = 0xFFFFFFFF;
    for (int k = 0; k < 5; k++) { d->code = (d->code << 8) | (d->pos < n ? in[d->pos] : 0); d->pos++; }
}
#define N (1 << 22)
#define BENCH_NCTX (8 * 4)
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    int G = argc > 1 ? atoi(argv[1]) : 4;
    double pscale = argc > 2 ? atof(argv[2]) : 1.0;
    uint8_t *cls = malloc(N), *bits = malloc(N), *out = malloc(N), *b1 = malloc(N), *b2 = malloc(N), *dec = malloc(N);
    srand(7);
    /* activity class in runs (smooth), p(1) by class and the previous bits */
    int c = 0;
    for (int i = 0; i < N; i++) { if (rand() % 16 == 0) c = rand() % 8; cls[i] = c; }
    int prev1 = 0, prev2 = 0;
    for (int i = 0; i < N; i++) {
        double p = pscale * (0.01 + 0.06 * cls[i] + 0.25 * prev1 + 0.1 * prev2); if (p > 0.95) p = 0.95;
        int b = (rand() / (RAND_MAX + 1.0)) < p;
        bits[i] = b; prev2 = prev1; prev1 = b;
    }
    /* (a) one stream */
    int32_t m1[BENCH_NCTX], ma[BENCH_NCTX], mb[BENCH_NCTX];
    Encoder e; Decoder d, da, db;
    for (int k = 0; k < BENCH_NCTX; k++) m1[k] = 1 << 15;
    enc_start(&e, out, N);
    { int q1 = 0, q2 = 0; for (int i = 0; i < N; i++) { enc_bit(&e, m1 + cls[i] * 4 + q1 * 2 + q2, bits[i]); q2 = q1; q1 = bits[i]; } }
    size_t n1 = enc_finish(&e);
    /* (b) two streams: block k of G decisions goes to stream k % 2; each stream's context from its own previous bits */
    Encoder ea, eb;
    for (int k = 0; k < BENCH_NCTX; k++) ma[k] = mb[k] = 1 << 15;
    enc_start(&ea, b1, N); enc_start(&eb, b2, N);
    { int a1 = 0, a2 = 0, c1 = 0, c2 = 0;
      for (int i = 0; i < N; i++) {
        if ((i / G) & 1) { enc_bit(&eb, mb + cls[i] * 4 + c1 * 2 + c2, bits[i]); c2 = c1; c1 = bits[i]; }
        else { enc_bit(&ea, ma + cls[i] * 4 + a1 * 2 + a2, bits[i]); a2 = a1; a1 = bits[i]; }
      } }
    size_t na = enc_finish(&ea), nb = enc_finish(&eb);
    double best1 = 1e9, best2 = 1e9;
    for (int rep = 0; rep < 9; rep++) {
        for (int k = 0; k < BENCH_NCTX; k++) m1[k] = 1 << 15;
        dec_start(&d, out, n1);
        double t0 = now();
        int q1 = 0, q2 = 0;
        for (int i = 0; i < N; i++) { int b = dec_bit(&d, m1 + cls[i] * 4 + q1 * 2 + q2); dec[i] = b; q2 = q1; q1 = b; }
        double t1 = now() - t0;
        if (memcmp(dec, bits, N)) { printf("one-chain mismatch\n"); return 1; }
        if (t1 < best1) best1 = t1;
        for (int k = 0; k < BENCH_NCTX; k++) ma[k] = mb[k] = 1 << 15;
        dec_start(&da, b1, na); dec_start(&db, b2, nb);
        t0 = now();
        int a1 = 0, a2 = 0, c1 = 0, c2 = 0;
        for (int i = 0; i < N; i += 2 * G) {  /* G from a, then G from b, interleaved one by one */
            for (int k = 0; k < G; k++) {
                int x = dec_bit(&da, ma + cls[i + k] * 4 + a1 * 2 + a2); dec[i + k] = x; a2 = a1; a1 = x;
                int y = dec_bit(&db, mb + cls[i + G + k] * 4 + c1 * 2 + c2); dec[i + G + k] = y; c2 = c1; c1 = y;
            }
        }
        double t2 = now() - t0;
        if (memcmp(dec, bits, N)) { printf("two-chain mismatch\n"); return 1; }
        if (t2 < best2) best2 = t2;
    }
    double ones = 0; for (int i = 0; i < N; i++) ones += bits[i];
    printf("G=%d p1=%.3f: one chain %.2f ns/decision (%zu bytes), two chains %.2f ns/decision (%zu bytes, %+.2f%%): %.2fx\n",
           G, ones / N, 1e9 * best1 / N, n1, 1e9 * best2 / N, na + nb, 100.0 * ((double)(na + nb) / n1 - 1), best1 / best2);
    return 0;
}
