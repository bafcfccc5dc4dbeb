/* x86-64 AES-GCM primitives: level 1 = AES-NI + PCLMULQDQ (128-bit), level 2 = VAES +
 * VPCLMULQDQ on 512-bit vectors (AVX-512F/BW/DQ/VL). Selected at run time by CPUID; the whole
 * file compiles with any GCC/Clang that knows the target attributes. GHASH follows Intel's
 * "Carry-less multiplication and its usage for computing the GCM mode" (byte-reflected operands,
 * shift-left-by-one, shift-XOR reduction), with one reduction per 4 or 16 aggregated blocks. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>

#include "sn_internal.h"

#define T_AESNI __attribute__((target("aes,pclmul,sse2,ssse3,sse4.1")))
#define T_VAES                                                                                   \
  __attribute__((target("aes,pclmul,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512bw,avx512dq,"     \
                        "avx512vl,vaes,vpclmulqdq")))

int sn_cpu_has_aesni(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") &&
         __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1");
}

int sn_cpu_has_vaes(void) {
  __builtin_cpu_init();
  return sn_cpu_has_aesni() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vaes") &&
         __builtin_cpu_supports("vpclmulqdq");
}

/* ---------------------------------------------------------------- level 1: AES-NI, PCLMUL */

T_AESNI static inline __m128i bswap_mask(void) {
  return _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
}
/* Moves the native u32 in dword 3 to big-endian bytes 12..15, zeroing bytes 0..11. */
T_AESNI static inline __m128i ctr_mask(void) {
  return _mm_setr_epi8(-128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, -128, 15,
                       14, 13, 12);
}

T_AESNI static inline __m128i aes_block(const __m128i *k, __m128i x) {
  x = _mm_xor_si128(x, k[0]);
  for (int r = 1; r < SN_AES256_ROUNDS; r++) x = _mm_aesenc_si128(x, k[r]);
  return _mm_aesenclast_si128(x, k[SN_AES256_ROUNDS]);
}

T_AESNI static void ctr_tail(const __m128i *k, __m128i base, __m128i cv, const __m128i one,
                             const uint8_t *in, uint8_t *out, size_t len) {
  const __m128i m = ctr_mask();
  while (len >= 16) {
    __m128i x = aes_block(k, _mm_or_si128(base, _mm_shuffle_epi8(cv, m)));
    _mm_storeu_si128((__m128i *)out, _mm_xor_si128(x, _mm_loadu_si128((const __m128i *)in)));
    cv = _mm_add_epi32(cv, one);
    in += 16; out += 16; len -= 16;
  }
  if (len > 0) {
    uint8_t buf[16];
    _mm_storeu_si128((__m128i *)buf, aes_block(k, _mm_or_si128(base, _mm_shuffle_epi8(cv, m))));
    for (size_t i = 0; i < len; i++) out[i] = (uint8_t)(in[i] ^ buf[i]);
  }
}

T_AESNI static __m128i load_prefix(const uint8_t prefix[12]) {
  uint8_t b[16] = {0};
  memcpy(b, prefix, 12);
  return _mm_loadu_si128((const __m128i *)b);
}

T_AESNI static void ctr_xor_aesni(const sn_aes256 *ks, const uint8_t prefix[12], uint32_t ctr,
                                  const uint8_t *in, uint8_t *out, size_t len) {
  __m128i k[SN_AES256_ROUNDS + 1];
  for (int i = 0; i <= SN_AES256_ROUNDS; i++) k[i] = _mm_loadu_si128((const __m128i *)(ks->rk + 16 * i));
  const __m128i base = load_prefix(prefix), m = ctr_mask();
  const __m128i one = _mm_setr_epi32(0, 0, 0, 1);
  __m128i cv = _mm_setr_epi32(0, 0, 0, (int)ctr);
  while (len >= 128) {
    __m128i x[8];
    for (int j = 0; j < 8; j++) {
      x[j] = _mm_xor_si128(_mm_or_si128(base, _mm_shuffle_epi8(cv, m)), k[0]);
      cv = _mm_add_epi32(cv, one);
    }
    for (int r = 1; r < SN_AES256_ROUNDS; r++)
      for (int j = 0; j < 8; j++) x[j] = _mm_aesenc_si128(x[j], k[r]);
    for (int j = 0; j < 8; j++) {
      x[j] = _mm_aesenclast_si128(x[j], k[SN_AES256_ROUNDS]);
      _mm_storeu_si128((__m128i *)out + j,
                       _mm_xor_si128(x[j], _mm_loadu_si128((const __m128i *)in + j)));
    }
    in += 128; out += 128; len -= 128;
  }
  ctr_tail(k, base, cv, one, in, out, len);
}

