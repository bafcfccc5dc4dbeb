/* x86-64 AES-GCM primitives: level 1 = AES-NI + PCLMULQDQ (128-bit), level 2 = VAES +
 * VPCLMULQDQ on 256-bit vectors (AVX2), level 3 = VAES + VPCLMULQDQ on 512-bit vectors
 * (AVX-512F/BW/DQ/VL). Selected at run time by CPUID + XGETBV (OS-enabled YMM / ZMM state);
 * the whole file compiles with any GCC/Clang that knows the target attributes.
 *
 * GHASH works on byte-reflected blocks and key powers stored "times x" (hx, see sn_internal.h),
 * as in BoringSSL's aes-gcm-avx10 / the Linux kernel's x86 GCM: a 256-bit carry-less product
 * (Karatsuba: lo, hi, (a_lo ^ a_hi)(b_lo ^ b_hi)) of a block and a key power reduces mod the
 * GCM polynomial with two CLMULs by x^63 + x^62 + x^57, and no shift. Each level aggregates n
 * blocks against H^n..H^1 with one reduction (n = 8 AES-NI, 16 VAES-256, 32 VAES-512; the
 * row's partial last group likewise), fused with the CTR pass over the same blocks, so a row is
 * read and written once; decrypt issues the CLMULs of a group between its AES rounds. */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#include "sn_internal.h"

#define T_AESNI __attribute__((target("aes,pclmul,sse2,ssse3,sse4.1")))
#define T_VAES                                                                                   \
  __attribute__((target("aes,pclmul,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512bw,avx512dq,"     \
                        "avx512vl,vaes,vpclmulqdq")))
#define T_VAES2                                                                                  \
  __attribute__((target("aes,pclmul,sse2,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq")))
#define INLINE static inline __attribute__((always_inline))

static uint64_t xgetbv0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

/* CPUID.1:ECX AES (25), PCLMULQDQ (1), SSSE3 (9), SSE4.1 (19). SSE state is always OS-enabled
 * on x86-64. */
static int detect_aesni(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  return (c >> 25 & 1) && (c >> 1 & 1) && (c >> 9 & 1) && (c >> 19 & 1);
}

/* + OSXSAVE and XCR0 with SSE and AVX (YMM) state enabled by the OS, then CPUID.7.0: AVX2 (EBX 5),
 * VAES and VPCLMULQDQ (ECX 9, 10). */
static int detect_vaes256(void) {
  unsigned a, b, c, d;
  if (!detect_aesni() || !__get_cpuid(1, &a, &b, &c, &d)) return 0;
  if (!(c >> 27 & 1) || !(c >> 28 & 1)) return 0; /* OSXSAVE, AVX */
  if ((xgetbv0() & 0x6) != 0x6) return 0;
  if (__get_cpuid_max(0, NULL) < 7) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  return (b >> 5 & 1) && (c >> 9 & 1) && (c >> 10 & 1);
}

/* + OSXSAVE and XCR0 with SSE, AVX (YMM) and AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM) state enabled
 * by the OS, then CPUID.7.0: AVX2, AVX512F/DQ/BW/VL (EBX 5, 16, 17, 30, 31), VAES and
 * VPCLMULQDQ (ECX 9, 10). */
static int detect_vaes(void) {
  unsigned a, b, c, d;
  if (!detect_aesni() || !__get_cpuid(1, &a, &b, &c, &d)) return 0;
  if (!(c >> 27 & 1) || !(c >> 28 & 1)) return 0; /* OSXSAVE, AVX */
  if ((xgetbv0() & 0xe6) != 0xe6) return 0;
  if (__get_cpuid_max(0, NULL) < 7) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  return (b >> 5 & 1) && (b >> 16 & 1) && (b >> 17 & 1) && (b >> 30 & 1) && (b >> 31 & 1) &&
         (c >> 9 & 1) && (c >> 10 & 1);
}

/* benign race: every thread computes the same */
static int g_has_aesni = -1, g_has_vaes256 = -1, g_has_vaes = -1;

int sn_cpu_has_aesni(void) {
  if (g_has_aesni < 0) g_has_aesni = detect_aesni();
  return g_has_aesni;
}

int sn_cpu_has_vaes256(void) {
  if (g_has_vaes256 < 0) g_has_vaes256 = detect_vaes256();
  return g_has_vaes256;
}

int sn_cpu_has_vaes(void) {
  if (g_has_vaes < 0) g_has_vaes = detect_vaes();
  return g_has_vaes;
}

#define SN_HX 32 /* hx[SN_HX - i] is H^i */

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

/* Karatsuba partial products of one block a and one key power (h, hk = hxk entry). */
T_AESNI INLINE void kmul_acc(__m128i a, __m128i h, __m128i hk, __m128i *lo, __m128i *mi, __m128i *hi) {
  *lo = _mm_xor_si128(*lo, _mm_clmulepi64_si128(a, h, 0x00));
  *hi = _mm_xor_si128(*hi, _mm_clmulepi64_si128(a, h, 0x11));
  *mi = _mm_xor_si128(*mi, _mm_clmulepi64_si128(_mm_xor_si128(a, _mm_shuffle_epi32(a, 0x4e)), hk, 0x00));
}

