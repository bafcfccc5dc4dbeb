// CUDA row cipher: the secneuron_kernels.h ABI on the GPU (runtime API, static cudart).
// One thread block per row. Decrypt: every thread multiplies its ciphertext blocks by the
// matching power of H (powers computed on the host; the product is gf128_ct.h's), the block
// XOR-reduces to the GHASH value, thread 0 checks the tag, then (only if authentic) the threads
// XOR the CTR keystream in place.
// Encrypt: keystream first, then the same hashing of the ciphertext. AES uses T-tables in
// shared memory. Without a driver every entry point returns SN_ERR_NO_DEVICE (error 35).
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/secneuron_kernels.h"
#include "../c/sn_internal.h"
#include "gf128_ct.h"

#define SN_CUDA_THREADS 256

static char g_err[256];

__constant__ uint32_t c_te0[256];
__constant__ uint8_t c_sbox[256];

typedef unsigned long long u64;

// ------------------------------------------------------------------------------ device code

__device__ __forceinline__ uint32_t bswap32(uint32_t x) { return __byte_perm(x, 0, 0x0123); }
__device__ __forceinline__ uint32_t ror8(uint32_t x) { return __funnelshift_r(x, x, 8); }

struct SharedTables {
  uint32_t te[4][256];
  uint8_t sbox[256];
  uint32_t rk[60];
};

// AES-256 of a counter block given as 4 big-endian words; returns 4 big-endian words.
__device__ __forceinline__ void aes256_be(const SharedTables &t, uint32_t s0, uint32_t s1, uint32_t s2,
                                          uint32_t s3, uint32_t out[4]) {
  const uint32_t *rk = t.rk;
  s0 ^= rk[0]; s1 ^= rk[1]; s2 ^= rk[2]; s3 ^= rk[3];
#pragma unroll
  for (int r = 1; r < 14; r++) {
    uint32_t t0 = t.te[0][s0 >> 24] ^ t.te[1][(s1 >> 16) & 0xff] ^ t.te[2][(s2 >> 8) & 0xff] ^ t.te[3][s3 & 0xff] ^ rk[4 * r];
    uint32_t t1 = t.te[0][s1 >> 24] ^ t.te[1][(s2 >> 16) & 0xff] ^ t.te[2][(s3 >> 8) & 0xff] ^ t.te[3][s0 & 0xff] ^ rk[4 * r + 1];
    uint32_t t2 = t.te[0][s2 >> 24] ^ t.te[1][(s3 >> 16) & 0xff] ^ t.te[2][(s0 >> 8) & 0xff] ^ t.te[3][s1 & 0xff] ^ rk[4 * r + 2];
    uint32_t t3 = t.te[0][s3 >> 24] ^ t.te[1][(s0 >> 16) & 0xff] ^ t.te[2][(s1 >> 8) & 0xff] ^ t.te[3][s2 & 0xff] ^ rk[4 * r + 3];
    s0 = t0; s1 = t1; s2 = t2; s3 = t3;
  }
  const uint8_t *S = t.sbox;
  out[0] = ((uint32_t)S[s0 >> 24] << 24 | (uint32_t)S[(s1 >> 16) & 0xff] << 16 | (uint32_t)S[(s2 >> 8) & 0xff] << 8 | S[s3 & 0xff]) ^ rk[56];
  out[1] = ((uint32_t)S[s1 >> 24] << 24 | (uint32_t)S[(s2 >> 16) & 0xff] << 16 | (uint32_t)S[(s3 >> 8) & 0xff] << 8 | S[s0 & 0xff]) ^ rk[57];
  out[2] = ((uint32_t)S[s2 >> 24] << 24 | (uint32_t)S[(s3 >> 16) & 0xff] << 16 | (uint32_t)S[(s0 >> 8) & 0xff] << 8 | S[s1 & 0xff]) ^ rk[58];
  out[3] = ((uint32_t)S[s3 >> 24] << 24 | (uint32_t)S[(s0 >> 16) & 0xff] << 16 | (uint32_t)S[(s1 >> 8) & 0xff] << 8 | S[s2 & 0xff]) ^ rk[59];
}

// GF(2^128) product, SP 800-38D bit order; values as (hi, lo) big-endian halves (gf128_ct.h:
// integer-multiply carry-less products, no tables; checked on the host by test/cipher).
__device__ __forceinline__ void gmul(u64 xh, u64 xl, u64 yh, u64 yl, u64 &zh, u64 &zl) {
  uint64_t h, l;
  sn_gf128_mul_ct(xh, xl, yh, yl, &h, &l);
  zh = h; zl = l;
}