T_AESNI static inline void clmul_acc(__m128i a, __m128i b, __m128i *lo, __m128i *mid, __m128i *hi) {
  *lo = _mm_xor_si128(*lo, _mm_clmulepi64_si128(a, b, 0x00));
  *hi = _mm_xor_si128(*hi, _mm_clmulepi64_si128(a, b, 0x11));
  *mid = _mm_xor_si128(*mid, _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x10),
                                           _mm_clmulepi64_si128(a, b, 0x01)));
}

/* 256-bit product (lo, mid, hi) of byte-reflected operands -> reflected product mod P. */
T_AESNI static inline __m128i gf_reduce(__m128i lo, __m128i mid, __m128i hi) {
  __m128i t3 = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
  __m128i t6 = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
  __m128i t7 = _mm_srli_epi32(t3, 31);
  __m128i t8 = _mm_srli_epi32(t6, 31);
  t3 = _mm_slli_epi32(t3, 1);
  t6 = _mm_slli_epi32(t6, 1);
  __m128i t9 = _mm_srli_si128(t7, 12);
  t8 = _mm_slli_si128(t8, 4);
  t7 = _mm_slli_si128(t7, 4);
  t3 = _mm_or_si128(t3, t7);
  t6 = _mm_or_si128(t6, t8);
  t6 = _mm_or_si128(t6, t9);
  t7 = _mm_slli_epi32(t3, 31);
  t8 = _mm_slli_epi32(t3, 30);
  t9 = _mm_slli_epi32(t3, 25);
  t7 = _mm_xor_si128(t7, t8);
  t7 = _mm_xor_si128(t7, t9);
  t8 = _mm_srli_si128(t7, 4);
  t7 = _mm_slli_si128(t7, 12);
  t3 = _mm_xor_si128(t3, t7);
  __m128i t2 = _mm_srli_epi32(t3, 1);
  __m128i t4 = _mm_srli_epi32(t3, 2);
  __m128i t5 = _mm_srli_epi32(t3, 7);
  t2 = _mm_xor_si128(t2, t4);
  t2 = _mm_xor_si128(t2, t5);
  t2 = _mm_xor_si128(t2, t8);
  t3 = _mm_xor_si128(t3, t2);
  return _mm_xor_si128(t6, t3);
}

T_AESNI static inline __m128i gf_mul1(__m128i a, __m128i b) {
  __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
  clmul_acc(a, b, &lo, &mid, &hi);
  return gf_reduce(lo, mid, hi);
}

T_AESNI static void ghash_pclmul(const sn_ghash_key *hk, uint8_t y8[16], const uint8_t *p, size_t n) {
  const __m128i bs = bswap_mask();
  __m128i y = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)y8), bs);
  const __m128i h1 = _mm_loadu_si128((const __m128i *)hk->hrev[0]);
  const __m128i h2 = _mm_loadu_si128((const __m128i *)hk->hrev[1]);
  const __m128i h3 = _mm_loadu_si128((const __m128i *)hk->hrev[2]);
  const __m128i h4 = _mm_loadu_si128((const __m128i *)hk->hrev[3]);
  while (n >= 4) {
    __m128i x0 = _mm_xor_si128(y, _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bs));
    __m128i x1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p + 1), bs);
    __m128i x2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p + 2), bs);
    __m128i x3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p + 3), bs);
    __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
    clmul_acc(x0, h4, &lo, &mid, &hi);
    clmul_acc(x1, h3, &lo, &mid, &hi);
    clmul_acc(x2, h2, &lo, &mid, &hi);
    clmul_acc(x3, h1, &lo, &mid, &hi);
    y = gf_reduce(lo, mid, hi);
    p += 64; n -= 4;
  }
  while (n > 0) {
    y = gf_mul1(_mm_xor_si128(y, _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bs)), h1);
    p += 16; n--;
  }
  _mm_storeu_si128((__m128i *)y8, _mm_shuffle_epi8(y, bs));
}

const sn_isa_ops sn_ops_aesni = {"aesni+pclmul", ctr_xor_aesni, ghash_pclmul, NULL};

/* ---------------------------------------------------------------- level 2: VAES, VPCLMULQDQ */

T_VAES static inline __m512i aes4(const __m512i *k, __m512i x) {
  x = _mm512_xor_si512(x, k[0]);
  for (int r = 1; r < SN_AES256_ROUNDS; r++) x = _mm512_aesenc_epi128(x, k[r]);
  return _mm512_aesenclast_epi128(x, k[SN_AES256_ROUNDS]);
}