/* Sums of Karatsuba products (lo, m, hi) of x-form operands -> reflected product mod P. */
T_AESNI INLINE __m128i gf_reduce_k(__m128i lo, __m128i m, __m128i hi) {
  const __m128i poly = _mm_set_epi64x((long long)0xc200000000000000ULL, 1);
  __m128i mi = _mm_xor_si128(m, _mm_xor_si128(lo, hi));
  __m128i t = _mm_clmulepi64_si128(poly, lo, 0x01); /* lo_lo * (x^63 + x^62 + x^57) */
  mi = _mm_xor_si128(mi, _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t));
  t = _mm_clmulepi64_si128(poly, mi, 0x01);
  return _mm_xor_si128(hi, _mm_xor_si128(_mm_shuffle_epi32(mi, 0x4e), t));
}

/* y = (y ^ block) * H, block already byte-reflected. */
T_AESNI INLINE __m128i ghash1(const sn_ghash_key *hk, __m128i y, __m128i blk) {
  __m128i lo = _mm_setzero_si128(), mi = lo, hi = lo;
  kmul_acc(_mm_xor_si128(y, blk), _mm_load_si128((const __m128i *)hk->hx[SN_HX - 1]),
           _mm_load_si128((const __m128i *)hk->hxk[SN_HX - 1]), &lo, &mi, &hi);
  return gf_reduce_k(lo, mi, hi);
}

/* y over n (1..32) whole blocks at p, aggregated against H^n..H^1: one reduction. */
T_AESNI INLINE __m128i ghash_n(const sn_ghash_key *hk, __m128i y, const uint8_t *p, unsigned n) {
  const __m128i bs = bswap_mask();
  __m128i lo = _mm_setzero_si128(), mi = lo, hi = lo;
  const unsigned k0 = SN_HX - n;
  for (unsigned j = 0; j < n; j++) {
    __m128i a = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p + j), bs);
    if (j == 0) a = _mm_xor_si128(a, y);
    kmul_acc(a, _mm_load_si128((const __m128i *)hk->hx[k0 + j]),
             _mm_load_si128((const __m128i *)hk->hxk[k0 + j]), &lo, &mi, &hi);
  }
  return gf_reduce_k(lo, mi, hi);
}

T_AESNI static void ghash_pclmul(const sn_ghash_key *hk, uint8_t y8[16], const uint8_t *p, size_t n) {
  const __m128i bs = bswap_mask();
  __m128i y = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)y8), bs);
  for (; n >= 8; n -= 8, p += 128) y = ghash_n(hk, y, p, 8);
  if (n) y = ghash_n(hk, y, p, (unsigned)n);
  _mm_storeu_si128((__m128i *)y8, _mm_shuffle_epi8(y, bs));
}

/* The CLMUL levels' GHASH key (replaces sn_ghash_key_init, whose bit-serial powers they do not
 * use): H = E(K, 0^128), then hx / hxk (see sn_internal.h): H' = reflected H times x, and
 * H'^e = H'^(e-1) * H' for e <= 32 (x-form products stay in x-form). */
T_AESNI static void prep_x86(sn_ghash_key *hk, const sn_aes256 *ks) {
  __m128i k[SN_AES256_ROUNDS + 1];
  for (int i = 0; i <= SN_AES256_ROUNDS; i++) k[i] = _mm_loadu_si128((const __m128i *)(ks->rk + 16 * i));
  const __m128i h = aes_block(k, _mm_setzero_si128());
  _mm_storeu_si128((__m128i *)hk->h, h);
  memset(hk->hrev, 0, sizeof hk->hrev);
  memset(hk->hdesc, 0, sizeof hk->hdesc);
  memset(hk->hx, 0, sizeof hk->hx);
  memset(hk->hxk, 0, sizeof hk->hxk);
  /* times x: shift the reflected 128-bit value left by one, folding bit 127 back in as
   * x^127 + x^126 + x^121 + 1 (0xc2000...01). */
  __m128i r = _mm_shuffle_epi8(h, bswap_mask());
  __m128i carry = _mm_shuffle_epi32(_mm_srai_epi32(r, 31), 0xff);            /* bit 127 */
  __m128i lowc = _mm_slli_si128(_mm_srli_epi64(r, 63), 8);                    /* bit 63 -> 64 */
  __m128i hx1 = _mm_xor_si128(_mm_or_si128(_mm_slli_epi64(r, 1), lowc),
                              _mm_and_si128(carry, _mm_set_epi64x((long long)0xc200000000000000ULL, 1)));
  const __m128i hx1k = _mm_xor_si128(hx1, _mm_shuffle_epi32(hx1, 0x4e));
  __m128i pw = hx1;
  for (int e = 1; e <= SN_HX; e++) {
    if (e > 1) {
      __m128i lo = _mm_setzero_si128(), mi = lo, hi = lo;
      kmul_acc(pw, hx1, _mm_unpacklo_epi64(hx1k, hx1k), &lo, &mi, &hi);
      pw = gf_reduce_k(lo, mi, hi);
    }
    _mm_store_si128((__m128i *)hk->hx[SN_HX - e], pw);
    __m128i m = _mm_xor_si128(pw, _mm_shuffle_epi32(pw, 0x4e));
    _mm_store_si128((__m128i *)hk->hxk[SN_HX - e], m);
  }
}

