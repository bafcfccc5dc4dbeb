/* C-level cross-check of the ISA levels (not part of the library build):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread kernels/c/test_row_cipher.c kernels/c/secneuron_c.c \
 *      kernels/c/aes_gcm_portable.c kernels/c/aes_gcm_x86.c -o /tmp/test_row_cipher && /tmp/test_row_cipher
 * Every level must give the portable level's ciphertext and tags on every length 0..1100 (and
 * some long rows) at odd offsets, on 1 and 2 threads (the batch is over 1 MiB), round-trip, and
 * reject a flipped bit leaving the row unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/secneuron_kernels.h"

SN_API int32_t sn_set_isa_level(int32_t level);

static uint64_t rs = 0x9e3779b97f4a7c15ULL;
static uint8_t rnd(void) {
  rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
  return (uint8_t)(rs >> 24);
}

int main(void) {
  enum { NL = 1100 + 8 };
  static sn_span sp[NL];
  size_t total = 0;
  for (int i = 0; i < NL; i++) {
    uint32_t len = i < 1100 ? (uint32_t)i : (uint32_t[]){4096, 4352, 8192, 11008, 65536 + 17, 4097, (1u << 20) + 13, 8192}[i - 1100];
    sp[i].offset = total + (i % 3);
    sp[i].length = len;
    sp[i].tensor_id = (uint32_t)i * 2654435761u;
    sp[i].row_id = (uint32_t)i ^ 0xffffffffu;
    total = sp[i].offset + len;
  }
  uint8_t *plain = malloc(total), *ref = malloc(total), *buf = malloc(total);
  uint8_t *reft = malloc(16 * NL), *tags = malloc(16 * NL), *ok = malloc(NL), key[32];
  for (size_t i = 0; i < total; i++) plain[i] = rnd();
  for (int i = 0; i < 32; i++) key[i] = rnd();
  int avail = sn_set_isa_level(-1), fails = 0;
  memcpy(ref, plain, total);
  sn_set_isa_level(0);
  if (sn_rows_encrypt(key, ref, total, sp, NL, reft, 1) != SN_OK) return 1;
  for (int lvl = 0; lvl <= avail; lvl++) {
    for (uint32_t th = 1; th <= 2; th++) {
      sn_set_isa_level(lvl);
      memcpy(buf, plain, total);
      if (sn_rows_encrypt(key, buf, total, sp, NL, tags, th) != SN_OK) { puts("enc status"); fails++; }
      for (int i = 0; i < NL; i++) {
        if (memcmp(tags + 16 * i, reft + 16 * i, 16) ||
            memcmp(buf + sp[i].offset, ref + sp[i].offset, sp[i].length)) {
          if (fails++ < 10) printf("level %d: row %d (len %u) encrypt differs\n", lvl, i, sp[i].length);
        }
      }
      /* tamper one row per 7 with a flipped bit (or a flipped tag bit for empty rows) */
      uint8_t *t2 = malloc(16 * NL);
      memcpy(t2, reft, 16 * NL);
      memcpy(buf, ref, total);
      for (int i = 0; i < NL; i += 7) {
        if (sp[i].length) buf[sp[i].offset + (i * 31) % sp[i].length] ^= (uint8_t)(1 << (i % 8));
        else t2[16 * i + 5] ^= 1;
      }
      uint8_t *before = malloc(total);
      memcpy(before, buf, total);
      sn_status st = sn_rows_decrypt(key, buf, total, sp, NL, t2, ok, th);
      if (st != SN_ERR_AUTH) { printf("level %d: decrypt status %d\n", lvl, st); fails++; }
      for (int i = 0; i < NL; i++) {
        const uint8_t *want = i % 7 == 0 ? before : plain;
        if (ok[i] != (i % 7 != 0) || memcmp(buf + sp[i].offset, want + sp[i].offset, sp[i].length)) {
          if (fails++ < 10) printf("level %d: row %d (len %u) decrypt wrong (ok=%d)\n", lvl, i, sp[i].length, ok[i]);
        }
      }
      free(before);
      free(t2);
    }
    printf("level %d ok so far (%d failures)\n", lvl, fails);
  }
  printf(fails ? "FAIL\n" : "PASS\n");
  return fails != 0;
}
