/* Internal interface between the int8 GEMM driver (gemm.c) and its kernels (gemm_*.c).
 *
 * The driver splits C into row chunks and 64-channel panels of the packed weights (layout in
 * include/octet/int8.h) and K into blocks of OCT__I8_KCG groups of 4; a kernel computes one
 * tile: up to `mr` rows of C against one panel over one K block. Kernels only differ in speed:
 * all compute exact int32 sums in the same k order.
 */
#ifndef OCTET_INT8_GEMM_INTERNAL_H
#define OCTET_INT8_GEMM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "octet/status.h"

#define OCT__I8_BLOCK 16                           /* output channels per block */
#define OCT__I8_NB 4                               /* blocks per panel */
#define OCT__I8_PANEL (OCT__I8_NB * OCT__I8_BLOCK) /* output channels per panel */
#define OCT__I8_KCG 1024                           /* k groups (of 4) per K block */

/* c[i][j] (+)= sum over k in [4 g0, min(4 g1, K)) of a[i][k] * W[j][k] for i < mr, j < ncols.
 * a points at the tile's first row (row stride lda = K), panel at the panel's first group, nb
 * is the number of 16-channel blocks in the panel (ncols > 16 (nb - 1)), c at the tile's first
 * output (row stride ldc). accumulate adds to c instead of overwriting it (K blocks after the
 * first). Never reads a beyond row i's K bytes. */
typedef void oct__i8_tile_fn(const uint8_t *a, int lda, int mr, const int8_t *panel, int nb, int g0,
                             int g1, int K, int32_t *c, int ldc, int ncols, bool accumulate);

oct__i8_tile_fn oct__i8_tile_portable; /* mr <= 4 */
#if defined(__x86_64__) || defined(__i386__)
oct__i8_tile_fn oct__i8_tile_avx2;       /* mr <= 4 */
oct__i8_tile_fn oct__i8_tile_avx512vnni; /* mr <= 6 */
#endif

#endif