/* GCM length block (AAD is always one 16-byte block) and the final tag, reflected domain. */
T_AESNI INLINE __m128i len_block(size_t len) {
  return _mm_set_epi64x(128, (long long)((uint64_t)len * 8)); /* reflected: bswap of BE64||BE64 */
}

/* 8 blocks: CTR keystream XOR, and GHASH of the ciphertext, fused. */
T_AESNI INLINE void group8(const __m128i *k, __m128i base, __m128i *cv, const uint8_t *in, uint8_t *out,
                           const sn_ghash_key *hk, __m128i *y, int decrypt) {
  const __m128i m = ctr_mask(), bs = bswap_mask(), one = _mm_setr_epi32(0, 0, 0, 1);
  __m128i x[8], lo = _mm_setzero_si128(), mi = lo, hi = lo;
#pragma GCC unroll 8
  for (int j = 0; j < 8; j++) {
    x[j] = _mm_xor_si128(_mm_or_si128(base, _mm_shuffle_epi8(*cv, m)), k[0]);
    *cv = _mm_add_epi32(*cv, one);
  }
  if (decrypt) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
      __m128i a = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)in + j), bs);
      if (j == 0) a = _mm_xor_si128(a, *y);
      kmul_acc(a, _mm_load_si128((const __m128i *)hk->hx[SN_HX - 8 + j]),
               _mm_load_si128((const __m128i *)hk->hxk[SN_HX - 8 + j]), &lo, &mi, &hi);
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) x[i] = _mm_aesenc_si128(x[i], k[1 + j]);
    }
#pragma GCC unroll 8
    for (int r = 9; r < SN_AES256_ROUNDS; r++)
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) x[i] = _mm_aesenc_si128(x[i], k[r]);
    *y = gf_reduce_k(lo, mi, hi);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
      x[j] = _mm_aesenclast_si128(x[j], k[SN_AES256_ROUNDS]);
      _mm_storeu_si128((__m128i *)out + j, _mm_xor_si128(x[j], _mm_loadu_si128((const __m128i *)in + j)));
    }
  } else {
#pragma GCC unroll 8
    for (int r = 1; r < SN_AES256_ROUNDS; r++)
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) x[i] = _mm_aesenc_si128(x[i], k[r]);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
      __m128i c = _mm_xor_si128(_mm_aesenclast_si128(x[j], k[SN_AES256_ROUNDS]),
                                _mm_loadu_si128((const __m128i *)in + j));
      _mm_storeu_si128((__m128i *)out + j, c);
      c = _mm_shuffle_epi8(c, bs);
      if (j == 0) c = _mm_xor_si128(c, *y);
      kmul_acc(c, _mm_load_si128((const __m128i *)hk->hx[SN_HX - 8 + j]),
               _mm_load_si128((const __m128i *)hk->hxk[SN_HX - 8 + j]), &lo, &mi, &hi);
    }
    *y = gf_reduce_k(lo, mi, hi);
  }
}

T_AESNI INLINE void row_aesni_impl(const sn_aes256 *ks, const sn_ghash_key *hk, const uint8_t iv[12],
                                   const uint8_t aad[16], uint8_t *p, size_t len, uint8_t tag[16],
                                   int decrypt) {
  __m128i k[SN_AES256_ROUNDS + 1];
  for (int i = 0; i <= SN_AES256_ROUNDS; i++) k[i] = _mm_loadu_si128((const __m128i *)(ks->rk + 16 * i));
  const __m128i bs = bswap_mask(), base = load_prefix(iv), one = _mm_setr_epi32(0, 0, 0, 1);
  const __m128i ej0 = aes_block(k, _mm_or_si128(base, _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)));
  __m128i y = ghash1(hk, _mm_setzero_si128(), _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)aad), bs));
  __m128i cv = _mm_setr_epi32(0, 0, 0, 2);
  size_t n = len;
  for (; n >= 128; n -= 128, p += 128) group8(k, base, &cv, p, p, hk, &y, decrypt);
  if (n) {
    /* Last partial group through a zero-padded buffer: whole blocks hashed against H^nb..H^1. */
    uint8_t buf[128];
    unsigned nb = (unsigned)((n + 15) / 16);
    memset(buf, 0, sizeof buf);
    memcpy(buf, p, n);
    if (decrypt) y = ghash_n(hk, y, buf, nb);
    ctr_tail(k, base, cv, one, buf, buf, nb * 16);
    memset(buf + n, 0, sizeof buf - n);
    if (!decrypt) y = ghash_n(hk, y, buf, nb);
    memcpy(p, buf, n);
    memset(buf, 0, sizeof buf);
  }
  y = ghash1(hk, y, len_block(len));
  _mm_storeu_si128((__m128i *)tag, _mm_xor_si128(_mm_shuffle_epi8(y, bs), ej0));
}