T_VAES static void ctr_xor_vaes(const sn_aes256 *ks, const uint8_t prefix[12], uint32_t ctr,
                                const uint8_t *in, uint8_t *out, size_t len) {
  __m128i k1[SN_AES256_ROUNDS + 1];
  __m512i k[SN_AES256_ROUNDS + 1];
  for (int i = 0; i <= SN_AES256_ROUNDS; i++) {
    k1[i] = _mm_loadu_si128((const __m128i *)(ks->rk + 16 * i));
    k[i] = _mm512_broadcast_i32x4(k1[i]);
  }
  const __m128i base1 = load_prefix(prefix);
  const __m512i base = _mm512_broadcast_i32x4(base1);
  const __m512i m = _mm512_broadcast_i32x4(ctr_mask());
  const __m512i four = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
  __m512i c0 = _mm512_set_epi32((int)(ctr + 3), 0, 0, 0, (int)(ctr + 2), 0, 0, 0, (int)(ctr + 1),
                                0, 0, 0, (int)ctr, 0, 0, 0);
  while (len >= 256) {
    __m512i c1 = _mm512_add_epi32(c0, four), c2 = _mm512_add_epi32(c1, four),
            c3 = _mm512_add_epi32(c2, four);
    __m512i x0 = _mm512_xor_si512(_mm512_or_si512(base, _mm512_shuffle_epi8(c0, m)), k[0]);
    __m512i x1 = _mm512_xor_si512(_mm512_or_si512(base, _mm512_shuffle_epi8(c1, m)), k[0]);
    __m512i x2 = _mm512_xor_si512(_mm512_or_si512(base, _mm512_shuffle_epi8(c2, m)), k[0]);
    __m512i x3 = _mm512_xor_si512(_mm512_or_si512(base, _mm512_shuffle_epi8(c3, m)), k[0]);
    c0 = _mm512_add_epi32(c3, four);
    for (int r = 1; r < SN_AES256_ROUNDS; r++) {
      x0 = _mm512_aesenc_epi128(x0, k[r]);
      x1 = _mm512_aesenc_epi128(x1, k[r]);
      x2 = _mm512_aesenc_epi128(x2, k[r]);
      x3 = _mm512_aesenc_epi128(x3, k[r]);
    }
    x0 = _mm512_aesenclast_epi128(x0, k[SN_AES256_ROUNDS]);
    x1 = _mm512_aesenclast_epi128(x1, k[SN_AES256_ROUNDS]);
    x2 = _mm512_aesenclast_epi128(x2, k[SN_AES256_ROUNDS]);
    x3 = _mm512_aesenclast_epi128(x3, k[SN_AES256_ROUNDS]);
    _mm512_storeu_si512(out, _mm512_xor_si512(x0, _mm512_loadu_si512(in)));
    _mm512_storeu_si512(out + 64, _mm512_xor_si512(x1, _mm512_loadu_si512(in + 64)));
    _mm512_storeu_si512(out + 128, _mm512_xor_si512(x2, _mm512_loadu_si512(in + 128)));
    _mm512_storeu_si512(out + 192, _mm512_xor_si512(x3, _mm512_loadu_si512(in + 192)));
    in += 256; out += 256; len -= 256;
  }
  while (len >= 64) {
    __m512i x = aes4(k, _mm512_or_si512(base, _mm512_shuffle_epi8(c0, m)));
    _mm512_storeu_si512(out, _mm512_xor_si512(x, _mm512_loadu_si512(in)));
    c0 = _mm512_add_epi32(c0, four);
    in += 64; out += 64; len -= 64;
  }
  if (len > 0) {
    __m128i cv = _mm512_castsi512_si128(c0);
    ctr_tail(k1, base1, cv, _mm_setr_epi32(0, 0, 0, 1), in, out, len);
  }
}

T_VAES static inline __m128i fold4(__m512i v) {
  __m256i a = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  return _mm_xor_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
}

T_VAES static inline void clmul_acc4(__m512i a, __m512i b, __m512i *lo, __m512i *mid, __m512i *hi) {
  *lo = _mm512_xor_si512(*lo, _mm512_clmulepi64_epi128(a, b, 0x00));
  *hi = _mm512_xor_si512(*hi, _mm512_clmulepi64_epi128(a, b, 0x11));
  *mid = _mm512_xor_si512(*mid, _mm512_xor_si512(_mm512_clmulepi64_epi128(a, b, 0x10),
                                                 _mm512_clmulepi64_epi128(a, b, 0x01)));
}