// Loads data block j of a row (zero-padded) as big-endian halves.
__device__ __forceinline__ void load_block(const uint8_t *p, uint32_t len, uint32_t j, bool aligned, u64 &hi, u64 &lo) {
  uint32_t off = 16 * j;
  uint32_t w[4];
  if (aligned && off + 16 <= len) {
    uint4 v = *reinterpret_cast<const uint4 *>(p + off);
    w[0] = bswap32(v.x); w[1] = bswap32(v.y); w[2] = bswap32(v.z); w[3] = bswap32(v.w);
  } else {
    uint8_t b[16];
    for (int i = 0; i < 16; i++) b[i] = off + i < len ? p[off + i] : 0;
    for (int i = 0; i < 4; i++) w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
  }
  hi = (u64)w[0] << 32 | w[1];
  lo = (u64)w[2] << 32 | w[3];
}

__device__ __forceinline__ void xor_keystream(const SharedTables &t, uint8_t *p, uint32_t len, uint32_t j, bool aligned,
                                              uint32_t iv0, uint32_t iv1) {
  uint32_t ks[4];
  aes256_be(t, iv0, iv1, 0, j + 2, ks);
  uint32_t off = 16 * j;
  if (aligned && off + 16 <= len) {
    uint4 *q = reinterpret_cast<uint4 *>(p + off);
    uint4 v = *q;
    v.x ^= bswap32(ks[0]); v.y ^= bswap32(ks[1]); v.z ^= bswap32(ks[2]); v.w ^= bswap32(ks[3]);
    *q = v;
  } else {
    for (uint32_t i = 0; i < 16 && off + i < len; i++) p[off + i] ^= (uint8_t)(ks[i >> 2] >> (24 - 8 * (i & 3)));
  }
}

struct RowJob {
  const uint32_t *rk;      // 60 big-endian round-key words
  const u64 *hpow;         // hpow[2k], hpow[2k+1] = H^(k+1) (hi, lo)
  uint8_t *base;
  const sn_span *spans;
  uint64_t n;
  uint8_t *tags;           // encrypt: written; decrypt: read
  uint8_t *row_ok;         // decrypt only
  int decrypt;
};

__global__ void __launch_bounds__(SN_CUDA_THREADS) rows_kernel(RowJob job) {
  __shared__ SharedTables t;
  __shared__ u64 red_h[SN_CUDA_THREADS / 32], red_l[SN_CUDA_THREADS / 32];
  __shared__ int row_good;
  for (int i = threadIdx.x; i < 256; i += blockDim.x) {
    uint32_t e = c_te0[i];
    t.te[0][i] = e; t.te[1][i] = ror8(e); t.te[2][i] = ror8(ror8(e)); t.te[3][i] = ror8(ror8(ror8(e)));
    t.sbox[i] = c_sbox[i];
  }
  if (threadIdx.x < 60) t.rk[threadIdx.x] = job.rk[threadIdx.x];
  __syncthreads();

  for (uint64_t r = blockIdx.x; r < job.n; r += gridDim.x) {
    const sn_span s = job.spans[r];
    uint8_t *p = job.base + s.offset;
    const uint32_t len = s.length, nb = (len + 15) / 16;
    const bool aligned = (reinterpret_cast<uintptr_t>(p) & 15) == 0;
    const uint32_t iv0 = bswap32(s.tensor_id), iv1 = bswap32(s.row_id);

    if (!job.decrypt) {
      for (uint32_t j = threadIdx.x; j < nb; j += blockDim.x) xor_keystream(t, p, len, j, aligned, iv0, iv1);
      __syncthreads();
    }
    // GHASH: X_1 = AAD, X_2.. = data blocks, last = lengths; S = sum X_i * H^(M+1-i), M = nb + 2.
    u64 ah = 0, al = 0;
    for (uint32_t j = threadIdx.x; j < nb; j += blockDim.x) {
      u64 xh, xl, zh, zl;
      load_block(p, len, j, aligned, xh, xl);
      const uint32_t k = nb - j;  // H^(nb + 1 - j) is hpow index nb - j
      gmul(xh, xl, job.hpow[2 * k], job.hpow[2 * k + 1], zh, zl);
      ah ^= zh; al ^= zl;
    }
    for (int o = 16; o > 0; o >>= 1) {
      ah ^= __shfl_xor_sync(0xffffffffu, ah, o);
      al ^= __shfl_xor_sync(0xffffffffu, al, o);
    }
    if ((threadIdx.x & 31) == 0) { red_h[threadIdx.x >> 5] = ah; red_l[threadIdx.x >> 5] = al; }
    __syncthreads();
    if (threadIdx.x == 0) {
      u64 sh = 0, sl = 0, zh, zl;
      for (int w = 0; w < SN_CUDA_THREADS / 32; w++) { sh ^= red_h[w]; sl ^= red_l[w]; }
      // AAD block "SNR1" || le32 tensor || le32 row || le32 len, as big-endian halves.
      u64 aadh = (u64)0x534e5231u << 32 | bswap32(s.tensor_id);
      u64 aadl = (u64)bswap32(s.row_id) << 32 | bswap32(len);
      gmul(aadh, aadl, job.hpow[2 * (nb + 1)], job.hpow[2 * (nb + 1) + 1], zh, zl);
      sh ^= zh; sl ^= zl;
      gmul(128ull, (u64)len * 8, job.hpow[0], job.hpow[1], zh, zl);
      sh ^= zh; sl ^= zl;
      uint32_t ej[4];
      aes256_be(t, iv0, iv1, 0, 1, ej);
      uint32_t tag[4] = {(uint32_t)(sh >> 32) ^ ej[0], (uint32_t)sh ^ ej[1], (uint32_t)(sl >> 32) ^ ej[2], (uint32_t)sl ^ ej[3]};
      uint8_t *tp = job.tags + 16 * r;
      if (job.decrypt) {
        uint32_t diff = 0;
        for (int i = 0; i < 16; i++) diff |= (uint8_t)(tag[i >> 2] >> (24 - 8 * (i & 3))) ^ tp[i];
        row_good = diff == 0;
        job.row_ok[r] = diff == 0 ? 1 : 0;
      } else {
        for (int i = 0; i < 16; i++) tp[i] = (uint8_t)(tag[i >> 2] >> (24 - 8 * (i & 3)));
      }
    }
    __syncthreads();
    if (job.decrypt && row_good) {
      for (uint32_t j = threadIdx.x; j < nb; j += blockDim.x) xor_keystream(t, p, len, j, aligned, iv0, iv1);
    }
    __syncthreads();
  }
}

