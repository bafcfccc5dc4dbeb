/* Portable AES-256 and GF(2^128) reference code: byte-oriented, slow, obviously correct.
 * Used for the key schedule and GHASH key on every path, and as the ISA level 0 fallback. */
#include <string.h>

#include "sn_internal.h"

static const uint8_t SBOX[256] = {
  0x63,0x7c,0x77,0x7b,0xf2,0x6b,0x6f,0xc5,0x30,0x01,0x67,0x2b,0xfe,0xd7,0xab,0x76,
  0xca,0x82,0xc9,0x7d,0xfa,0x59,0x47,0xf0,0xad,0xd4,0xa2,0xaf,0x9c,0xa4,0x72,0xc0,
  0xb7,0xfd,0x93,0x26,0x36,0x3f,0xf7,0xcc,0x34,0xa5,0xe5,0xf1,0x71,0xd8,0x31,0x15,
  0x04,0xc7,0x23,0xc3,0x18,0x96,0x05,0x9a,0x07,0x12,0x80,0xe2,0xeb,0x27,0xb2,0x75,
  0x09,0x83,0x2c,0x1a,0x1b,0x6e,0x5a,0xa0,0x52,0x3b,0xd6,0xb3,0x29,0xe3,0x2f,0x84,
  0x53,0xd1,0x00,0xed,0x20,0xfc,0xb1,0x5b,0x6a,0xcb,0xbe,0x39,0x4a,0x4c,0x58,0xcf,
  0xd0,0xef,0xaa,0xfb,0x43,0x4d,0x33,0x85,0x45,0xf9,0x02,0x7f,0x50,0x3c,0x9f,0xa8,
  0x51,0xa3,0x40,0x8f,0x92,0x9d,0x38,0xf5,0xbc,0xb6,0xda,0x21,0x10,0xff,0xf3,0xd2,
  0xcd,0x0c,0x13,0xec,0x5f,0x97,0x44,0x17,0xc4,0xa7,0x7e,0x3d,0x64,0x5d,0x19,0x73,
  0x60,0x81,0x4f,0xdc,0x22,0x2a,0x90,0x88,0x46,0xee,0xb8,0x14,0xde,0x5e,0x0b,0xdb,
  0xe0,0x32,0x3a,0x0a,0x49,0x06,0x24,0x5c,0xc2,0xd3,0xac,0x62,0x91,0x95,0xe4,0x79,
  0xe7,0xc8,0x37,0x6d,0x8d,0xd5,0x4e,0xa9,0x6c,0x56,0xf4,0xea,0x65,0x7a,0xae,0x08,
  0xba,0x78,0x25,0x2e,0x1c,0xa6,0xb4,0xc6,0xe8,0xdd,0x74,0x1f,0x4b,0xbd,0x8b,0x8a,
  0x70,0x3e,0xb5,0x66,0x48,0x03,0xf6,0x0e,0x61,0x35,0x57,0xb9,0x86,0xc1,0x1d,0x9e,
  0xe1,0xf8,0x98,0x11,0x69,0xd9,0x8e,0x94,0x9b,0x1e,0x87,0xe9,0xce,0x55,0x28,0xdf,
  0x8c,0xa1,0x89,0x0d,0xbf,0xe6,0x42,0x68,0x41,0x99,0x2d,0x0f,0xb0,0x54,0xbb,0x16};

static uint8_t xtime(uint8_t x) { return (uint8_t)((x << 1) ^ ((x >> 7) * 0x1b)); }

void sn_aes256_expand(sn_aes256 *ks, const uint8_t key[32]) {
  uint8_t *w = ks->rk;
  uint8_t rcon = 1;
  memcpy(w, key, 32);
  for (int i = 8; i < 4 * (SN_AES256_ROUNDS + 1); i++) {
    uint8_t t[4];
    memcpy(t, w + 4 * (i - 1), 4);
    if (i % 8 == 0) {
      uint8_t t0 = t[0];
      t[0] = (uint8_t)(SBOX[t[1]] ^ rcon);
      t[1] = SBOX[t[2]];
      t[2] = SBOX[t[3]];
      t[3] = SBOX[t0];
      rcon = xtime(rcon);
    } else if (i % 8 == 4) {
      for (int j = 0; j < 4; j++) t[j] = SBOX[t[j]];
    }
    for (int j = 0; j < 4; j++) w[4 * i + j] = (uint8_t)(w[4 * (i - 8) + j] ^ t[j]);
  }
}