T_AESNI static void row_aesni(const sn_aes256 *ks, const sn_ghash_key *hk, const uint8_t iv[12],
                              const uint8_t aad[16], uint8_t *p, size_t len, uint8_t tag[16], int decrypt) {
  if (decrypt) row_aesni_impl(ks, hk, iv, aad, p, len, tag, 1);
  else row_aesni_impl(ks, hk, iv, aad, p, len, tag, 0);
}

const sn_isa_ops sn_ops_aesni = {"aesni+pclmul", ctr_xor_aesni, ghash_pclmul, prep_x86, row_aesni};

/* ------------------------------------------- level 2: VAES, VPCLMULQDQ on 256 bits (AVX2 only) */

T_VAES2 INLINE __m128i fold256(__m256i v) {
  return _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

T_VAES2 INLINE __m256i kmid256(__m256i d) { return _mm256_xor_si256(d, _mm256_shuffle_epi32(d, 0x4e)); }

T_VAES2 INLINE void ctr_blocks256(__m256i base, uint32_t c, __m256i B[4]) {
  const __m256i cm = _mm256_broadcastsi128_si256(ctr_mask());
  const __m256i two = _mm256_set_epi32(2, 0, 0, 0, 2, 0, 0, 0);
  __m256i cv = _mm256_set_epi32((int)(c + 1), 0, 0, 0, (int)c, 0, 0, 0);
  for (int i = 0; i < 4; i++, cv = _mm256_add_epi32(cv, two))
    B[i] = _mm256_or_si256(base, _mm256_shuffle_epi8(cv, cm));
}

/* Karatsuba sums of 4 x 256-bit byte-reflected data d against hx[kofs..kofs+7]. */
T_VAES2 INLINE void clmul8(const sn_ghash_key *hk, unsigned kofs, const __m256i d[4], __m256i acc[3]) {
  for (int i = 0; i < 4; i++) {
    const __m256i K = _mm256_loadu_si256((const __m256i *)hk->hx[kofs + 2 * i]);
    const __m256i KK = _mm256_loadu_si256((const __m256i *)hk->hxk[kofs + 2 * i]);
    acc[0] = _mm256_xor_si256(acc[0], _mm256_clmulepi64_epi128(d[i], K, 0x00));
    acc[2] = _mm256_xor_si256(acc[2], _mm256_clmulepi64_epi128(d[i], K, 0x11));
    acc[1] = _mm256_xor_si256(acc[1], _mm256_clmulepi64_epi128(kmid256(d[i]), KK, 0x00));
  }
}

/* 8 blocks (4 x 256 bits) at p: CTR XOR in place, Karatsuba sums of the ciphertext into acc
 * (y added to the first block when withy). Counter blocks B / counter c as in group16. */
T_VAES2 INLINE void group8y(const __m256i *k, __m256i base, __m256i B[4], uint32_t *c, uint8_t *p,
                            const sn_ghash_key *hk, unsigned kofs, __m128i y, int withy, __m256i acc[3],
                            int decrypt) {
  const __m256i bs = _mm256_broadcastsi128_si256(bswap_mask());
  const __m256i inc = _mm256_set_epi32(8 << 24, 0, 0, 0, 8 << 24, 0, 0, 0);
  __m256i x[4], v[4], d[4];
  for (int i = 0; i < 4; i++) x[i] = _mm256_xor_si256(B[i], k[0]);
  if ((*c & 0xff) <= 0xf0) {
    for (int i = 0; i < 4; i++) B[i] = _mm256_add_epi32(B[i], inc);
  } else {
    ctr_blocks256(base, *c + 8, B);
  }
  *c += 8;
  for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_si256((const __m256i *)(p + 32 * i));
  if (decrypt) {
    for (int i = 0; i < 4; i++) d[i] = _mm256_shuffle_epi8(v[i], bs);
    if (withy) d[0] = _mm256_xor_si256(d[0], _mm256_inserti128_si256(_mm256_setzero_si256(), y, 0));
    clmul8(hk, kofs, d, acc);
  }
  for (int r = 1; r < SN_AES256_ROUNDS; r++)
    for (int i = 0; i < 4; i++) x[i] = _mm256_aesenc_epi128(x[i], k[r]);
  for (int i = 0; i < 4; i++) {
    x[i] = _mm256_xor_si256(v[i], _mm256_aesenclast_epi128(x[i], k[SN_AES256_ROUNDS]));
    _mm256_storeu_si256((__m256i *)(p + 32 * i), x[i]);
  }
  if (!decrypt) {
    for (int i = 0; i < 4; i++) d[i] = _mm256_shuffle_epi8(x[i], bs);
    if (withy) d[0] = _mm256_xor_si256(d[0], _mm256_inserti128_si256(_mm256_setzero_si256(), y, 0));
    clmul8(hk, kofs, d, acc);
  }
}

T_VAES2 INLINE __m128i reduce256(const __m256i acc[3]) {
  return gf_reduce_k(fold256(acc[0]), fold256(acc[1]), fold256(acc[2]));
}

T_VAES2 INLINE void row_vaes256_impl(const sn_aes256 *ks, const sn_ghash_key *hk, const uint8_t iv[12],
                                     const uint8_t aad[16], uint8_t *p, size_t len, uint8_t tag[16],
                                     int decrypt) {
  __m256i k[SN_AES256_ROUNDS + 1];
  __m128i k1[SN_AES256_ROUNDS + 1];
  for (int i = 0; i <= SN_AES256_ROUNDS; i++) {
    k1[i] = _mm_loadu_si128((const __m128i *)(ks->rk + 16 * i));
    k[i] = _mm256_broadcastsi128_si256(k1[i]);
  }
  const __m128i bs = bswap_mask(), base = load_prefix(iv);
  const __m256i base2 = _mm256_broadcastsi128_si256(base);
  const __m128i ej0 = aes_block(k1, _mm_or_si128(base, _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)));
  __m128i y = ghash1(hk, _mm_setzero_si128(), _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)aad), bs));
  __m256i B[4], acc[3];
  uint32_t c = 2;
  ctr_blocks256(base2, c, B);
  size_t n = len;
  /* 16 blocks per reduction: H^16..H^9 for the first 8, H^8..H^1 for the next. */
  for (; n >= 256; n -= 256, p += 256) {
    acc[0] = acc[1] = acc[2] = _mm256_setzero_si256();
    group8y(k, base2, B, &c, p, hk, SN_HX - 16, y, 1, acc, decrypt);
    group8y(k, base2, B, &c, p + 128, hk, SN_HX - 8, y, 0, acc, decrypt);
    y = reduce256(acc);
  }
  if (n) {
    /* Last partial group (< 16 blocks) through a zero-padded buffer, hashed against H^nb..H^1. */
    uint8_t buf[256];
    const unsigned nb = (unsigned)((n + 15) / 16);
    memset(buf, 0, sizeof buf);
    memcpy(buf, p, n);
    if (decrypt) y = ghash_n(hk, y, buf, nb);
    ctr_tail(k1, base, _mm_setr_epi32(0, 0, 0, (int)c), _mm_setr_epi32(0, 0, 0, 1), buf, buf, 16 * nb);
    memset(buf + n, 0, sizeof buf - n);
    if (!decrypt) y = ghash_n(hk, y, buf, nb);
    memcpy(p, buf, n);
    memset(buf, 0, sizeof buf);
  }
  y = ghash1(hk, y, len_block(len));
  _mm_storeu_si128((__m128i *)tag, _mm_xor_si128(_mm_shuffle_epi8(y, bs), ej0));
}