// ------------------------------------------------------------------------------ host code

static sn_status cuda_fail(cudaError_t e, const char *what) {
  snprintf(g_err, sizeof g_err, "%s: %s (%d): %s", what, cudaGetErrorName(e), (int)e, cudaGetErrorString(e));
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice || e == cudaErrorInitializationError ||
      e == cudaErrorCompatNotSupportedOnDevice || e == cudaErrorSystemDriverMismatch)
    return SN_ERR_NO_DEVICE;
  if (e == cudaErrorMemoryAllocation) return SN_ERR_NOMEM;
  return SN_ERR_CUDA;
}

#define CK(call, what) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { st = cuda_fail(e_, what); goto done; } } while (0)

static int g_tables_ready = 0;

static sn_status ensure_device(void) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return cuda_fail(e, "cudaGetDeviceCount");
  if (count == 0) { snprintf(g_err, sizeof g_err, "no CUDA device"); return SN_ERR_NO_DEVICE; }
  if (!g_tables_ready) {
    uint8_t sbox[256];
    uint32_t te0[256];
    static const uint8_t S[256] = {
#include "sbox.inc"
    };
    for (int i = 0; i < 256; i++) {
      uint8_t s = S[i];
      uint8_t s2 = (uint8_t)((s << 1) ^ ((s >> 7) * 0x1b));
      uint8_t s3 = (uint8_t)(s2 ^ s);
      sbox[i] = s;
      te0[i] = (uint32_t)s2 << 24 | (uint32_t)s << 16 | (uint32_t)s << 8 | s3;
    }
    e = cudaMemcpyToSymbol(c_te0, te0, sizeof te0);
    if (e != cudaSuccess) return cuda_fail(e, "cudaMemcpyToSymbol");
    e = cudaMemcpyToSymbol(c_sbox, sbox, sizeof sbox);
    if (e != cudaSuccess) return cuda_fail(e, "cudaMemcpyToSymbol");
    g_tables_ready = 1;
  }
  return SN_OK;
}

