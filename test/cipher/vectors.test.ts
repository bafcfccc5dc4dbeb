/** Known answers: NIST SP 800-38A AES-256-CTR, GCM spec AES-256 cases, frozen row-v1 framing. */
import { BackendError } from "../../plugin/errors.js";
import { readFileSync } from "node:fs";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ctr, gcm } from "@noble/ciphers/aes.js";
import {
  deriveRowKey,
  openRowReference,
  rowAad,
  rowIv,
  RowSpanTable,
  sealRowReference,
} from "../../plugin/core/cipher/row-cipher.js";
import { describeBackends, loadBackend } from "../../ffi/load.js";
import type { NativeRowCipherBackend } from "../../ffi/backends/native.js";
import { backendCases, hex, toHex } from "./helpers.js";

const vec = (name: string) => JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), "utf8"));
const CTR = vec("aes256-ctr-sp800-38a.json") as {
  key: string; initialCounter: string; plaintext: string[]; ciphertext: string[];
};
const GCM = vec("aes256-gcm-nist.json") as {
  vectors: Array<{ name: string; key: string; iv: string; aad: string; pt: string; ct: string; tag: string }>;
};
const ROW = vec("secneuron-row-v1.json") as {
  nodeKey: string; rowKey: string; kdf: { salt: string; info: string };
  rows: Array<{ tensorId: number; rowId: number; length: number; iv: string; aad: string; plaintext: string; ciphertext: string; tag: string }>;
};

describe("NIST SP 800-38A F.5.5/F.5.6 AES-256-CTR", () => {
  const key = hex(CTR.key);
  const pt = hex(CTR.plaintext.join(""));
  const ct = CTR.ciphertext.join("");

  it("node:crypto and @noble/ciphers agree with the vector", () => {
    const c = createCipheriv("aes-256-ctr", key, hex(CTR.initialCounter));
    expect(toHex(c.update(pt))).toBe(ct);
    expect(toHex(ctr(key, hex(CTR.initialCounter)).encrypt(pt))).toBe(ct);
  });

  const c = describeBackends().find((s) => s.name === "c");
  if (!c?.available) {
    it("without a C kernel (no compiler at install), loading it is a BackendError", () => {
      expect(() => loadBackend("c")).toThrow(BackendError);
    });
  } else it("the C kernel's CTR core encrypts (F.5.5) and decrypts (F.5.6) at every ISA level", () => {
    const be = loadBackend("c") as NativeRowCipherBackend;
    const lib = be.library;
    const best = lib.setIsaLevel(-1);
    try {
      for (let level = best; level >= 0; level--) {
        expect(lib.setIsaLevel(level)).toBe(level);
        const d = pt.slice();
        expect(lib.aes256CtrXor(key, hex(CTR.initialCounter), d)).toBe(0);
        expect(toHex(d)).toBe(ct);
        expect(lib.aes256CtrXor(key, hex(CTR.initialCounter), d)).toBe(0);
        expect(toHex(d)).toBe(toHex(pt));
        // A longer run exercises the wide (8/16-block) loops against node:crypto.
        const long = new Uint8Array(16 * 300 + 5).map((_, i) => (i * 7) & 0xff);
        const want = createCipheriv("aes-256-ctr", key, hex(CTR.initialCounter)).update(long);
        lib.aes256CtrXor(key, hex(CTR.initialCounter), long);
        expect(toHex(long)).toBe(toHex(want));
      }
    } finally {
      lib.setIsaLevel(-1);
    }
  });
});

describe("GCM spec AES-256 test cases 13-16", () => {
  for (const v of GCM.vectors) {
    it(`${v.name}: @noble/ciphers (the reference's engine) and node:crypto (the js backend's)`, () => {
      const sealed = gcm(hex(v.key), hex(v.iv), hex(v.aad)).encrypt(hex(v.pt));
      expect(toHex(sealed)).toBe(v.ct + v.tag);
      const c = createCipheriv("aes-256-gcm", hex(v.key), hex(v.iv));
      c.setAAD(hex(v.aad));
      expect(toHex(Buffer.concat([c.update(hex(v.pt)), c.final()]))).toBe(v.ct);
      expect(toHex(c.getAuthTag())).toBe(v.tag);
      const d = createDecipheriv("aes-256-gcm", hex(v.key), hex(v.iv));
      d.setAAD(hex(v.aad));
      d.setAuthTag(hex(v.tag));
      expect(toHex(Buffer.concat([d.update(hex(v.ct)), d.final()]))).toBe(v.pt);
    });
  }
});

describe("frozen secneuron row-v1 vectors", () => {
  it("key derivation, IV and AAD layout", () => {
    expect(toHex(deriveRowKey(hex(ROW.nodeKey)))).toBe(ROW.rowKey);
    expect(Buffer.from(hex(ROW.kdf.salt)).toString()).toBe("secneuron/row-cipher/v1");
    expect(Buffer.from(hex(ROW.kdf.info)).toString()).toBe("aes-256-gcm row key");
    for (const r of ROW.rows) {
      expect(toHex(rowIv(r.tensorId, r.rowId))).toBe(r.iv);
      expect(toHex(rowAad(r.tensorId, r.rowId, r.length))).toBe(r.aad);
    }
  });

  it("the reference (noble) seals and opens each row", () => {
    const key = hex(ROW.rowKey);
    for (const r of ROW.rows) {
      const { ciphertext, tag } = sealRowReference(key, r.tensorId, r.rowId, hex(r.plaintext));
      expect(toHex(ciphertext)).toBe(r.ciphertext);
      expect(toHex(tag)).toBe(r.tag);
      expect(toHex(openRowReference(key, r.tensorId, r.rowId, hex(r.ciphertext), hex(r.tag))!)).toBe(r.plaintext);
      const bad = hex(r.tag);
      bad[0]! ^= 1;
      expect(openRowReference(key, r.tensorId, r.rowId, hex(r.ciphertext), bad)).toBeNull();
    }
  });

  for (const bc of backendCases()) {
    it(`backend ${bc.label} reproduces every frozen row in one batch`, () => {
      const be = bc.make();
      const spans = new RowSpanTable();
      let off = 1; // deliberately unaligned
      for (const r of ROW.rows) {
        spans.push(off, r.length, r.tensorId, r.rowId);
        off += r.length;
      }
      const data = new Uint8Array(off);
      ROW.rows.forEach((r, i) => data.set(hex(r.plaintext), spans.offset(i)));
      const tags = be.encryptRows(data, spans, hex(ROW.nodeKey));
      ROW.rows.forEach((r, i) => {
        const o = spans.offset(i);
        expect(toHex(data.subarray(o, o + r.length))).toBe(r.ciphertext);
        expect(toHex(tags.subarray(16 * i, 16 * i + 16))).toBe(r.tag);
      });
      expect(be.decryptRows(data, spans, hex(ROW.nodeKey), tags).ok).toBe(true);
      ROW.rows.forEach((r, i) => expect(toHex(data.subarray(spans.offset(i), spans.offset(i) + r.length))).toBe(r.plaintext));
    });
  }
});