T_VAES2 static void row_vaes256(const sn_aes256 *ks, const sn_ghash_key *hk, const uint8_t iv[12],
                                const uint8_t aad[16], uint8_t *p, size_t len, uint8_t tag[16], int decrypt) {
  if (decrypt) row_vaes256_impl(ks, hk, iv, aad, p, len, tag, 1);
  else row_vaes256_impl(ks, hk, iv, aad, p, len, tag, 0);
}

const sn_isa_ops sn_ops_vaes256 = {"vaes256+vpclmulqdq", ctr_xor_aesni, ghash_pclmul, prep_x86, row_vaes256};

/* ------------------------------------------- level 3: VAES, VPCLMULQDQ on 512 bits (AVX-512) */

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

T_VAES INLINE __m128i fold512(__m512i v) {
  __m256i a = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  return _mm_xor_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
}

T_VAES INLINE __m128i reduce512(const __m512i acc[3]) {
  return gf_reduce_k(fold512(acc[0]), fold512(acc[1]), fold512(acc[2]));
}

T_VAES INLINE __m512i kmid(__m512i d) { return _mm512_xor_si512(d, _mm512_shuffle_epi32(d, _MM_PERM_BADC)); }

#define CLMUL512 _mm512_clmulepi64_epi128
#define XOR3(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)
#define AESR(r)                                                                                  \
  do {                                                                                           \
    x0 = _mm512_aesenc_epi128(x0, k[r]);                                                         \
    x1 = _mm512_aesenc_epi128(x1, k[r]);                                                         \
    x2 = _mm512_aesenc_epi128(x2, k[r]);                                                         \
    x3 = _mm512_aesenc_epi128(x3, k[r]);                                                         \
  } while (0)