/* Host tables for one key: 60 BE round-key words and H^1..H^max_m as (hi, lo). */
static int make_key_tables(const uint8_t *key, uint32_t max_m, uint32_t rk[60], u64 **hpow_out) {
  sn_aes256 ks;
  sn_ghash_key hk;
  sn_aes256_expand(&ks, key);
  sn_ghash_key_init(&hk, &ks);
  for (int i = 0; i < 60; i++)
    rk[i] = (uint32_t)ks.rk[4 * i] << 24 | (uint32_t)ks.rk[4 * i + 1] << 16 | (uint32_t)ks.rk[4 * i + 2] << 8 | ks.rk[4 * i + 3];
  u64 *hp = (u64 *)malloc(sizeof(u64) * 2 * (size_t)max_m);
  if (!hp) return 0;
  uint8_t p[16];
  memcpy(p, hk.h, 16);
  for (uint32_t k = 0; k < max_m; k++) {
    if (k > 0) sn_gf128_mul(p, hk.h, p);
    u64 h = 0, l = 0;
    for (int i = 0; i < 8; i++) { h = h << 8 | p[i]; l = l << 8 | p[8 + i]; }
    hp[2 * k] = h; hp[2 * k + 1] = l;
  }
  memset(&ks, 0, sizeof ks);
  memset(&hk, 0, sizeof hk);
  *hpow_out = hp;
  return 1;
}

/* Device-resident batch: base, spans, tags, row_ok are device pointers; spans' offsets are
 * relative to base. max_len = the longest span. Used by the ABI wrappers and the GPU test. */
extern "C" sn_status sn_cuda_rows_device(const uint8_t *key, uint8_t *d_base, const sn_span *d_spans, uint64_t n,
                                         uint32_t max_len, uint8_t *d_tags, uint8_t *d_row_ok, int decrypt,
                                         cudaStream_t stream) {
  sn_status st = ensure_device();
  if (st != SN_OK) return st;
  uint32_t max_m = (uint32_t)((max_len + 15ull) / 16 + 2);
  uint32_t rk[60];
  u64 *hp = NULL;
  uint32_t *d_rk = NULL;
  u64 *d_hp = NULL;
  if (!make_key_tables(key, max_m, rk, &hp)) return SN_ERR_NOMEM;
  {
    CK(cudaMalloc(&d_rk, sizeof rk), "cudaMalloc(rk)");
    CK(cudaMalloc(&d_hp, sizeof(u64) * 2 * max_m), "cudaMalloc(hpow)");
    CK(cudaMemcpyAsync(d_rk, rk, sizeof rk, cudaMemcpyHostToDevice, stream), "cudaMemcpy(rk)");
    CK(cudaMemcpyAsync(d_hp, hp, sizeof(u64) * 2 * max_m, cudaMemcpyHostToDevice, stream), "cudaMemcpy(hpow)");
    RowJob job;
    job.rk = d_rk; job.hpow = d_hp; job.base = d_base; job.spans = d_spans; job.n = n;
    job.tags = d_tags; job.row_ok = d_row_ok; job.decrypt = decrypt;
    uint64_t grid = n < 65535ull * 32 ? n : 65535ull * 32;
    rows_kernel<<<(unsigned)grid, SN_CUDA_THREADS, 0, stream>>>(job);
    CK(cudaGetLastError(), "rows_kernel launch");
    CK(cudaStreamSynchronize(stream), "rows_kernel");
  }
done:
  memset(rk, 0, sizeof rk);
  if (hp) { memset(hp, 0, sizeof(u64) * 2 * max_m); free(hp); }
  if (d_rk) cudaFree(d_rk);
  if (d_hp) cudaFree(d_hp);
  return st;
}

