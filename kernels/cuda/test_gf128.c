/* Host check of the CUDA GHASH product (gf128_ct.h), run by test/cipher/gf128-ct.test.ts:
 *   cc -O2 -std=c11 kernels/cuda/test_gf128.c kernels/c/aes_gcm_portable.c -o test_gf128 && ./test_gf128 [n]
 * Compares sn_clmul32 with a bit-by-bit carry-less product, and sn_gf128_mul_ct with the C
 * library's sn_gf128_mul on edge values (0, 1, x^127, all ones, single bits) and n random pairs.
 * Prints one JSON line; exit status 0 only when every product matched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../c/sn_internal.h"
#include "gf128_ct.h"

static uint64_t rs = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }

static uint64_t clmul32_ref(uint32_t x, uint32_t y) {
  uint64_t z = 0;
  for (int i = 0; i < 32; i++)
    if ((y >> i) & 1) z ^= (uint64_t)x << i;
  return z;
}

static void to_bytes(uint64_t h, uint64_t l, uint8_t b[16]) {
  for (int i = 0; i < 8; i++) { b[i] = (uint8_t)(h >> (56 - 8 * i)); b[8 + i] = (uint8_t)(l >> (56 - 8 * i)); }
}

static int check(uint64_t xh, uint64_t xl, uint64_t yh, uint64_t yl) {
  uint8_t x[16], y[16], want[16], got[16];
  uint64_t zh, zl;
  to_bytes(xh, xl, x);
  to_bytes(yh, yl, y);
  sn_gf128_mul(x, y, want);
  sn_gf128_mul_ct(xh, xl, yh, yl, &zh, &zl);
  to_bytes(zh, zl, got);
  return memcmp(want, got, 16) == 0;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  long clmul_bad = 0, edge_bad = 0, rand_bad = 0, edge_n = 0;
  for (long i = 0; i < n; i++) {
    uint32_t x = (uint32_t)rnd(), y = (uint32_t)rnd();
    if (i < 64) { x = 0xffffffffu >> (i & 31); y = i < 32 ? 0xffffffffu : 1u << (i & 31); }
    clmul_bad += sn_clmul32(x, y) != clmul32_ref(x, y);
  }
  const uint64_t one = 0x8000000000000000ull; /* the polynomial 1 in GCM order */
  uint64_t vals[][2] = {{0, 0}, {one, 0}, {0, 1}, {~0ull, ~0ull}, {one, 1}, {0x1, 0}, {0, one}};
  const int nv = (int)(sizeof vals / sizeof vals[0]);
  for (int a = 0; a < nv; a++)
    for (int b = 0; b < nv; b++) { edge_n++; edge_bad += !check(vals[a][0], vals[a][1], vals[b][0], vals[b][1]); }
  for (int i = 0; i < 128; i++)
    for (int j = 0; j < 128; j += 7) {
      uint64_t xh = i < 64 ? one >> i : 0, xl = i < 64 ? 0 : one >> (i - 64);
      uint64_t yh = j < 64 ? one >> j : 0, yl = j < 64 ? 0 : one >> (j - 64);
      edge_n++;
      edge_bad += !check(xh, xl, yh, yl);
    }
  for (long i = 0; i < n; i++) {
    uint64_t a = rnd(), b = rnd(), c = rnd(), d = rnd();
    rand_bad += !check(a, b, c, d);
  }
  int pass = clmul_bad == 0 && edge_bad == 0 && rand_bad == 0;
  printf("{\"gf128_ct\":\"%s\",\"clmul32_checked\":%ld,\"clmul32_bad\":%ld,\"edge_checked\":%ld,\"edge_bad\":%ld,"
         "\"random_checked\":%ld,\"random_bad\":%ld}\n",
         pass ? "pass" : "fail", n, clmul_bad, edge_n, edge_bad, n, rand_bad);
  return pass ? 0 : 1;
}