/* 16 blocks (4 x 512 bits) at p: CTR keystream XOR in place and GHASH of the ciphertext against
 * K = hx + 16 * kofs (H^n..), one reduction. masked: the group is the row's last, partial one;
 * lanes past the row read as zero and are not stored. decrypt: hash the input; the CLMULs
 * interleave with the AES rounds. */
T_VAES INLINE void ctr_blocks(__m512i base, uint32_t c, __m512i B[4]) {
  const __m512i cm = _mm512_broadcast_i32x4(ctr_mask());
  const __m512i four = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
  __m512i cv = _mm512_set_epi32((int)(c + 3), 0, 0, 0, (int)(c + 2), 0, 0, 0, (int)(c + 1), 0, 0, 0,
                                (int)c, 0, 0, 0);
  for (int i = 0; i < 4; i++, cv = _mm512_add_epi32(cv, four))
    B[i] = _mm512_or_si512(base, _mm512_shuffle_epi8(cv, cm));
}

/* Hash modes of group16 (compile-time constants). */
enum { H_NONE, H_IN, H_PREV, H_OUT };

/* 16 blocks (4 x 512 bits) at p: CTR keystream XOR in place, plus the unreduced Karatsuba sums
 * (acc: lo, mid, hi) of 16 blocks against hx[kofs..kofs+15] (H^n..), y added to the first
 * block when withy. Which blocks (mode): H_IN the input at p (decrypt), H_PREV 16 whole blocks
 * at hp (encrypt: the previous group's ciphertext), both with the CLMULs between the AES rounds;
 * H_OUT the output (encrypt, last groups); H_NONE nothing. B: the group's counter blocks
 * (big-endian, in place), c: the counter of B[0] lane 0; both advance by 16 (a byte add while
 * the low counter byte cannot carry, else rebuilt). masked: the row's last, partial group;
 * lanes past the row read as zero and are not stored. */
