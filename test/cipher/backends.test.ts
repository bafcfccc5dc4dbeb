/**
 * One suite, run over every backend available here (js always; c at each ISA level; cuda when
 * a device answers): identical bytes and tags to the reference, round trips, and detection of
 * every kind of tampering. Replay a failure with SECNEURON_TEST_SEED=<seed printed below>.
 */
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  decryptRowsReference,
  encryptRowsReference,
  RowSpanTable,
} from "../../plugin/core/cipher/row-cipher.js";
import type { RowCipherBackend } from "../../plugin/core/ports.js";
import { CryptoError } from "../../plugin/errors.js";
import { backendCases, GGML_ROW_BYTES_4096, rng, SEED, spansFor, toHex } from "./helpers.js";

const cases = backendCases();
console.log(`row-cipher backends: ${cases.map((c) => c.label).join(", ")}; seed ${SEED}`);

const ODD_LENGTHS = [0, 1, 2, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 1000, 4095, 4097];

describe.each(cases)("row cipher backend $label", ({ label, make, fast }) => {
  let be: RowCipherBackend;
  const rand = rng(SEED ^ label.length);
  beforeAll(() => {
    console.log(`${label}: ${make().detail}`);
  });
  beforeEach(() => {
    be = make();
  });

  it("matches the reference byte for byte on odd lengths and unaligned offsets", () => {
    const { spans, size } = spansFor(ODD_LENGTHS, 3, 1);
    const plain = rand(size);
    const key = rand(32);
    const ref = plain.slice();
    const refTags = encryptRowsReference(ref, spans, key);
    const data = plain.slice();
    const tags = be.encryptRows(data, spans, key);
    expect(toHex(tags)).toBe(toHex(refTags));
    expect(toHex(data)).toBe(toHex(ref));
    const res = be.decryptRows(data, spans, key, tags);
    expect(res.ok).toBe(true);
    expect(toHex(data)).toBe(toHex(plain));
  });

  it("matches the reference on every ggml row size (4096 elements) and 896/11008-wide rows", () => {
    const lengths = [...Object.values(GGML_ROW_BYTES_4096), (896 / 32) * 34, (11008 / 256) * 144, 11008 * 2];
    const reps = fast ? 3 : 1;
    const all = Array.from({ length: reps }, () => lengths).flat();
    const { spans, size } = spansFor(all);
    const plain = rand(size);
    const key = rand(32);
    const ref = plain.slice();
    const refTags = encryptRowsReference(ref, spans, key);
    const data = plain.slice();
    const tags = be.encryptRows(data, spans, key);
    expect(Buffer.from(tags).equals(Buffer.from(refTags))).toBe(true);
    expect(Buffer.from(data).equals(Buffer.from(ref))).toBe(true);
    expect(decryptRowsReference(ref, spans, key, refTags).ok).toBe(true);
    expect(be.decryptRows(data, spans, key, tags).ok).toBe(true);
    expect(Buffer.from(data).equals(Buffer.from(plain))).toBe(true);
  });

  // The js backend is too slow for multi-MiB batches inside npm test: only native backends run it.
  if (fast) it("round-trips a multi-MiB batch (threads engaged) and agrees with js", () => {
      const rows = 700;
      const { spans, size } = spansFor(new Array<number>(rows).fill(GGML_ROW_BYTES_4096.Q8_0!));
      const plain = rand(size);
      const key = rand(32);
      const data = plain.slice();
      const tags = be.encryptRows(data, spans, key);
      const viaJs = plain.slice();
      const jsTags = make === cases[0]!.make ? tags : cases[0]!.make().encryptRows(viaJs, spans, key);
      if (make !== cases[0]!.make) {
        expect(Buffer.from(jsTags).equals(Buffer.from(tags))).toBe(true);
        expect(Buffer.from(viaJs).equals(Buffer.from(data))).toBe(true);
      }
      const res = be.decryptRows(data, spans, key, tags);
      expect(res.failed).toBe(0);
      expect(Buffer.from(data).equals(Buffer.from(plain))).toBe(true);
    });

  it("detects a flipped ciphertext bit, a flipped tag bit, a wrong key and wrong ids; rejected rows stay unchanged", () => {
    const lengths = [4352, 33, 2304, 16, 8192, 1];
    const { spans, size } = spansFor(lengths);
    const plain = rand(size);
    const key = rand(32);
    const sealed = plain.slice();
    const tags = be.encryptRows(sealed, spans, key);

    // flipped ciphertext bit in row 0, flipped tag bit of row 3
    const data = sealed.slice();
    data[spans.offset(0) + 100]! ^= 0x10;
    const badTags = tags.slice();
    badTags[3 * 16 + 7]! ^= 0x01;
    const before = data.slice();
    const res = be.decryptRows(data, spans, key, badTags);
    expect(Array.from(res.rowOk)).toEqual([0, 1, 1, 0, 1, 1]);
    expect(res.failed).toBe(2);
    for (const i of [0, 3]) {
      const o = spans.offset(i);
      expect(toHex(data.subarray(o, o + spans.length(i)))).toBe(toHex(before.subarray(o, o + spans.length(i))));
    }
    for (const i of [1, 2, 4, 5]) {
      const o = spans.offset(i);
      expect(toHex(data.subarray(o, o + spans.length(i)))).toBe(toHex(plain.subarray(o, o + spans.length(i))));
    }

    // wrong key: every row rejected, buffer untouched
    const wrongKey = key.slice();
    wrongKey[31]! ^= 0x80;
    const d2 = sealed.slice();
    const r2 = be.decryptRows(d2, spans, wrongKey, tags);
    expect(r2.failed).toBe(lengths.length);
    expect(Buffer.from(d2).equals(Buffer.from(sealed))).toBe(true);

    // wrong (tensor, row) ids: a row moved to another place does not verify
    for (const [dt, dr] of [
      [1, 0],
      [0, 1],
    ] as const) {
      const moved = new RowSpanTable(lengths.length);
      for (let i = 0; i < spans.count; i++) {
        moved.push(spans.offset(i), spans.length(i), spans.tensorId(i) + dt, spans.rowId(i) + dr);
      }
      const d3 = sealed.slice();
      expect(be.decryptRows(d3, moved, key, tags).failed).toBe(lengths.length);
    }

    // swapped tags between two rows of equal length
    const { spans: twin, size: tsz } = spansFor([64, 64]);
    const t2 = rand(tsz);
    const tt = be.encryptRows(t2, twin, key);
    const swapped = new Uint8Array(32);
    swapped.set(tt.subarray(16, 32), 0);
    swapped.set(tt.subarray(0, 16), 16);
    expect(be.decryptRows(t2, twin, key, swapped).failed).toBe(2);
  });

  it("rejects bad arguments with typed errors", () => {
    const data = new Uint8Array(100);
    const out = RowSpanTable.from([{ offset: 90, length: 20, tensorId: 0, rowId: 0 }]);
    expect(() => be.encryptRows(data, out, new Uint8Array(32))).toThrow(CryptoError);
    const overlap = RowSpanTable.from([
      { offset: 0, length: 20, tensorId: 0, rowId: 0 },
      { offset: 10, length: 20, tensorId: 0, rowId: 1 },
    ]);
    expect(() => be.encryptRows(data, overlap, new Uint8Array(32))).toThrow(/overlap/);
    const ok = RowSpanTable.from([{ offset: 0, length: 20, tensorId: 0, rowId: 0 }]);
    expect(() => be.encryptRows(data, ok, new Uint8Array(16))).toThrow(/node key/);
    expect(() => be.decryptRows(data, ok, new Uint8Array(32), new Uint8Array(15))).toThrow(/tags/);
    expect(be.encryptRows(data, new RowSpanTable(), new Uint8Array(32)).length).toBe(0);
  });

  it("property: decrypt(encrypt(rows)) = rows and equals the reference", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 600 }), { minLength: 1, maxLength: 12 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 0xffff }),
        (lengths, key, seed) => {
          const { spans, size } = spansFor(lengths, seed % 7, seed % 3);
          const plain = rng(seed + 1)(size);
          const data = plain.slice();
          const tags = be.encryptRows(data, spans, key);
          const ref = plain.slice();
          expect(toHex(encryptRowsReference(ref, spans, key))).toBe(toHex(tags));
          expect(toHex(ref)).toBe(toHex(data));
          expect(be.decryptRows(data, spans, key, tags).ok).toBe(true);
          expect(toHex(data)).toBe(toHex(plain));
        },
      ),
      { numRuns: fast ? 40 : 8, seed: SEED },
    );
  });
});
