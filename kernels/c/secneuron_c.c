/* CPU row cipher: secneuron_kernels.h over pthreads, with run-time ISA dispatch. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../include/secneuron_kernels.h"
#include "sn_internal.h"

/* Rows per batch below this many bytes run on the calling thread only. */
#define SN_MT_MIN_BYTES (1u << 20)
#define SN_MAX_THREADS 256

static int g_isa_limit = -1;
static _Thread_local char g_err[160];

static int isa_available(void) {
#if defined(__x86_64__) || defined(__i386__)
  if (sn_cpu_has_vaes()) return 3;
  if (sn_cpu_has_vaes256()) return 2;
  if (sn_cpu_has_aesni()) return 1;
#endif
  return 0;
}

static const sn_isa_ops *select_ops(void) {
  int level = isa_available();
  if (g_isa_limit >= 0 && g_isa_limit < level) level = g_isa_limit;
#if defined(__x86_64__) || defined(__i386__)
  if (level == 3) return &sn_ops_vaes;
  if (level == 2) return &sn_ops_vaes256;
  if (level == 1) return &sn_ops_aesni;
#endif
  return &sn_ops_portable;
}

SN_API uint32_t sn_abi_version(void) { return SN_ABI_VERSION; }

SN_API const char *sn_last_error_detail(void) { return g_err; }

SN_API int32_t sn_set_isa_level(int32_t level) {
  g_isa_limit = level < 0 ? -1 : level;
  int avail = isa_available();
  return g_isa_limit >= 0 && g_isa_limit < avail ? g_isa_limit : avail;
}

static uint32_t online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1u : (uint32_t)n;
}

SN_API sn_status sn_probe(char *detail, size_t detail_len) {
  if (detail && detail_len > 0)
    snprintf(detail, detail_len, "cpu %s, %u cpus", select_ops()->name, online_cpus());
  return SN_OK;
}

/* ------------------------------------------------------------------- one row, GCM framing */

typedef struct sn_ctx {
  sn_aes256 ks;
  sn_ghash_key hk;
  const sn_isa_ops *ops;
} sn_ctx;

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* The row's one AAD block (docs/row-cipher.md). */
static void aad_block(const sn_span *s, uint8_t blk[16]) {
  blk[0] = 'S'; blk[1] = 'N'; blk[2] = 'R'; blk[3] = '1';
  put_le32(blk + 4, s->tensor_id);
  put_le32(blk + 8, s->row_id);
  put_le32(blk + 12, s->length);
}

/* GCM with the row's AAD: y = GHASH state after the AAD block. */
static void tag_begin(const sn_ctx *c, const sn_span *s, uint8_t y[16]) {
  uint8_t blk[16];
  memset(y, 0, 16);
  aad_block(s, blk);
  c->ops->ghash(&c->hk, y, blk, 1);
}

/* Hashes the remaining ciphertext ct[0, n), the length block, and returns tag = S ^ E(K, J0). */
static void tag_end(const sn_ctx *c, const sn_span *s, const uint8_t iv[12], uint8_t y[16],
                    const uint8_t *ct, size_t n, uint8_t tag[16]) {
  static const uint8_t zero[16] = {0};
  uint8_t blk[16], ej0[16];
  size_t full = n / 16, rest = n % 16;
  if (full) c->ops->ghash(&c->hk, y, ct, full);
  if (rest) {
    memset(blk, 0, 16);
    memcpy(blk, ct + 16 * full, rest);
    c->ops->ghash(&c->hk, y, blk, 1);
  }
  uint64_t abits = 128, cbits = (uint64_t)s->length * 8;
  for (int i = 0; i < 8; i++) {
    blk[i] = (uint8_t)(abits >> (56 - 8 * i));
    blk[8 + i] = (uint8_t)(cbits >> (56 - 8 * i));
  }
  c->ops->ghash(&c->hk, y, blk, 1);
  c->ops->ctr_xor(&c->ks, iv, 1, zero, ej0, 16); /* E(K, J0), J0 = iv || 00000001 */
  for (int i = 0; i < 16; i++) tag[i] = (uint8_t)(y[i] ^ ej0[i]);
}

static void row_iv(const sn_span *s, uint8_t iv[12]) {
  put_le32(iv, s->tensor_id);
  put_le32(iv + 4, s->row_id);
  put_le32(iv + 8, 0);
}

static void encrypt_row(const sn_ctx *c, uint8_t *base, const sn_span *s, uint8_t *tag) {
  uint8_t iv[12], y[16];
  row_iv(s, iv);
  uint8_t *p = base + s->offset;
  size_t len = s->length;
  if (c->ops->row) {
    uint8_t aad[16];
    aad_block(s, aad);
    c->ops->row(&c->ks, &c->hk, iv, aad, p, len, tag, 0);
    return;
  }
  tag_begin(c, s, y);
  c->ops->ctr_xor(&c->ks, iv, 2, p, p, len);
  tag_end(c, s, iv, y, p, len, tag);
}