void sn_aes256_encrypt_block_portable(const sn_aes256 *ks, const uint8_t in[16], uint8_t out[16]) {
  uint8_t s[16], t[16];
  for (int i = 0; i < 16; i++) s[i] = (uint8_t)(in[i] ^ ks->rk[i]);
  for (int round = 1; round <= SN_AES256_ROUNDS; round++) {
    /* SubBytes + ShiftRows: state is column-major, s[r + 4c]. */
    for (int c = 0; c < 4; c++)
      for (int r = 0; r < 4; r++) t[r + 4 * c] = SBOX[s[r + 4 * ((c + r) & 3)]];
    if (round < SN_AES256_ROUNDS) {
      for (int c = 0; c < 4; c++) {
        uint8_t a0 = t[4 * c], a1 = t[4 * c + 1], a2 = t[4 * c + 2], a3 = t[4 * c + 3];
        uint8_t all = (uint8_t)(a0 ^ a1 ^ a2 ^ a3);
        s[4 * c] = (uint8_t)(a0 ^ all ^ xtime((uint8_t)(a0 ^ a1)));
        s[4 * c + 1] = (uint8_t)(a1 ^ all ^ xtime((uint8_t)(a1 ^ a2)));
        s[4 * c + 2] = (uint8_t)(a2 ^ all ^ xtime((uint8_t)(a2 ^ a3)));
        s[4 * c + 3] = (uint8_t)(a3 ^ all ^ xtime((uint8_t)(a3 ^ a0)));
      }
    } else {
      memcpy(s, t, 16);
    }
    for (int i = 0; i < 16; i++) s[i] ^= ks->rk[16 * round + i];
  }
  memcpy(out, s, 16);
}

static uint64_t load_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}
static void store_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}

/* SP 800-38D Algorithm 1 (bit-serial multiplication in GF(2^128)). */
void sn_gf128_mul(const uint8_t x[16], const uint8_t y[16], uint8_t out[16]) {
  uint64_t zh = 0, zl = 0, vh = load_be64(y), vl = load_be64(y + 8);
  for (int i = 0; i < 128; i++) {
    uint64_t bit = (uint64_t)((x[i >> 3] >> (7 - (i & 7))) & 1);
    uint64_t m = (uint64_t)0 - bit;
    zh ^= vh & m;
    zl ^= vl & m;
    uint64_t lsb = (uint64_t)0 - (vl & 1);
    vl = (vl >> 1) | (vh << 63);
    vh = (vh >> 1) ^ (0xe100000000000000ULL & lsb);
  }
  store_be64(out, zh);
  store_be64(out + 8, zl);
}

void sn_ghash_key_init(sn_ghash_key *hk, const sn_aes256 *ks) {
  uint8_t zero[16] = {0};
  uint8_t p[16];
  sn_aes256_encrypt_block_portable(ks, zero, hk->h);
  memcpy(p, hk->h, 16);
  for (int k = 0; k < SN_GHASH_POWERS; k++) {
    if (k > 0) sn_gf128_mul(p, hk->h, p);
    for (int j = 0; j < 16; j++) hk->hrev[k][j] = p[15 - j];
    memcpy(hk->hdesc[SN_GHASH_POWERS - 1 - k], hk->hrev[k], 16);
  }
}

static void ctr_xor_portable(const sn_aes256 *ks, const uint8_t prefix[12], uint32_t ctr,
                             const uint8_t *in, uint8_t *out, size_t len) {
  uint8_t cb[16], ksb[16];
  memcpy(cb, prefix, 12);
  while (len > 0) {
    cb[12] = (uint8_t)(ctr >> 24); cb[13] = (uint8_t)(ctr >> 16);
    cb[14] = (uint8_t)(ctr >> 8); cb[15] = (uint8_t)ctr;
    sn_aes256_encrypt_block_portable(ks, cb, ksb);
    size_t n = len < 16 ? len : 16;
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(in[i] ^ ksb[i]);
    in += n; out += n; len -= n;
    ctr++;
  }
}

static void ghash_portable(const sn_ghash_key *hk, uint8_t y[16], const uint8_t *data, size_t nblocks) {
  for (size_t b = 0; b < nblocks; b++) {
    for (int i = 0; i < 16; i++) y[i] ^= data[16 * b + i];
    sn_gf128_mul(y, hk->h, y);
  }
}

const sn_isa_ops sn_ops_portable = {"portable", ctr_xor_portable, ghash_portable, NULL, NULL};
