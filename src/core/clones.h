/* Run-time dispatch for the hot float and integer loops written in plain C: GCC compiles a
 * function marked OCT_CLONES twice more, for AVX-512F and AVX2, and picks the widest version the
 * CPU has (cpuid) when the program loads. The clones compute the baseline's bits exactly: ISO C
 * mode (-std=c11) keeps floating-point contraction (FMA) off, the code fixes the order of every
 * operation (explicit lanes for sums), and IEEE operations give the same results at any vector
 * width. Other
 * compilers, and `meson setup -Dclones=false` (OCT_NO_CLONES), get the portable build only;
 * tests/same_bits.sh checks that both builds write the same bytes. */
#ifndef OCTET_CORE_CLONES_H
#define OCTET_CORE_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(OCT_NO_CLONES)
#define OCT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OCT_CLONES
#endif

#endif