static sn_status host_batch(const uint8_t *key, uint8_t *base, uint64_t base_len, const sn_span *spans, uint64_t n,
                            uint8_t *tags, uint8_t *row_ok, int decrypt) {
  g_err[0] = 0;
  if (n == 0) return SN_OK;
  if (!key || !base || !spans || !tags || (decrypt && !row_ok)) return SN_ERR_ARG;
  uint64_t lo = UINT64_MAX, hi = 0;
  uint32_t max_len = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (spans[i].offset > base_len || spans[i].length > base_len - spans[i].offset) {
      snprintf(g_err, sizeof g_err, "span %llu outside the %llu-byte buffer", (unsigned long long)i, (unsigned long long)base_len);
      return SN_ERR_ARG;
    }
    if (spans[i].offset < lo) lo = spans[i].offset;
    if (spans[i].offset + spans[i].length > hi) hi = spans[i].offset + spans[i].length;
    if (spans[i].length > max_len) max_len = spans[i].length;
  }
  sn_status st = ensure_device();
  if (st != SN_OK) return st;
  uint8_t *d_base = NULL, *d_tags = NULL, *d_ok = NULL;
  sn_span *d_spans = NULL;
  sn_span *rel = (sn_span *)malloc(sizeof(sn_span) * n);
  if (!rel) return SN_ERR_NOMEM;
  for (uint64_t i = 0; i < n; i++) { rel[i] = spans[i]; rel[i].offset -= lo; }
  {
    uint64_t region = hi > lo ? hi - lo : 1;
    CK(cudaMalloc(&d_base, region), "cudaMalloc(data)");
    CK(cudaMalloc(&d_spans, sizeof(sn_span) * n), "cudaMalloc(spans)");
    CK(cudaMalloc(&d_tags, 16 * n), "cudaMalloc(tags)");
    if (decrypt) CK(cudaMalloc(&d_ok, n), "cudaMalloc(row_ok)");
    if (hi > lo) CK(cudaMemcpy(d_base, base + lo, hi - lo, cudaMemcpyHostToDevice), "cudaMemcpy(data H2D)");
    CK(cudaMemcpy(d_spans, rel, sizeof(sn_span) * n, cudaMemcpyHostToDevice), "cudaMemcpy(spans)");
    if (decrypt) CK(cudaMemcpy(d_tags, tags, 16 * n, cudaMemcpyHostToDevice), "cudaMemcpy(tags)");
    st = sn_cuda_rows_device(key, d_base, d_spans, n, max_len, d_tags, d_ok, decrypt, 0);
    if (st != SN_OK) goto done;
    if (hi > lo) CK(cudaMemcpy(base + lo, d_base, hi - lo, cudaMemcpyDeviceToHost), "cudaMemcpy(data D2H)");
    if (decrypt) CK(cudaMemcpy(row_ok, d_ok, n, cudaMemcpyDeviceToHost), "cudaMemcpy(row_ok)");
    else CK(cudaMemcpy(tags, d_tags, 16 * n, cudaMemcpyDeviceToHost), "cudaMemcpy(tags)");
    if (decrypt) {
      uint64_t failed = 0;
      for (uint64_t i = 0; i < n; i++) failed += row_ok[i] != 1;
      if (failed) { snprintf(g_err, sizeof g_err, "%llu rows failed authentication", (unsigned long long)failed); st = SN_ERR_AUTH; }
    }
  }
done:
  free(rel);
  if (d_base) cudaFree(d_base);
  if (d_spans) cudaFree(d_spans);
  if (d_tags) cudaFree(d_tags);
  if (d_ok) cudaFree(d_ok);
  return st;
}

extern "C" {

SN_API uint32_t sn_abi_version(void) { return SN_ABI_VERSION; }

SN_API const char *sn_last_error_detail(void) { return g_err; }

SN_API sn_status sn_probe(char *detail, size_t detail_len) {
  sn_status st = ensure_device();
  if (detail && detail_len) {
    if (st != SN_OK) {
      snprintf(detail, detail_len, "%s", g_err);
    } else {
      int dev = 0;
      cudaDeviceProp prop;
      cudaGetDevice(&dev);
      if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
        snprintf(detail, detail_len, "cuda %s sm_%d%d, %d SMs", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
      else
        snprintf(detail, detail_len, "cuda device %d", dev);
    }
  }
  return st;
}

SN_API sn_status sn_rows_encrypt(const uint8_t *row_key, uint8_t *base, uint64_t base_len, const sn_span *spans,
                                 uint64_t n_rows, uint8_t *tags, uint32_t threads) {
  (void)threads;
  return host_batch(row_key, base, base_len, spans, n_rows, tags, NULL, 0);
}

SN_API sn_status sn_rows_decrypt(const uint8_t *row_key, uint8_t *base, uint64_t base_len, const sn_span *spans,
                                 uint64_t n_rows, const uint8_t *tags, uint8_t *row_ok, uint32_t threads) {
  (void)threads;
  return host_batch(row_key, base, base_len, spans, n_rows, (uint8_t *)tags, row_ok, 1);
}

SN_API sn_status sn_aes256_ctr_xor(const uint8_t *key, const uint8_t *counter_block, uint8_t *data, uint64_t len) {
  (void)key; (void)counter_block; (void)data; (void)len;
  return SN_ERR_UNSUPPORTED;
}

SN_API int32_t sn_set_isa_level(int32_t level) { (void)level; return -1; }

SN_API sn_status sn_memcpy(uint8_t *dst, const uint8_t *src, uint64_t len, uint32_t threads) {
  (void)threads;
  if ((!dst || !src) && len) return SN_ERR_ARG;
  memcpy(dst, src, len);
  return SN_OK;
}

}  // extern "C"