T_VAES INLINE void group16(const __m512i *k, __m512i base, __m512i B[4], uint32_t *c, uint8_t *p,
                           const uint8_t *hp, const sn_ghash_key *hk, unsigned kofs, __m128i y, int withy,
                           __m512i acc[3], int mode, int masked, const __mmask64 *mk) {
  const __m512i bs = _mm512_broadcast_i32x4(bswap_mask());
  const __m512i inc = _mm512_set_epi32(16 << 24, 0, 0, 0, 16 << 24, 0, 0, 0, 16 << 24, 0, 0, 0,
                                       16 << 24, 0, 0, 0);
  const uint8_t *K = hk->hx[kofs], *KK = hk->hxk[kofs];
  __m512i x0 = _mm512_xor_si512(B[0], k[0]);
  __m512i x1 = _mm512_xor_si512(B[1], k[0]);
  __m512i x2 = _mm512_xor_si512(B[2], k[0]);
  __m512i x3 = _mm512_xor_si512(B[3], k[0]);
  if ((*c & 0xff) <= 0xe0) {
    for (int i = 0; i < 4; i++) B[i] = _mm512_add_epi32(B[i], inc);
  } else {
    ctr_blocks(base, *c + 16, B);
  }
  *c += 16;
  __m512i v0, v1, v2, v3;
  if (masked) {
    v0 = _mm512_maskz_loadu_epi8(mk[0], p);
    v1 = _mm512_maskz_loadu_epi8(mk[1], p + 64);
    v2 = _mm512_maskz_loadu_epi8(mk[2], p + 128);
    v3 = _mm512_maskz_loadu_epi8(mk[3], p + 192);
  } else {
    v0 = _mm512_loadu_si512(p);
    v1 = _mm512_loadu_si512(p + 64);
    v2 = _mm512_loadu_si512(p + 128);
    v3 = _mm512_loadu_si512(p + 192);
  }
  const __m512i K0 = _mm512_loadu_si512(K), K1 = _mm512_loadu_si512(K + 64),
                K2 = _mm512_loadu_si512(K + 128), K3 = _mm512_loadu_si512(K + 192);
  const __m512i KK0 = _mm512_loadu_si512(KK), KK1 = _mm512_loadu_si512(KK + 64),
                KK2 = _mm512_loadu_si512(KK + 128), KK3 = _mm512_loadu_si512(KK + 192);
  __m512i lo, mi, hi, d0, d1, d2, d3;
  if (mode == H_IN || mode == H_PREV) {
    if (mode == H_IN) {
      d0 = _mm512_shuffle_epi8(v0, bs);
      d1 = _mm512_shuffle_epi8(v1, bs);
      d2 = _mm512_shuffle_epi8(v2, bs);
      d3 = _mm512_shuffle_epi8(v3, bs);
    } else {
      d0 = _mm512_shuffle_epi8(_mm512_loadu_si512(hp), bs);
      d1 = _mm512_shuffle_epi8(_mm512_loadu_si512(hp + 64), bs);
      d2 = _mm512_shuffle_epi8(_mm512_loadu_si512(hp + 128), bs);
      d3 = _mm512_shuffle_epi8(_mm512_loadu_si512(hp + 192), bs);
    }
    if (withy) d0 = _mm512_xor_si512(d0, _mm512_zextsi128_si512(y));
    AESR(1);
    lo = _mm512_xor_si512(acc[0], CLMUL512(d0, K0, 0x00));
    AESR(2);
    hi = _mm512_xor_si512(acc[2], CLMUL512(d0, K0, 0x11));
    AESR(3);
    mi = _mm512_xor_si512(acc[1], CLMUL512(kmid(d0), KK0, 0x00));
    AESR(4);
    lo = _mm512_xor_si512(lo, CLMUL512(d1, K1, 0x00));
    hi = _mm512_xor_si512(hi, CLMUL512(d1, K1, 0x11));
    AESR(5);
    mi = _mm512_xor_si512(mi, CLMUL512(kmid(d1), KK1, 0x00));
    AESR(6);
    lo = _mm512_xor_si512(lo, CLMUL512(d2, K2, 0x00));
    AESR(7);
    hi = _mm512_xor_si512(hi, CLMUL512(d2, K2, 0x11));
    AESR(8);
    mi = _mm512_xor_si512(mi, CLMUL512(kmid(d2), KK2, 0x00));
    AESR(9);
    lo = _mm512_xor_si512(lo, CLMUL512(d3, K3, 0x00));
    AESR(10);
    hi = _mm512_xor_si512(hi, CLMUL512(d3, K3, 0x11));
    AESR(11);
    mi = _mm512_xor_si512(mi, CLMUL512(kmid(d3), KK3, 0x00));
    AESR(12);
    AESR(13);
    acc[0] = lo; acc[1] = mi; acc[2] = hi;
  } else {
    for (int r = 1; r < SN_AES256_ROUNDS; r++) AESR(r);
  }
  x0 = _mm512_xor_si512(v0, _mm512_aesenclast_epi128(x0, k[SN_AES256_ROUNDS]));
  x1 = _mm512_xor_si512(v1, _mm512_aesenclast_epi128(x1, k[SN_AES256_ROUNDS]));
  x2 = _mm512_xor_si512(v2, _mm512_aesenclast_epi128(x2, k[SN_AES256_ROUNDS]));
  x3 = _mm512_xor_si512(v3, _mm512_aesenclast_epi128(x3, k[SN_AES256_ROUNDS]));
  if (masked) {
    _mm512_mask_storeu_epi8(p, mk[0], x0);
    _mm512_mask_storeu_epi8(p + 64, mk[1], x1);
    _mm512_mask_storeu_epi8(p + 128, mk[2], x2);
    _mm512_mask_storeu_epi8(p + 192, mk[3], x3);
  } else {
    _mm512_storeu_si512(p, x0);
    _mm512_storeu_si512(p + 64, x1);
    _mm512_storeu_si512(p + 128, x2);
    _mm512_storeu_si512(p + 192, x3);
  }
  if (mode == H_OUT) {
    if (masked) {
      x0 = _mm512_maskz_mov_epi8(mk[0], x0);
      x1 = _mm512_maskz_mov_epi8(mk[1], x1);
      x2 = _mm512_maskz_mov_epi8(mk[2], x2);
      x3 = _mm512_maskz_mov_epi8(mk[3], x3);
    }
    d0 = _mm512_shuffle_epi8(x0, bs);
    if (withy) d0 = _mm512_xor_si512(d0, _mm512_zextsi128_si512(y));
    d1 = _mm512_shuffle_epi8(x1, bs);
    d2 = _mm512_shuffle_epi8(x2, bs);
    d3 = _mm512_shuffle_epi8(x3, bs);
    acc[0] = XOR3(acc[0], XOR3(CLMUL512(d0, K0, 0x00), CLMUL512(d1, K1, 0x00), CLMUL512(d2, K2, 0x00)),
                  CLMUL512(d3, K3, 0x00));
    acc[2] = XOR3(acc[2], XOR3(CLMUL512(d0, K0, 0x11), CLMUL512(d1, K1, 0x11), CLMUL512(d2, K2, 0x11)),
                  CLMUL512(d3, K3, 0x11));
    acc[1] = XOR3(acc[1],
                  XOR3(CLMUL512(kmid(d0), KK0, 0x00), CLMUL512(kmid(d1), KK1, 0x00), CLMUL512(kmid(d2), KK2, 0x00)),
                  CLMUL512(kmid(d3), KK3, 0x00));
  }
}

