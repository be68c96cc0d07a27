/* The vector build every kernel made by HLC_VECTOR_BUILDS (kernels.h) runs: AVX2 where
 * the processor has it, else the baseline (SSE2), chosen once when the module loads; the
 * tests ask for each in turn (the module's vector_isa). */
#include "kernels.h"

int hlc_isa_in_use = -1;

int hlc_isa_choose(int want) {
    int have = HLC_ISA_BASE;
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) have = HLC_ISA_AVX2;
#endif
    if (want >= 0) hlc_isa_in_use = want < have ? want : have;
    else if (hlc_isa_in_use < 0) hlc_isa_in_use = have;
    return hlc_isa_in_use;
}
