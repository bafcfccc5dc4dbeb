/* Internal to the kernels: AES-256 key schedule, GHASH key, per-ISA primitives. */
#ifndef SN_INTERNAL_H
#define SN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SN_AES256_ROUNDS 14
#define SN_GHASH_POWERS 16

typedef struct sn_aes256 {
  uint8_t rk[(SN_AES256_ROUNDS + 1) * 16]; /* FIPS-197 round keys, bytes in order */
} sn_aes256;

typedef struct sn_ghash_key {
  uint8_t h[16];                        /* H = E(K, 0^128), standard (SP 800-38D) bit order */
  uint8_t hrev[SN_GHASH_POWERS][16];    /* byte-reversed H^(i+1), for CLMUL code */
  uint8_t hdesc[SN_GHASH_POWERS][16];   /* byte-reversed H^(16-i): [H^16 .. H^1] for 512-bit lanes */
  /* Filled by sn_isa_ops.prep (x86 levels, which leave hrev/hdesc zero): hx[i] = byte-reversed H^(32-i) times x for i < 32
   * (the CLMUL "x-form", whose products need no shift before the two-CLMUL reduction), then 32
   * zero entries so a partial group of n blocks reads hx[32-n .. 63]. hxk[i]: hi ^ lo qword of
   * hx[i] in both qwords (Karatsuba middle operand). */
  uint8_t hx[4 * SN_GHASH_POWERS][16] __attribute__((aligned(64)));
  uint8_t hxk[4 * SN_GHASH_POWERS][16] __attribute__((aligned(64)));
} sn_ghash_key;

/* Portable reference primitives (aes_gcm_portable.c). */
void sn_aes256_expand(sn_aes256 *ks, const uint8_t key[32]);
void sn_aes256_encrypt_block_portable(const sn_aes256 *ks, const uint8_t in[16], uint8_t out[16]);
void sn_gf128_mul(const uint8_t x[16], const uint8_t y[16], uint8_t out[16]);
void sn_ghash_key_init(sn_ghash_key *hk, const sn_aes256 *ks);

/* One instruction-set level: CTR keystream XOR with a 32-bit big-endian counter in the last
 * 4 bytes of the counter block (prefix = first 12 bytes), and GHASH over whole blocks. */
typedef struct sn_isa_ops {
  const char *name;
  void (*ctr_xor)(const sn_aes256 *ks, const uint8_t prefix[12], uint32_t ctr, const uint8_t *in,
                  uint8_t *out, size_t len);
  void (*ghash)(const sn_ghash_key *hk, uint8_t y[16], const uint8_t *data, size_t nblocks);
  /* Optional: builds the level's GHASH key (h, hx, hxk) instead of sn_ghash_key_init. */
  void (*prep)(sn_ghash_key *hk, const sn_aes256 *ks);
  /* Optional whole-row GCM in one fused pass, in place: CTR from counter 2 over data[0, len),
   * tag = GHASH_H(aad block, ciphertext, length block) ^ E(K, iv || 1). decrypt != 0: data is
   * ciphertext (hashed before XOR); else plaintext. NULL: ctr_xor + ghash are used instead. */
  void (*row)(const sn_aes256 *ks, const sn_ghash_key *hk, const uint8_t iv[12],
              const uint8_t aad[16], uint8_t *data, size_t len, uint8_t tag[16], int decrypt);
} sn_isa_ops;

extern const sn_isa_ops sn_ops_portable;
#if defined(__x86_64__) || defined(__i386__)
extern const sn_isa_ops sn_ops_aesni;
extern const sn_isa_ops sn_ops_vaes256;
extern const sn_isa_ops sn_ops_vaes;
int sn_cpu_has_aesni(void);
int sn_cpu_has_vaes256(void); /* VAES + VPCLMULQDQ + AVX2, OS-enabled YMM state */
int sn_cpu_has_vaes(void);    /* the same + AVX-512F/BW/DQ/VL, OS-enabled ZMM/opmask state */
#endif

#ifdef __cplusplus
}
#endif
#endif
