/**
 * The only koffi declarations in secneuron. Names and signatures mirror
 * kernels/include/secneuron_kernels.h (ABI version 1); `sn_span` arrays are passed as the packed
 * Uint32Array of a RowSpanTable (six u32 per row). koffi types never leave ffi/.
 */
import koffi from "koffi";
import { BackendError } from "../plugin/errors.js";

export const SN_ABI_VERSION = 1;

export const SnStatus = {
  OK: 0,
  ERR_ARG: 1,
  ERR_AUTH: 2,
  ERR_NOMEM: 3,
  ERR_THREAD: 4,
  ERR_NO_DEVICE: 5,
  ERR_CUDA: 6,
  ERR_UNSUPPORTED: 7,
} as const;
export type SnStatusCode = (typeof SnStatus)[keyof typeof SnStatus];

const STATUS_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(SnStatus).map(([k, v]) => [v, `SN_${k}`]),
);

export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? `SN_STATUS_${code}`;
}

/** Typed view of one loaded kernel library (C or CUDA). */
export interface SnLibrary {
  readonly path: string;
  abiVersion(): number;
  probe(): { status: number; detail: string };
  lastErrorDetail(): string;
  rowsEncrypt(
    rowKey: Uint8Array,
    base: Uint8Array,
    spans: Uint32Array,
    nRows: number,
    tags: Uint8Array,
    threads: number,
  ): number;
  rowsDecrypt(
    rowKey: Uint8Array,
    base: Uint8Array,
    spans: Uint32Array,
    nRows: number,
    tags: Uint8Array,
    rowOk: Uint8Array,
    threads: number,
  ): number;
  aes256CtrXor(key: Uint8Array, counterBlock: Uint8Array, data: Uint8Array): number;
  setIsaLevel(level: number): number;
  memcpy(dst: Uint8Array, src: Uint8Array, threads: number): number;
  unload(): void;
}

/** dlopens a kernel library and binds the ABI. Throws BackendError when it cannot. */
export function bindLibrary(path: string): SnLibrary {
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(path);
  } catch (err) {
    throw new BackendError("E_BACKEND_LOAD", `cannot load kernel library ${path}: ${(err as Error).message}`, {
      path,
    });
  }
  try {
    const abiVersion = lib.func("uint32_t sn_abi_version(void)");
    const probe = lib.func("int sn_probe(_Out_ uint8_t *detail, size_t detail_len)");
    const lastErr = lib.func("const char *sn_last_error_detail(void)");
    const enc = lib.func(
      "int sn_rows_encrypt(const uint8_t *row_key, _Inout_ uint8_t *base, uint64_t base_len, const void *spans, uint64_t n_rows, _Out_ uint8_t *tags, uint32_t threads)",
    );
    const dec = lib.func(
      "int sn_rows_decrypt(const uint8_t *row_key, _Inout_ uint8_t *base, uint64_t base_len, const void *spans, uint64_t n_rows, const uint8_t *tags, _Out_ uint8_t *row_ok, uint32_t threads)",
    );
    const ctr = lib.func(
      "int sn_aes256_ctr_xor(const uint8_t *key, const uint8_t *counter_block, _Inout_ uint8_t *data, uint64_t len)",
    );
    const isa = lib.func("int32_t sn_set_isa_level(int32_t level)");
    const mcp = lib.func("int sn_memcpy(_Out_ uint8_t *dst, const uint8_t *src, uint64_t len, uint32_t threads)");
    return {
      path,
      abiVersion: () => abiVersion() as number,
      probe: () => {
        const buf = Buffer.alloc(256);
        const status = probe(buf, buf.length) as number;
        const end = buf.indexOf(0);
        return { status, detail: buf.subarray(0, end < 0 ? buf.length : end).toString("utf8") };
      },
      lastErrorDetail: () => (lastErr() as string | null) ?? "",
      rowsEncrypt: (k, b, s, n, t, th) => enc(k, b, b.length, s, n, t, th) as number,
      rowsDecrypt: (k, b, s, n, t, ok, th) => dec(k, b, b.length, s, n, t, ok, th) as number,
      aes256CtrXor: (k, cb, d) => ctr(k, cb, d, d.length) as number,
      setIsaLevel: (level) => isa(level) as number,
      memcpy: (dst, src, th) => {
        if (dst.length < src.length) throw new BackendError("E_BACKEND_ARG", "memcpy: destination too small");
        return mcp(dst, src, src.length, th) as number;
      },
      unload: () => lib.unload(),
    };
  } catch (err) {
    lib.unload();
    if (err instanceof BackendError) throw err;
    throw new BackendError("E_BACKEND_ABI", `kernel library ${path} lacks the secneuron ABI: ${(err as Error).message}`, {
      path,
    });
  }
}
