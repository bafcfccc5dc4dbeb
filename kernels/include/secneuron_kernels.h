/*
 * secneuron kernels: the one C ABI shared by the CPU library (kernels/c, libsecneuron_c.so)
 * and the CUDA library (kernels/cuda, libsecneuron_cuda.so). Both export exactly these symbols.
 * Row cipher version 1 (docs/row-cipher.md): AES-256-GCM per row, detached 16-byte tags,
 *   iv  = u32le(tensor_id) || u32le(row_id) || u32le(0)
 *   aad = "SNR1" || u32le(tensor_id) || u32le(row_id) || u32le(length)
 * The caller passes the derived 32-byte row key (HKDF is done in TypeScript).
 * Bump SN_ABI_VERSION on any incompatible change; ffi/abi.ts checks it at load.
 */
#ifndef SECNEURON_KERNELS_H
#define SECNEURON_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SN_ABI_VERSION 1u
#define SN_ROW_TAG_BYTES 16u
#define SN_ROW_KEY_BYTES 32u

#if defined(_WIN32)
#define SN_API __declspec(dllexport)
#else
#define SN_API __attribute__((visibility("default")))
#endif

typedef enum sn_status {
  SN_OK = 0,
  SN_ERR_ARG = 1,         /* null pointer, span outside the buffer, length overflow */
  SN_ERR_AUTH = 2,        /* decrypt: at least one row failed authentication (see row_ok) */
  SN_ERR_NOMEM = 3,       /* host or device allocation failed */
  SN_ERR_THREAD = 4,      /* pthread_create failed */
  SN_ERR_NO_DEVICE = 5,   /* CUDA: no driver or no device (cudaErrorInsufficientDriver = 35, ...) */
  SN_ERR_CUDA = 6,        /* CUDA: another runtime error; sn_last_error_detail() has the code */
  SN_ERR_UNSUPPORTED = 7  /* the operation is not available in this library */
} sn_status;

/* One row of a batch: bytes [offset, offset+length) of the base buffer. 24 bytes, packed as
 * six little-endian u32 (offset_lo, offset_hi, length, tensor_id, row_id, reserved = 0). */
typedef struct sn_span {
  uint64_t offset;
  uint32_t length;
  uint32_t tensor_id;
  uint32_t row_id;
  uint32_t reserved;
} sn_span;

/* SN_ABI_VERSION of the library. */
SN_API uint32_t sn_abi_version(void);

/* Checks that the library can run here. CPU: always SN_OK. CUDA: SN_ERR_NO_DEVICE without a
 * driver or device. Writes a NUL-terminated description (ISA or device, CUDA error code) into
 * detail (detail_len bytes, may be 0). */
SN_API sn_status sn_probe(char *detail, size_t detail_len);

/* Detail of the last failure on this thread (CUDA error name and code), "" if none. */
SN_API const char *sn_last_error_detail(void);

/* Encrypts each span of base in place; writes n_rows * 16 tag bytes in span order.
 * threads: worker threads (0 = all online CPUs; ignored by CUDA). */
SN_API sn_status sn_rows_encrypt(const uint8_t *row_key, uint8_t *base, uint64_t base_len,
                                 const sn_span *spans, uint64_t n_rows, uint8_t *tags,
                                 uint32_t threads);

/* Verifies each span against its tag, then decrypts it in place. row_ok[i] = 1 when row i was
 * authentic and is now plaintext, 0 when it was rejected and left unchanged.
 * Returns SN_ERR_AUTH when any row was rejected. */
SN_API sn_status sn_rows_decrypt(const uint8_t *row_key, uint8_t *base, uint64_t base_len,
                                 const sn_span *spans, uint64_t n_rows, const uint8_t *tags,
                                 uint8_t *row_ok, uint32_t threads);

/* Raw AES-256-CTR keystream XOR over data (in place) from the 16-byte initial counter block;
 * the counter is the block's last 32 bits, big-endian, incremented modulo 2^32 (GCM inc32;
 * equal to SP 800-38A's increment while the low 32 bits do not wrap). For known-answer tests. */
SN_API sn_status sn_aes256_ctr_xor(const uint8_t *key, const uint8_t *counter_block,
                                   uint8_t *data, uint64_t len);

/* CPU library: caps the instruction set used (0 portable, 1 AES-NI+PCLMUL,
 * 2 VAES+VPCLMULQDQ/AVX-512; -1 = best available). Returns the level now in effect.
 * For tests: set it before calls, not concurrently with them. CUDA returns -1. */
SN_API int32_t sn_set_isa_level(int32_t level);

/* memcpy with the same threading, as the bench's reference (CUDA: device-to-device is in the
 * GPU test driver instead; here it is a host memcpy). */
SN_API sn_status sn_memcpy(uint8_t *dst, const uint8_t *src, uint64_t len, uint32_t threads);

#ifdef __cplusplus
}
#endif

#endif /* SECNEURON_KERNELS_H */