/* y over 32 whole blocks at p (H^32..H^1), one reduction. */
T_VAES INLINE __m128i ghash512(const sn_ghash_key *hk, __m128i y, const uint8_t *p) {
  const __m512i bs = _mm512_broadcast_i32x4(bswap_mask());
  __m512i lo = _mm512_setzero_si512(), mi = lo, hi = lo;
  for (int i = 0; i < 8; i++) {
    __m512i d = _mm512_shuffle_epi8(_mm512_loadu_si512(p + 64 * i), bs);
    if (i == 0) d = _mm512_xor_si512(d, _mm512_zextsi128_si512(y));
    const __m512i K = _mm512_loadu_si512(hk->hx[4 * i]), KK = _mm512_loadu_si512(hk->hxk[4 * i]);
    lo = _mm512_xor_si512(lo, CLMUL512(d, K, 0x00));
    hi = _mm512_xor_si512(hi, CLMUL512(d, K, 0x11));
    mi = _mm512_xor_si512(mi, CLMUL512(kmid(d), KK, 0x00));
  }
  return gf_reduce_k(fold512(lo), fold512(mi), fold512(hi));
}

T_VAES INLINE void row_vaes_impl(const sn_aes256 *ks, const sn_ghash_key *hk, const uint8_t iv[12],
                                 const uint8_t aad[16], uint8_t *p, size_t len, uint8_t tag[16],
                                 int decrypt) {
  __m512i k[SN_AES256_ROUNDS + 1];
  __m128i k1[SN_AES256_ROUNDS + 1];
  for (int i = 0; i <= SN_AES256_ROUNDS; i++) {
    k1[i] = _mm_loadu_si128((const __m128i *)(ks->rk + 16 * i));
    k[i] = _mm512_broadcast_i32x4(k1[i]);
  }
  const __m128i bs = bswap_mask(), base = load_prefix(iv);
  const __m512i base4 = _mm512_broadcast_i32x4(base);
  const __m128i ej0 = aes_block(k1, _mm_or_si128(base, _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)));
  __m128i y = ghash1(hk, _mm_setzero_si128(), _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)aad), bs));
  __m512i B[4];
  uint32_t c = 2;
  ctr_blocks(base4, c, B);
  size_t n = len;
  __m512i acc[3];
  /* 32 blocks per reduction: H^32..H^17 for the first 16, H^16..H^1 for the next. Encrypt
   * hashes each 512-byte chunk's ciphertext during the next chunk's AES rounds. */
  const int mode = decrypt ? H_IN : H_PREV;
  const uint8_t *prev = NULL;
  for (; n >= 512; n -= 512, p += 512) {
    acc[0] = acc[1] = acc[2] = _mm512_setzero_si512();
    if (decrypt || prev) {
      group16(k, base4, B, &c, p, prev, hk, 0, y, 1, acc, mode, 0, NULL);
      group16(k, base4, B, &c, p + 256, prev ? prev + 256 : NULL, hk, 16, y, 0, acc, mode, 0, NULL);
      y = reduce512(acc);
    } else {
      group16(k, base4, B, &c, p, NULL, hk, 0, y, 0, acc, H_NONE, 0, NULL);
      group16(k, base4, B, &c, p + 256, NULL, hk, 16, y, 0, acc, H_NONE, 0, NULL);
    }
    prev = p;
  }
  if (!decrypt && prev) y = ghash512(hk, y, prev);
  const int last = decrypt ? H_IN : H_OUT;
  if (n >= 256) {
    acc[0] = acc[1] = acc[2] = _mm512_setzero_si512();
    group16(k, base4, B, &c, p, NULL, hk, 16, y, 1, acc, last, 0, NULL);
    y = reduce512(acc);
    n -= 256; p += 256;
  }
  if (n) {
    __mmask64 mk[4];
    for (int i = 0; i < 4; i++) {
      size_t lo = 64 * (size_t)i;
      mk[i] = n >= lo + 64 ? ~(__mmask64)0 : n > lo ? (((__mmask64)1 << (n - lo)) - 1) : 0;
    }
    acc[0] = acc[1] = acc[2] = _mm512_setzero_si512();
    group16(k, base4, B, &c, p, NULL, hk, (unsigned)(SN_HX - (n + 15) / 16), y, 1, acc, last, 1, mk);
    y = reduce512(acc);
  }
  y = ghash1(hk, y, len_block(len));
  _mm_storeu_si128((__m128i *)tag, _mm_xor_si128(_mm_shuffle_epi8(y, bs), ej0));
}

T_VAES static void row_vaes(const sn_aes256 *ks, const sn_ghash_key *hk, const uint8_t iv[12],
                            const uint8_t aad[16], uint8_t *p, size_t len, uint8_t tag[16], int decrypt) {
  if (decrypt) row_vaes_impl(ks, hk, iv, aad, p, len, tag, 1);
  else row_vaes_impl(ks, hk, iv, aad, p, len, tag, 0);
}

const sn_isa_ops sn_ops_vaes = {"vaes512+vpclmulqdq", ctr_xor_vaes, ghash_pclmul, prep_x86, row_vaes};

#endif