/* Verify-then-decrypt. A fused row pass decrypts while hashing; a row whose tag fails is
 * restored to its ciphertext (CTR is its own inverse) so rejected rows stay unchanged. */
static int decrypt_row(const sn_ctx *c, uint8_t *base, const sn_span *s, const uint8_t *tag) {
  uint8_t iv[12], y[16], want[16];
  row_iv(s, iv);
  uint8_t *p = base + s->offset;
  size_t len = s->length;
  if (c->ops->row) {
    uint8_t aad[16];
    aad_block(s, aad);
    c->ops->row(&c->ks, &c->hk, iv, aad, p, len, want, 1);
  } else {
    tag_begin(c, s, y);
    tag_end(c, s, iv, y, p, len, want);
  }
  uint8_t diff = 0;
  for (int i = 0; i < 16; i++) diff |= (uint8_t)(want[i] ^ tag[i]);
  if (c->ops->row) {
    if (diff != 0) c->ops->ctr_xor(&c->ks, iv, 2, p, p, len);
    return diff == 0;
  }
  if (diff != 0) return 0;
  c->ops->ctr_xor(&c->ks, iv, 2, p, p, len);
  return 1;
}

/* ------------------------------------------------------------------------------ batching */

/* Rows are handed out in chunks of about SN_CHUNK_BYTES from a shared counter, so a thread
 * that runs slower (a busy core) takes fewer chunks instead of holding up the batch. */
#define SN_CHUNK_BYTES (256u << 10)

typedef struct sn_queue {
  uint64_t next; /* first unclaimed row, advanced atomically */
  uint64_t n, chunk;
} sn_queue;

typedef struct sn_job {
  const sn_ctx *ctx;
  uint8_t *base;
  const sn_span *spans;
  sn_queue *q;
  uint8_t *tags;        /* encrypt */
  const uint8_t *tags_in; /* decrypt */
  uint8_t *row_ok;
  uint64_t failed;
  int decrypt;
} sn_job;

static void *run_job(void *arg) {
  sn_job *j = (sn_job *)arg;
  for (;;) {
    uint64_t first = __atomic_fetch_add(&j->q->next, j->q->chunk, __ATOMIC_RELAXED);
    if (first >= j->q->n) break;
    uint64_t last = j->q->n - first < j->q->chunk ? j->q->n : first + j->q->chunk;
    for (uint64_t i = first; i < last; i++) {
      if (j->decrypt) {
        int ok = decrypt_row(j->ctx, j->base, &j->spans[i], j->tags_in + 16 * i);
        j->row_ok[i] = (uint8_t)ok;
        if (!ok) j->failed++;
      } else {
        encrypt_row(j->ctx, j->base, &j->spans[i], j->tags + 16 * i);
      }
    }
  }
  return NULL;
}

static sn_status check_spans(uint64_t base_len, const sn_span *spans, uint64_t n, uint64_t *total) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    const sn_span *s = &spans[i];
    if (s->offset > base_len || s->length > base_len - s->offset) {
      snprintf(g_err, sizeof g_err, "span %llu: [%llu, +%u) outside the %llu-byte buffer",
               (unsigned long long)i, (unsigned long long)s->offset, s->length,
               (unsigned long long)base_len);
      return SN_ERR_ARG;
    }
    sum += s->length;
  }
  *total = sum;
  return SN_OK;
}

