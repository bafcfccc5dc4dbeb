// Standalone GPU check (run by test-gpu.sh on a machine with a GPU): byte equality of the CUDA
// library against the C library on random rows, in-VRAM decrypt GB/s vs device-to-device
// cudaMemcpy in the same run, and host->device->host throughput of the ABI call. Prints one
// JSON line. Usage: test_gpu <path to libsecneuron_c.so> [MiB]
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secneuron_cuda.cu"

typedef sn_status (*enc_fn)(const uint8_t *, uint8_t *, uint64_t, const sn_span *, uint64_t, uint8_t *, uint32_t);
typedef sn_status (*dec_fn)(const uint8_t *, uint8_t *, uint64_t, const sn_span *, uint64_t, const uint8_t *, uint8_t *, uint32_t);

static uint64_t xs = 88172645463325252ull;
static uint8_t rnd8(void) { xs ^= xs << 13; xs ^= xs >> 7; xs ^= xs << 17; return (uint8_t)xs; }

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); printf("{\"gpu_test\":\"fail\"}\n"); return 1; } while (0)

int main(int argc, char **argv) {
  if (argc < 2) DIE("usage: test_gpu libsecneuron_c.so [MiB]");
  size_t mib = argc > 2 ? (size_t)atoi(argv[2]) : 1024;
  void *h = dlopen(argv[1], RTLD_NOW);
  if (!h) DIE("dlopen %s: %s", argv[1], dlerror());
  enc_fn c_enc = (enc_fn)dlsym(h, "sn_rows_encrypt");
  dec_fn c_dec = (dec_fn)dlsym(h, "sn_rows_decrypt");
  char detail[256];
  if (sn_probe(detail, sizeof detail) != SN_OK) DIE("cuda probe: %s", detail);
  fprintf(stderr, "device: %s\n", detail);

  // 1. Equality with the C library on rows of mixed lengths (odd ones and ggml row sizes).
  const uint32_t lens[] = {0, 1, 15, 16, 17, 255, 257, 4352, 8192, 16384, 2304, 3360, 1344, 4097, 952};
  const size_t nl = sizeof lens / sizeof lens[0];
  const size_t nrows = 3000;
  sn_span *sp = (sn_span *)calloc(nrows, sizeof(sn_span));
  uint64_t off = 3;
  for (size_t i = 0; i < nrows; i++) {
    sp[i].offset = off; sp[i].length = lens[i % nl]; sp[i].tensor_id = (uint32_t)(i % 97); sp[i].row_id = (uint32_t)i;
    off += sp[i].length + (i & 1);
  }
  uint64_t total = off + 7;
  uint8_t *plain = (uint8_t *)malloc(total), *a = (uint8_t *)malloc(total), *b = (uint8_t *)malloc(total);
  uint8_t key[32], *ta = (uint8_t *)malloc(16 * nrows), *tb = (uint8_t *)malloc(16 * nrows), *ok = (uint8_t *)malloc(nrows);
  for (uint64_t i = 0; i < total; i++) plain[i] = rnd8();
  for (int i = 0; i < 32; i++) key[i] = rnd8();
  memcpy(a, plain, total); memcpy(b, plain, total);
  if (c_enc(key, a, total, sp, nrows, ta, 0) != SN_OK) DIE("C encrypt failed");
  sn_status st = sn_rows_encrypt(key, b, total, sp, nrows, tb, 0);
  if (st != SN_OK) DIE("CUDA encrypt: %d %s", st, sn_last_error_detail());
  int equal = memcmp(a, b, total) == 0 && memcmp(ta, tb, 16 * nrows) == 0;
  st = sn_rows_decrypt(key, b, total, sp, nrows, ta, ok, 0);
  int roundtrip = st == SN_OK && memcmp(b, plain, total) == 0;
  a[sp[7].offset + 5] ^= 1;  // tamper row 7 (4352 bytes)
  st = sn_rows_decrypt(key, a, total, sp, nrows, ta, ok, 0);
  int tamper = st == SN_ERR_AUTH && ok[7] == 0 && ok[8] == 1;
  fprintf(stderr, "equal=%d roundtrip=%d tamper=%d\n", equal, roundtrip, tamper);

  // 2. In-VRAM decrypt vs device-to-device memcpy, Q8_0 rows of 4352 bytes.
  const uint32_t R = 4352;
  uint64_t n = (mib << 20) / R, bytes = n * R;
  uint8_t *d_data = NULL, *d_copy = NULL, *d_tags = NULL, *d_ok = NULL;
  sn_span *d_sp = NULL;
  sn_span *big = (sn_span *)calloc(n, sizeof(sn_span));
  for (uint64_t i = 0; i < n; i++) { big[i].offset = i * R; big[i].length = R; big[i].tensor_id = 5; big[i].row_id = (uint32_t)i; }
  if (cudaMalloc(&d_data, bytes) || cudaMalloc(&d_copy, bytes) || cudaMalloc(&d_tags, 16 * n) || cudaMalloc(&d_ok, n) ||
      cudaMalloc(&d_sp, n * sizeof(sn_span)))
    DIE("cudaMalloc %llu MiB failed", (unsigned long long)mib);
  cudaMemset(d_data, 0x5a, bytes);
  cudaMemcpy(d_sp, big, n * sizeof(sn_span), cudaMemcpyHostToDevice);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0); cudaEventCreate(&e1);
  float best_dec = 1e30f, best_cpy = 1e30f, ms;
  for (int rep = 0; rep < 5; rep++) {
    if (sn_cuda_rows_device(key, d_data, d_sp, n, R, d_tags, NULL, 0, 0) != SN_OK) DIE("device encrypt: %s", g_err);
    cudaEventRecord(e0);
    st = sn_cuda_rows_device(key, d_data, d_sp, n, R, d_tags, d_ok, 1, 0);
    cudaEventRecord(e1); cudaEventSynchronize(e1);
    if (st != SN_OK) DIE("device decrypt: %s", g_err);
    cudaEventElapsedTime(&ms, e0, e1); if (ms < best_dec) best_dec = ms;
    cudaEventRecord(e0);
    cudaMemcpy(d_copy, d_data, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1); cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms, e0, e1); if (ms < best_cpy) best_cpy = ms;
  }
  uint8_t *okh = (uint8_t *)malloc(n);
  cudaMemcpy(okh, d_ok, n, cudaMemcpyDeviceToHost);
  uint64_t bad = 0;
  for (uint64_t i = 0; i < n; i++) bad += okh[i] != 1;
  double vram_dec = bytes / (best_dec * 1e6), vram_cpy = bytes / (best_cpy * 1e6);

  // 3. Host -> device -> host through the ABI (pageable memory), vs the C library on the CPU.
  uint8_t *hbuf = (uint8_t *)malloc(bytes), *htags = (uint8_t *)malloc(16 * n), *hok = (uint8_t *)malloc(n);
  for (uint64_t i = 0; i < bytes; i += 4096) hbuf[i] = rnd8();
  memset(hbuf, 1, bytes);
  sn_rows_encrypt(key, hbuf, bytes, big, n, htags, 0);
  cudaEventRecord(e0);
  st = sn_rows_decrypt(key, hbuf, bytes, big, n, htags, hok, 0);
  cudaEventRecord(e1); cudaEventSynchronize(e1);
  cudaEventElapsedTime(&ms, e0, e1);
  double h2h = st == SN_OK ? bytes / (ms * 1e6) : 0;
  c_enc(key, hbuf, bytes, big, n, htags, 0);
  cudaEventRecord(e0);
  st = c_dec(key, hbuf, bytes, big, n, htags, hok, 0);
  cudaEventRecord(e1); cudaEventSynchronize(e1);
  cudaEventElapsedTime(&ms, e0, e1);
  double cpu = st == SN_OK ? bytes / (ms * 1e6) : 0;

  int pass = equal && roundtrip && tamper && bad == 0 && h2h > 0;
  printf("{\"gpu_test\":\"%s\",\"device\":\"%s\",\"equal_to_c\":%s,\"roundtrip\":%s,\"tamper_detected\":%s,"
         "\"rows\":%llu,\"row_bytes\":%u,\"bytes\":%llu,\"vram_decrypt_GBps\":%.2f,\"vram_d2d_memcpy_GBps\":%.2f,"
         "\"ratio_decrypt_to_d2d\":%.3f,\"host_device_host_decrypt_GBps\":%.2f,\"cpu_c_decrypt_GBps\":%.2f,\"failed_rows\":%llu}\n",
         pass ? "pass" : "fail", detail, equal ? "true" : "false", roundtrip ? "true" : "false", tamper ? "true" : "false",
         (unsigned long long)n, R, (unsigned long long)bytes, vram_dec, vram_cpy, vram_dec / vram_cpy, h2h, cpu,
         (unsigned long long)bad);
  return pass ? 0 : 1;
}