T_VAES static void ghash_vpclmul(const sn_ghash_key *hk, uint8_t y8[16], const uint8_t *p, size_t n) {
  const __m128i bs1 = bswap_mask();
  const __m512i bs = _mm512_broadcast_i32x4(bs1);
  __m128i y = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)y8), bs1);
  const __m512i K0 = _mm512_loadu_si512(hk->hdesc[0]);  /* H^16..H^13 */
  const __m512i K1 = _mm512_loadu_si512(hk->hdesc[4]);  /* H^12..H^9 */
  const __m512i K2 = _mm512_loadu_si512(hk->hdesc[8]);  /* H^8..H^5 */
  const __m512i K3 = _mm512_loadu_si512(hk->hdesc[12]); /* H^4..H^1 */
  while (n >= 16) {
    __m512i d0 = _mm512_shuffle_epi8(_mm512_loadu_si512(p), bs);
    __m512i d1 = _mm512_shuffle_epi8(_mm512_loadu_si512(p + 64), bs);
    __m512i d2 = _mm512_shuffle_epi8(_mm512_loadu_si512(p + 128), bs);
    __m512i d3 = _mm512_shuffle_epi8(_mm512_loadu_si512(p + 192), bs);
    d0 = _mm512_xor_si512(d0, _mm512_zextsi128_si512(y));
    __m512i lo = _mm512_setzero_si512(), mid = lo, hi = lo;
    clmul_acc4(d0, K0, &lo, &mid, &hi);
    clmul_acc4(d1, K1, &lo, &mid, &hi);
    clmul_acc4(d2, K2, &lo, &mid, &hi);
    clmul_acc4(d3, K3, &lo, &mid, &hi);
    y = gf_reduce(fold4(lo), fold4(mid), fold4(hi));
    p += 256; n -= 16;
  }
  while (n >= 4) {
    __m512i d = _mm512_shuffle_epi8(_mm512_loadu_si512(p), bs);
    d = _mm512_xor_si512(d, _mm512_zextsi128_si512(y));
    __m512i lo = _mm512_setzero_si512(), mid = lo, hi = lo;
    clmul_acc4(d, K3, &lo, &mid, &hi);
    y = gf_reduce(fold4(lo), fold4(mid), fold4(hi));
    p += 64; n -= 4;
  }
  const __m128i h1 = _mm_loadu_si128((const __m128i *)hk->hrev[0]);
  while (n > 0) {
    y = gf_mul1(_mm_xor_si128(y, _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bs1)), h1);
    p += 16; n--;
  }
  _mm_storeu_si128((__m128i *)y8, _mm_shuffle_epi8(y, bs1));
}


/* Fused bulk pass over whole 256-byte groups: GHASH of the ciphertext interleaved with the CTR
 * keystream, so the AES and CLMUL units work at the same time. decrypt != 0: data is ciphertext
 * (hashed before XOR); else plaintext (hashed after XOR). Returns the bytes processed. */