static sn_status run_batch(const uint8_t *key, uint8_t *base, uint64_t base_len, const sn_span *spans,
                           uint64_t n, uint8_t *tags, const uint8_t *tags_in, uint8_t *row_ok,
                           uint32_t threads, int decrypt) {
  g_err[0] = 0;
  if (n == 0) return SN_OK;
  if (!key || !base || !spans || (decrypt ? (!tags_in || !row_ok) : !tags)) {
    snprintf(g_err, sizeof g_err, "null pointer argument");
    return SN_ERR_ARG;
  }
  uint64_t total = 0;
  sn_status st = check_spans(base_len, spans, n, &total);
  if (st != SN_OK) return st;

  sn_ctx *ctx = (sn_ctx *)aligned_alloc(64, (sizeof(sn_ctx) + 63) & ~(size_t)63);
  if (!ctx) return SN_ERR_NOMEM;
  sn_aes256_expand(&ctx->ks, key);
  ctx->ops = select_ops();
  if (ctx->ops->prep) ctx->ops->prep(&ctx->hk, &ctx->ks);
  else sn_ghash_key_init(&ctx->hk, &ctx->ks);

  if (threads == 0) threads = online_cpus();
  if (threads > SN_MAX_THREADS) threads = SN_MAX_THREADS;
  if (total < SN_MT_MIN_BYTES || n < 2) threads = 1;
  if (threads > n) threads = (uint32_t)n;

  sn_job jobs[SN_MAX_THREADS];
  pthread_t tids[SN_MAX_THREADS];
  sn_queue q = {0, n, n};
  if (threads > 1) {
    uint64_t avg = total / n + 1;
    q.chunk = SN_CHUNK_BYTES / avg;
    if (q.chunk == 0) q.chunk = 1;
  }
  for (uint32_t t = 0; t < threads; t++) {
    sn_job *j = &jobs[t];
    j->ctx = ctx; j->base = base; j->spans = spans; j->q = &q; j->tags = tags; j->tags_in = tags_in;
    j->row_ok = row_ok; j->failed = 0; j->decrypt = decrypt;
  }
  uint32_t started = 0;
  for (uint32_t t = 1; t < threads; t++) {
    if (pthread_create(&tids[t], NULL, run_job, &jobs[t]) != 0) break;
    started = t;
  }
  run_job(&jobs[0]); /* returns when every chunk is claimed, also if some thread did not start */
  for (uint32_t t = 1; t <= started; t++) pthread_join(tids[t], NULL);
  uint64_t failed = 0;
  for (uint32_t t = 0; t <= started; t++) failed += jobs[t].failed;
  memset(ctx, 0, sizeof *ctx);
  free(ctx);
  if (failed) {
    snprintf(g_err, sizeof g_err, "%llu rows failed authentication", (unsigned long long)failed);
    return SN_ERR_AUTH;
  }
  return SN_OK;
}

SN_API sn_status sn_rows_encrypt(const uint8_t *row_key, uint8_t *base, uint64_t base_len,
                                 const sn_span *spans, uint64_t n_rows, uint8_t *tags,
                                 uint32_t threads) {
  return run_batch(row_key, base, base_len, spans, n_rows, tags, NULL, NULL, threads, 0);
}

SN_API sn_status sn_rows_decrypt(const uint8_t *row_key, uint8_t *base, uint64_t base_len,
                                 const sn_span *spans, uint64_t n_rows, const uint8_t *tags,
                                 uint8_t *row_ok, uint32_t threads) {
  return run_batch(row_key, base, base_len, spans, n_rows, NULL, tags, row_ok, threads, 1);
}

SN_API sn_status sn_aes256_ctr_xor(const uint8_t *key, const uint8_t *counter_block, uint8_t *data,
                                   uint64_t len) {
  if (!key || !counter_block || (!data && len)) return SN_ERR_ARG;
  sn_aes256 ks;
  sn_aes256_expand(&ks, key);
  uint32_t ctr = ((uint32_t)counter_block[12] << 24) | ((uint32_t)counter_block[13] << 16) |
                 ((uint32_t)counter_block[14] << 8) | counter_block[15];
  select_ops()->ctr_xor(&ks, counter_block, ctr, data, data, (size_t)len);
  memset(&ks, 0, sizeof ks);
  return SN_OK;
}

typedef struct sn_copy { uint8_t *dst; const uint8_t *src; uint64_t len; } sn_copy;
static void *run_copy(void *arg) {
  sn_copy *c = (sn_copy *)arg;
  memcpy(c->dst, c->src, c->len);
  return NULL;
}

SN_API sn_status sn_memcpy(uint8_t *dst, const uint8_t *src, uint64_t len, uint32_t threads) {
  if ((!dst || !src) && len) return SN_ERR_ARG;
  if (threads == 0) threads = online_cpus();
  if (threads > SN_MAX_THREADS) threads = SN_MAX_THREADS;
  if (len < SN_MT_MIN_BYTES) threads = 1;
  sn_copy parts[SN_MAX_THREADS];
  pthread_t tids[SN_MAX_THREADS];
  uint64_t chunk = (len / threads + 63) & ~(uint64_t)63, off = 0;
  for (uint32_t t = 0; t < threads; t++) {
    uint64_t n = off >= len ? 0 : (len - off < chunk || t == threads - 1 ? len - off : chunk);
    parts[t] = (sn_copy){dst + off, src + off, n};
    off += n;
  }
  uint32_t started = 0;
  for (uint32_t t = 1; t < threads; t++) {
    if (pthread_create(&tids[t], NULL, run_copy, &parts[t]) != 0) break;
    started = t;
  }
  run_copy(&parts[0]);
  for (uint32_t t = started + 1; t < threads; t++) run_copy(&parts[t]);
  for (uint32_t t = 1; t <= started; t++) pthread_join(tids[t], NULL);
  return SN_OK;
}