T_VAES static size_t gcm_bulk_vaes(const sn_aes256 *ks, const sn_ghash_key *hk, const uint8_t prefix[12],
                                   uint32_t ctr, uint8_t *data, size_t len, uint8_t y8[16], int decrypt) {
  size_t groups = len / 256;
  if (groups == 0) return 0;
  __m512i k[SN_AES256_ROUNDS + 1];
  for (int i = 0; i <= SN_AES256_ROUNDS; i++)
    k[i] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(ks->rk + 16 * i)));
  const __m512i base = _mm512_broadcast_i32x4(load_prefix(prefix));
  const __m512i m = _mm512_broadcast_i32x4(ctr_mask());
  const __m512i four = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
  __m512i c0 = _mm512_set_epi32((int)(ctr + 3), 0, 0, 0, (int)(ctr + 2), 0, 0, 0, (int)(ctr + 1),
                                0, 0, 0, (int)ctr, 0, 0, 0);
  const __m128i bs1 = bswap_mask();
  const __m512i bs = _mm512_broadcast_i32x4(bs1);
  __m128i y = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)y8), bs1);
  const __m512i K0 = _mm512_loadu_si512(hk->hdesc[0]);
  const __m512i K1 = _mm512_loadu_si512(hk->hdesc[4]);
  const __m512i K2 = _mm512_loadu_si512(hk->hdesc[8]);
  const __m512i K3 = _mm512_loadu_si512(hk->hdesc[12]);
  uint8_t *p = data;
  for (size_t g = 0; g < groups; g++, p += 256) {
    __m512i c1 = _mm512_add_epi32(c0, four), c2 = _mm512_add_epi32(c1, four),
            c3 = _mm512_add_epi32(c2, four);
    __m512i x0 = _mm512_xor_si512(_mm512_or_si512(base, _mm512_shuffle_epi8(c0, m)), k[0]);
    __m512i x1 = _mm512_xor_si512(_mm512_or_si512(base, _mm512_shuffle_epi8(c1, m)), k[0]);
    __m512i x2 = _mm512_xor_si512(_mm512_or_si512(base, _mm512_shuffle_epi8(c2, m)), k[0]);
    __m512i x3 = _mm512_xor_si512(_mm512_or_si512(base, _mm512_shuffle_epi8(c3, m)), k[0]);
    c0 = _mm512_add_epi32(c3, four);
    __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64),
            v2 = _mm512_loadu_si512(p + 128), v3 = _mm512_loadu_si512(p + 192);
    if (decrypt) {
      __m512i d0 = _mm512_xor_si512(_mm512_shuffle_epi8(v0, bs), _mm512_zextsi128_si512(y));
      __m512i lo = _mm512_setzero_si512(), mid = lo, hi = lo;
      clmul_acc4(d0, K0, &lo, &mid, &hi);
      clmul_acc4(_mm512_shuffle_epi8(v1, bs), K1, &lo, &mid, &hi);
      clmul_acc4(_mm512_shuffle_epi8(v2, bs), K2, &lo, &mid, &hi);
      clmul_acc4(_mm512_shuffle_epi8(v3, bs), K3, &lo, &mid, &hi);
      for (int r = 1; r < SN_AES256_ROUNDS; r++) {
        x0 = _mm512_aesenc_epi128(x0, k[r]);
        x1 = _mm512_aesenc_epi128(x1, k[r]);
        x2 = _mm512_aesenc_epi128(x2, k[r]);
        x3 = _mm512_aesenc_epi128(x3, k[r]);
      }
      y = gf_reduce(fold4(lo), fold4(mid), fold4(hi));
      _mm512_storeu_si512(p, _mm512_xor_si512(v0, _mm512_aesenclast_epi128(x0, k[SN_AES256_ROUNDS])));
      _mm512_storeu_si512(p + 64, _mm512_xor_si512(v1, _mm512_aesenclast_epi128(x1, k[SN_AES256_ROUNDS])));
      _mm512_storeu_si512(p + 128, _mm512_xor_si512(v2, _mm512_aesenclast_epi128(x2, k[SN_AES256_ROUNDS])));
      _mm512_storeu_si512(p + 192, _mm512_xor_si512(v3, _mm512_aesenclast_epi128(x3, k[SN_AES256_ROUNDS])));
    } else {
      for (int r = 1; r < SN_AES256_ROUNDS; r++) {
        x0 = _mm512_aesenc_epi128(x0, k[r]);
        x1 = _mm512_aesenc_epi128(x1, k[r]);
        x2 = _mm512_aesenc_epi128(x2, k[r]);
        x3 = _mm512_aesenc_epi128(x3, k[r]);
      }
      v0 = _mm512_xor_si512(v0, _mm512_aesenclast_epi128(x0, k[SN_AES256_ROUNDS]));
      v1 = _mm512_xor_si512(v1, _mm512_aesenclast_epi128(x1, k[SN_AES256_ROUNDS]));
      v2 = _mm512_xor_si512(v2, _mm512_aesenclast_epi128(x2, k[SN_AES256_ROUNDS]));
      v3 = _mm512_xor_si512(v3, _mm512_aesenclast_epi128(x3, k[SN_AES256_ROUNDS]));
      _mm512_storeu_si512(p, v0);
      _mm512_storeu_si512(p + 64, v1);
      _mm512_storeu_si512(p + 128, v2);
      _mm512_storeu_si512(p + 192, v3);
      __m512i d0 = _mm512_xor_si512(_mm512_shuffle_epi8(v0, bs), _mm512_zextsi128_si512(y));
      __m512i lo = _mm512_setzero_si512(), mid = lo, hi = lo;
      clmul_acc4(d0, K0, &lo, &mid, &hi);
      clmul_acc4(_mm512_shuffle_epi8(v1, bs), K1, &lo, &mid, &hi);
      clmul_acc4(_mm512_shuffle_epi8(v2, bs), K2, &lo, &mid, &hi);
      clmul_acc4(_mm512_shuffle_epi8(v3, bs), K3, &lo, &mid, &hi);
      y = gf_reduce(fold4(lo), fold4(mid), fold4(hi));
    }
  }
  _mm_storeu_si128((__m128i *)y8, _mm_shuffle_epi8(y, bs1));
  return groups * 256;
}

const sn_isa_ops sn_ops_vaes = {"vaes512+vpclmulqdq", ctr_xor_vaes, ghash_vpclmul, gcm_bulk_vaes};

#endif
