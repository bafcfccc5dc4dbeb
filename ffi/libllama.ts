/**
 * koffi declarations for the libllama C API of the prebuilt llama.cpp that node-llama-cpp 3.21.1
 * ships (`libllama.v0.4.0.so`, llama.cpp release tag v0.4.0, ggml 0.23.0). The struct layouts
 * below mirror include/llama.h and ggml/include/ggml.h of that exact build (read them from
 * node_modules/node-llama-cpp/llama/gitRelease.bundle). A layout copied from another release
 * corrupts memory silently, so `loadLibLlama()` checks struct sizes and the decoded values of
 * every `*_default_params()` at start-up and throws EngineError on any mismatch.
 *
 * Used only in child processes (llama.cpp aborts its process on some inputs): the profiler
 * worker (plugin/edges/profile/profile-worker.ts) and `quantizeModel`. Never load this from
 * worker_threads, and never in a process that also uses node-llama-cpp's addon.
 *
 * Pointers are BigInt (koffi 3). Decoding is synchronous on purpose: the eval callback runs on
 * the calling thread, and an async call would marshal every callback through the event loop.
 */
import koffi, { type LibraryHandle } from "koffi";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { EngineError } from "../plugin/errors.js";

/** llama.cpp release this binding was written against (llama/llama.cpp.info.json `tag`). */
export const LIBLLAMA_TAG = "v0.4.0";
/** Env override for the folder holding libllama.v0.4.0.so and the ggml backends. */
export const LLAMA_BINS_ENV = "SECNEURON_LLAMA_BINS";

// ---- ggml ----------------------------------------------------------------------------------

/** enum ggml_op: GGML_OP_MUL_MAT (checked against ggml_op_name at load). */
export const GGML_OP_MUL_MAT = 29;
export const GGML_TYPE_F32 = 0;
export const GGML_TYPE_F16 = 1;
export const GGML_TYPE_COUNT = 43;

/** struct ggml_tensor byte offsets (GGML_MAX_DIMS 4, GGML_MAX_SRC 10, GGML_MAX_NAME 64). */
export const GGML_TENSOR = {
  type: 0,
  buffer: 8,
  ne: 16,
  nb: 48,
  op: 80,
  src: 152,
  data: 248,
  name: 256,
  nameLength: 64,
  size: 336,
} as const;

/** enum ggml_log_level */
export const GgmlLogLevel = { NONE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, CONT: 5 } as const;

/** enum llama_ftype (the quantization of a whole model file). */
export const LlamaFtype = {
  ALL_F32: 0,
  MOSTLY_F16: 1,
  MOSTLY_Q4_0: 2,
  MOSTLY_Q4_1: 3,
  MOSTLY_Q8_0: 7,
  MOSTLY_Q5_0: 8,
  MOSTLY_Q5_1: 9,
  MOSTLY_Q2_K: 10,
  MOSTLY_Q3_K_S: 11,
  MOSTLY_Q3_K_M: 12,
  MOSTLY_Q3_K_L: 13,
  MOSTLY_Q4_K_S: 14,
  MOSTLY_Q4_K_M: 15,
  MOSTLY_Q5_K_S: 16,
  MOSTLY_Q5_K_M: 17,
  MOSTLY_Q6_K: 18,
  MOSTLY_IQ4_NL: 25,
  MOSTLY_IQ4_XS: 30,
  MOSTLY_BF16: 32,
} as const;
export type LlamaFtypeName = keyof typeof LlamaFtype;

// ---- structs (exact layouts of this build) --------------------------------------------------

const voidPtr = koffi.pointer("void");

/** bool (*ggml_backend_sched_eval_callback)(struct ggml_tensor * t, bool ask, void * user_data) */
const EvalCallback = koffi.proto("bool secneuron_llama_eval_cb(void *t, bool ask, void *user_data)");
/** void (*ggml_log_callback)(enum ggml_log_level level, const char * text, void * user_data) */
const LogCallback = koffi.proto("void secneuron_llama_log_cb(int level, const char *text, void *user_data)");

const LlamaModelParams = koffi.struct("secneuron_llama_model_params", {
  devices: voidPtr,
  tensor_buft_overrides: voidPtr,
  n_gpu_layers: "int32_t",
  split_mode: "int32_t",
  load_mode: "int32_t",
  lazy_mode: "int32_t",
  main_gpu: "int32_t",
  tensor_split: voidPtr,
  progress_callback: voidPtr,
  progress_callback_user_data: voidPtr,
  kv_overrides: voidPtr,
  vocab_only: "bool",
  check_tensors: "bool",
  use_extra_bufts: "bool",
  no_host: "bool",
  no_alloc: "bool",
  load_mtp: "bool",
});

const LlamaContextParams = koffi.struct("secneuron_llama_context_params", {
  n_ctx: "uint32_t",
  n_batch: "uint32_t",
  n_ubatch: "uint32_t",
  n_seq_max: "uint32_t",
  n_rs_seq: "uint32_t",
  n_outputs_max: "uint32_t",
  n_outputs_max_per_seq: "uint32_t",
  n_threads: "int32_t",
  n_threads_batch: "int32_t",
  ctx_type: "int32_t",
  rope_scaling_type: "int32_t",
  pooling_type: "int32_t",
  attention_type: "int32_t",
  flash_attn_type: "int32_t",
  rope_freq_base: "float",
  rope_freq_scale: "float",
  yarn_ext_factor: "float",
  yarn_attn_factor: "float",
  yarn_beta_fast: "float",
  yarn_beta_slow: "float",
  yarn_orig_ctx: "uint32_t",
  defrag_thold: "float",
  cb_eval: koffi.pointer(EvalCallback),
  cb_eval_user_data: voidPtr,
  type_k: "int32_t",
  type_v: "int32_t",
  abort_callback: voidPtr,
  abort_callback_data: voidPtr,
  embeddings: "bool",
  offload_kqv: "bool",
  no_perf: "bool",
  op_offload: "bool",
  swa_full: "bool",
  kv_unified: "bool",
  samplers: voidPtr,
  n_samplers: "size_t",
  ctx_other: voidPtr,
});

const LlamaQuantizeParams = koffi.struct("secneuron_llama_model_quantize_params", {
  nthread: "int32_t",
  ftype: "int32_t",
  output_tensor_type: "int32_t",
  token_embedding_type: "int32_t",
  allow_requantize: "bool",
  quantize_output_tensor: "bool",
  only_copy: "bool",
  pure: "bool",
  keep_split: "bool",
  dry_run: "bool",
  imatrix: voidPtr,
  kv_overrides: voidPtr,
  tt_overrides: voidPtr,
  prune_layers: voidPtr,
  max_buf_size: "size_t",
});

const LlamaBatch = koffi.struct("secneuron_llama_batch", {
  n_tokens: "int32_t",
  token: voidPtr,
  embd: voidPtr,
  pos: voidPtr,
  n_seq_id: voidPtr,
  seq_id: voidPtr,
  logits: voidPtr,
});

/** Sizes and offsets of this build; checked against koffi's layout at load. */
const EXPECTED_LAYOUT = {
  modelParams: 80,
  contextParams: 160,
  quantizeParams: 64,
  batch: 56,
  contextCbEvalOffset: 88,
  contextTypeKOffset: 104,
  contextEmbeddingsOffset: 128,
  modelVocabOnlyOffset: 72,
} as const;

export interface LlamaModelParams {
  devices: bigint | null;
  tensor_buft_overrides: bigint | null;
  n_gpu_layers: number;
  split_mode: number;
  load_mode: number;
  lazy_mode: number;
  main_gpu: number;
  tensor_split: bigint | null;
  progress_callback: bigint | null;
  progress_callback_user_data: bigint | null;
  kv_overrides: bigint | null;
  vocab_only: boolean;
  check_tensors: boolean;
  use_extra_bufts: boolean;
  no_host: boolean;
  no_alloc: boolean;
  load_mtp: boolean;
}

export interface LlamaContextParams {
  n_ctx: number;
  n_batch: number;
  n_ubatch: number;
  n_seq_max: number;
  n_rs_seq: number;
  n_outputs_max: number;
  n_outputs_max_per_seq: number;
  n_threads: number;
  n_threads_batch: number;
  ctx_type: number;
  rope_scaling_type: number;
  pooling_type: number;
  attention_type: number;
  flash_attn_type: number;
  rope_freq_base: number;
  rope_freq_scale: number;
  yarn_ext_factor: number;
  yarn_attn_factor: number;
  yarn_beta_fast: number;
  yarn_beta_slow: number;
  yarn_orig_ctx: number;
  defrag_thold: number;
  cb_eval: bigint | null;
  cb_eval_user_data: bigint | null;
  type_k: number;
  type_v: number;
  abort_callback: bigint | null;
  abort_callback_data: bigint | null;
  embeddings: boolean;
  offload_kqv: boolean;
  no_perf: boolean;
  op_offload: boolean;
  swa_full: boolean;
  kv_unified: boolean;
  samplers: bigint | null;
  n_samplers: number | bigint;
  ctx_other: bigint | null;
}

export interface LlamaQuantizeParams {
  nthread: number;
  ftype: number;
  output_tensor_type: number;
  token_embedding_type: number;
  allow_requantize: boolean;
  quantize_output_tensor: boolean;
  only_copy: boolean;
  pure: boolean;
  keep_split: boolean;
  dry_run: boolean;
  imatrix: bigint | null;
  kv_overrides: bigint | null;
  tt_overrides: bigint | null;
  prune_layers: bigint | null;
  max_buf_size: number | bigint;
}

export interface LlamaBatchStruct {
  n_tokens: number;
  token: bigint | null;
  embd: bigint | null;
  pos: bigint | null;
  n_seq_id: bigint | null;
  seq_id: bigint | null;
  logits: bigint | null;
}

/** Opaque handles (native addresses). */
export type LlamaModelHandle = bigint;
export type LlamaContextHandle = bigint;
export type LlamaVocabHandle = bigint;

/** The raw C functions this project uses, bound with their exact signatures. */
export interface LibLlamaFunctions {
  llama_backend_init(): void;
  llama_log_set(cb: bigint | null, userData: bigint | null): void;
  llama_model_default_params(): LlamaModelParams;
  llama_context_default_params(): LlamaContextParams;
  llama_model_quantize_default_params(): LlamaQuantizeParams;
  llama_model_load_from_file(path: string, params: LlamaModelParams): LlamaModelHandle | null;
  llama_model_free(model: LlamaModelHandle): void;
  llama_init_from_model(model: LlamaModelHandle, params: LlamaContextParams): LlamaContextHandle | null;
  llama_free(ctx: LlamaContextHandle): void;
  llama_model_get_vocab(model: LlamaModelHandle): LlamaVocabHandle;
  llama_model_n_layer(model: LlamaModelHandle): number;
  llama_model_n_embd(model: LlamaModelHandle): number;
  llama_model_n_ctx_train(model: LlamaModelHandle): number;
  llama_vocab_n_tokens(vocab: LlamaVocabHandle): number;
  llama_vocab_bos(vocab: LlamaVocabHandle): number;
  llama_vocab_eos(vocab: LlamaVocabHandle): number;
  llama_n_ctx(ctx: LlamaContextHandle): number;
  llama_n_batch(ctx: LlamaContextHandle): number;
  llama_n_ubatch(ctx: LlamaContextHandle): number;
  llama_get_memory(ctx: LlamaContextHandle): bigint;
  llama_memory_clear(mem: bigint, data: boolean): void;
  llama_tokenize(vocab: LlamaVocabHandle, text: Buffer, textLen: number, tokens: Int32Array, nMax: number, addSpecial: boolean, parseSpecial: boolean): number;
  llama_batch_init(nTokens: number, embd: number, nSeqMax: number): LlamaBatchStruct;
  llama_batch_free(batch: LlamaBatchStruct): void;
  llama_decode(ctx: LlamaContextHandle, batch: LlamaBatchStruct): number;
  llama_synchronize(ctx: LlamaContextHandle): void;
  /** Logits of output i of the last decode (n_vocab floats), null when i is not an output. */
  llama_get_logits_ith(ctx: LlamaContextHandle, i: number): bigint | null;
  llama_model_quantize(inPath: string, outPath: string, params: LlamaQuantizeParams): number;
  ggml_backend_load_all_from_path(dir: string): void;
  ggml_op_name(op: number): string;
  ggml_backend_buffer_is_host(buffer: bigint): boolean;
}

export interface LibLlama {
  readonly binsDir: string;
  readonly fn: LibLlamaFunctions;
  /** koffi.register an eval callback (caller must unregister). */
  registerEvalCallback(cb: (t: bigint, ask: boolean, userData: bigint | null) => boolean): bigint;
  unregister(cb: bigint): void;
}

// ---- loading ---------------------------------------------------------------------------------

/** The folder with libllama.v0.4.0.so, libggml*.so and the CPU backend variants. */
export function libllamaBinsDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const override = env[LLAMA_BINS_ENV];
  if (override) return override;
  const require = createRequire(import.meta.url);
  let pkgDir: string;
  try {
    pkgDir = dirname(require.resolve("@node-llama-cpp/linux-x64/package.json"));
  } catch {
    try {
      // The package's exports hide package.json on some resolvers: go through its main entry.
      pkgDir = join(dirname(require.resolve("@node-llama-cpp/linux-x64")), "..");
    } catch (e) {
      throw new EngineError("LLAMA_LIB_MISSING", `cannot find the prebuilt llama.cpp (@node-llama-cpp/linux-x64): ${(e as Error).message}`);
    }
  }
  return join(pkgDir, "bins", "linux-x64");
}

let loaded: LibLlama | undefined;

function mismatch(what: string, got: unknown, want: unknown): never {
  throw new EngineError(
    "LLAMA_ABI_MISMATCH",
    `libllama layout check failed: ${what} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)} (this binding mirrors llama.cpp ${LIBLLAMA_TAG} as shipped by node-llama-cpp 3.21.1)`,
    { what, got, want },
  );
}

function expectEq(what: string, got: unknown, want: unknown): void {
  const g = typeof got === "bigint" ? Number(got) : got;
  if (g !== want) mismatch(what, g, want);
}

/** Assert the decoded default parameters: a shifted field shows up here, before any load. */
function checkDefaults(fn: LibLlamaFunctions): void {
  expectEq("sizeof(llama_model_params)", koffi.sizeof(LlamaModelParams), EXPECTED_LAYOUT.modelParams);
  expectEq("sizeof(llama_context_params)", koffi.sizeof(LlamaContextParams), EXPECTED_LAYOUT.contextParams);
  expectEq("sizeof(llama_model_quantize_params)", koffi.sizeof(LlamaQuantizeParams), EXPECTED_LAYOUT.quantizeParams);
  expectEq("sizeof(llama_batch)", koffi.sizeof(LlamaBatch), EXPECTED_LAYOUT.batch);
  expectEq("offsetof(llama_context_params, cb_eval)", koffi.offsetof(LlamaContextParams, "cb_eval"), EXPECTED_LAYOUT.contextCbEvalOffset);
  expectEq("offsetof(llama_context_params, type_k)", koffi.offsetof(LlamaContextParams, "type_k"), EXPECTED_LAYOUT.contextTypeKOffset);
  expectEq("offsetof(llama_context_params, embeddings)", koffi.offsetof(LlamaContextParams, "embeddings"), EXPECTED_LAYOUT.contextEmbeddingsOffset);
  expectEq("offsetof(llama_model_params, vocab_only)", koffi.offsetof(LlamaModelParams, "vocab_only"), EXPECTED_LAYOUT.modelVocabOnlyOffset);

  const m = fn.llama_model_default_params();
  const mWant: Partial<Record<keyof LlamaModelParams, unknown>> = {
    devices: null, tensor_buft_overrides: null, n_gpu_layers: -1, split_mode: 1, load_mode: -1, lazy_mode: 1, main_gpu: 0,
    tensor_split: null, progress_callback: null, kv_overrides: null,
    vocab_only: false, check_tensors: false, use_extra_bufts: true, no_host: false, no_alloc: false, load_mtp: false,
  };
  for (const [k, v] of Object.entries(mWant)) expectEq(`llama_model_default_params().${k}`, m[k as keyof LlamaModelParams], v);

  const c = fn.llama_context_default_params();
  const cWant: Partial<Record<keyof LlamaContextParams, unknown>> = {
    n_ctx: 512, n_batch: 2048, n_ubatch: 512, n_seq_max: 1, n_rs_seq: 0, n_outputs_max: 0, n_outputs_max_per_seq: 1,
    n_threads: 4, n_threads_batch: 4, ctx_type: 0, rope_scaling_type: -1, pooling_type: -1, attention_type: -1, flash_attn_type: -1,
    rope_freq_base: 0, rope_freq_scale: 0, yarn_ext_factor: -1, yarn_attn_factor: -1, yarn_beta_fast: -1, yarn_beta_slow: -1,
    yarn_orig_ctx: 0, defrag_thold: -1, cb_eval: null, cb_eval_user_data: null, type_k: GGML_TYPE_F16, type_v: GGML_TYPE_F16,
    abort_callback: null, abort_callback_data: null,
    embeddings: false, offload_kqv: true, no_perf: true, op_offload: true, swa_full: true, kv_unified: false,
    samplers: null, n_samplers: 0, ctx_other: null,
  };
  for (const [k, v] of Object.entries(cWant)) expectEq(`llama_context_default_params().${k}`, c[k as keyof LlamaContextParams], v);

  const q = fn.llama_model_quantize_default_params();
  const qWant: Partial<Record<keyof LlamaQuantizeParams, unknown>> = {
    nthread: 0, ftype: LlamaFtype.MOSTLY_Q8_0, output_tensor_type: GGML_TYPE_COUNT, token_embedding_type: GGML_TYPE_COUNT,
    allow_requantize: false, quantize_output_tensor: true, only_copy: false, pure: false, keep_split: false, dry_run: false,
    imatrix: null, kv_overrides: null, tt_overrides: null, prune_layers: null, max_buf_size: 8 * 1024 * 1024 * 1024,
  };
  for (const [k, v] of Object.entries(qWant)) expectEq(`llama_model_quantize_default_params().${k}`, q[k as keyof LlamaQuantizeParams], v);

  expectEq("ggml_op_name(GGML_OP_MUL_MAT)", fn.ggml_op_name(GGML_OP_MUL_MAT), "MUL_MAT");
}

export interface LoadLibLlamaOptions {
  /** Default: env SECNEURON_LLAMA_BINS, else node_modules/@node-llama-cpp/linux-x64/bins/linux-x64. */
  readonly binsDir?: string;
  /** llama.cpp log messages at or above this level go to stderr (default WARN). */
  readonly logLevel?: number;
}

/**
 * dlopen libllama, load the ggml CPU backends from the same folder, bind the API and check the
 * layouts. Once per process; later calls return the same binding.
 */
export function loadLibLlama(options: LoadLibLlamaOptions = {}): LibLlama {
  if (loaded) return loaded;
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new EngineError("LLAMA_LIB_PLATFORM", `the libllama binding supports linux-x64 only (this is ${process.platform}-${process.arch})`);
  }
  const binsDir = options.binsDir ?? libllamaBinsDir();
  const llamaPath = join(binsDir, `libllama.${LIBLLAMA_TAG}.so`);
  const ggmlPath = join(binsDir, `libggml.${LIBLLAMA_TAG}.so`);
  const ggmlBasePath = join(binsDir, "libggml-base.so");
  for (const p of [llamaPath, ggmlPath, ggmlBasePath]) {
    if (!existsSync(p)) throw new EngineError("LLAMA_LIB_MISSING", `${p} does not exist (node-llama-cpp 3.21.1's prebuilt linux-x64 llama.cpp is expected)`, { path: p });
  }
  let llama: LibraryHandle;
  let ggml: LibraryHandle;
  let ggmlBase: LibraryHandle;
  try {
    ggmlBase = koffi.load(ggmlBasePath);
    ggml = koffi.load(ggmlPath);
    llama = koffi.load(llamaPath);
  } catch (e) {
    throw new EngineError("LLAMA_LIB_LOAD", `cannot load ${llamaPath}: ${(e as Error).message}`, { path: llamaPath });
  }
  const fn: LibLlamaFunctions = {
    llama_backend_init: llama.func("void llama_backend_init(void)"),
    llama_log_set: llama.func("void llama_log_set(secneuron_llama_log_cb *cb, void *user_data)"),
    llama_model_default_params: llama.func("secneuron_llama_model_params llama_model_default_params(void)"),
    llama_context_default_params: llama.func("secneuron_llama_context_params llama_context_default_params(void)"),
    llama_model_quantize_default_params: llama.func("secneuron_llama_model_quantize_params llama_model_quantize_default_params(void)"),
    llama_model_load_from_file: llama.func("void *llama_model_load_from_file(const char *path, secneuron_llama_model_params params)"),
    llama_model_free: llama.func("void llama_model_free(void *model)"),
    llama_init_from_model: llama.func("void *llama_init_from_model(void *model, secneuron_llama_context_params params)"),
    llama_free: llama.func("void llama_free(void *ctx)"),
    llama_model_get_vocab: llama.func("void *llama_model_get_vocab(void *model)"),
    llama_model_n_layer: llama.func("int32_t llama_model_n_layer(void *model)"),
    llama_model_n_embd: llama.func("int32_t llama_model_n_embd(void *model)"),
    llama_model_n_ctx_train: llama.func("int32_t llama_model_n_ctx_train(void *model)"),
    llama_vocab_n_tokens: llama.func("int32_t llama_vocab_n_tokens(void *vocab)"),
    llama_vocab_bos: llama.func("int32_t llama_vocab_bos(void *vocab)"),
    llama_vocab_eos: llama.func("int32_t llama_vocab_eos(void *vocab)"),
    llama_n_ctx: llama.func("uint32_t llama_n_ctx(void *ctx)"),
    llama_n_batch: llama.func("uint32_t llama_n_batch(void *ctx)"),
    llama_n_ubatch: llama.func("uint32_t llama_n_ubatch(void *ctx)"),
    llama_get_memory: llama.func("void *llama_get_memory(void *ctx)"),
    llama_memory_clear: llama.func("void llama_memory_clear(void *mem, bool data)"),
    llama_tokenize: llama.func(
      "int32_t llama_tokenize(void *vocab, const uint8_t *text, int32_t text_len, _Out_ int32_t *tokens, int32_t n_tokens_max, bool add_special, bool parse_special)",
    ),
    llama_batch_init: llama.func("secneuron_llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max)"),
    llama_batch_free: llama.func("void llama_batch_free(secneuron_llama_batch batch)"),
    llama_decode: llama.func("int32_t llama_decode(void *ctx, secneuron_llama_batch batch)"),
    llama_synchronize: llama.func("void llama_synchronize(void *ctx)"),
    llama_get_logits_ith: llama.func("void *llama_get_logits_ith(void *ctx, int32_t i)"),
    llama_model_quantize: llama.func(
      "uint32_t llama_model_quantize(const char *fname_inp, const char *fname_out, const secneuron_llama_model_quantize_params *params)",
    ),
    ggml_backend_load_all_from_path: ggml.func("void ggml_backend_load_all_from_path(const char *dir_path)"),
    ggml_op_name: ggmlBase.func("const char *ggml_op_name(int op)"),
    ggml_backend_buffer_is_host: ggmlBase.func("bool ggml_backend_buffer_is_host(void *buffer)"),
  };
  checkDefaults(fn);

  const minLevel = options.logLevel ?? GgmlLogLevel.WARN;
  let lastLevel: number = GgmlLogLevel.NONE;
  // Log messages arrive on the calling thread (decode is synchronous and single-threaded here).
  const logCb = koffi.register((level: number, text: string | null) => {
    const effective = level === GgmlLogLevel.CONT ? lastLevel : level;
    if (level !== GgmlLogLevel.CONT) lastLevel = level;
    if (effective >= minLevel && text) process.stderr.write(`[llama.cpp] ${text}`);
  }, koffi.pointer(LogCallback));
  fn.llama_log_set(logCb, null);
  // Backends first: without them llama.cpp reports "no backends are loaded".
  fn.ggml_backend_load_all_from_path(binsDir);
  fn.llama_backend_init();

  loaded = {
    binsDir,
    fn,
    registerEvalCallback(cb) {
      return koffi.register(cb, koffi.pointer(EvalCallback));
    },
    unregister(cb) {
      koffi.unregister(cb);
    },
  };
  return loaded;
}

// ---- helpers over raw memory -------------------------------------------------------------------

/** The name of a ggml tensor (NUL-terminated char[64] at offset 256). */
export function tensorName(t: bigint): string {
  return koffi.decode.string(t + BigInt(GGML_TENSOR.name));
}

export function tensorOp(t: bigint): number {
  return koffi.decode(t, GGML_TENSOR.op, "int32_t") as number;
}

export function tensorType(t: bigint): number {
  return koffi.decode(t, GGML_TENSOR.type, "int32_t") as number;
}

export function tensorSrc(t: bigint, i: number): bigint | null {
  return koffi.decode(t, GGML_TENSOR.src + 8 * i, "void *") as bigint | null;
}

export function tensorNe(t: bigint): number[] {
  return Array.from(koffi.decode(t, GGML_TENSOR.ne, "int64_t", 4) as ArrayLike<number | bigint>, Number);
}

export function tensorNb(t: bigint): number[] {
  return Array.from(koffi.decode(t, GGML_TENSOR.nb, "uint64_t", 4) as ArrayLike<number | bigint>, Number);
}

export function tensorData(t: bigint): bigint | null {
  return koffi.decode(t, GGML_TENSOR.data, "void *") as bigint | null;
}

export function tensorBuffer(t: bigint): bigint | null {
  return koffi.decode(t, GGML_TENSOR.buffer, "void *") as bigint | null;
}

/** An ArrayBuffer over native memory (no copy; valid while the memory is). */
export function nativeView(ptr: bigint, byteLength: number): ArrayBuffer {
  return koffi.view(ptr, byteLength);
}

/**
 * A llama_batch owned by JS: `capacity` tokens of one sequence (seq 0), with the `logits`
 * (output) flag of every token set. llama.cpp prunes non-output rows before the last layer's
 * FFN, so profiling needs every token marked as an output (llama_batch_get_one marks only the
 * last one). The arrays live in llama_batch_init memory; JS writes them through views.
 */
export class TokenBatch {
  private readonly raw: LlamaBatchStruct;
  readonly tokens: Int32Array;
  readonly pos: Int32Array;
  readonly logits: Int8Array;
  /** seq_id[i][0] of each token (one sequence per token): all 0 unless set. */
  readonly seq: Int32Array[];
  private freed = false;

  constructor(
    private readonly lib: LibLlama,
    readonly capacity: number,
  ) {
    this.raw = lib.fn.llama_batch_init(capacity, 0, 1);
    const { token, pos, n_seq_id, seq_id, logits } = this.raw;
    if (!token || !pos || !n_seq_id || !seq_id || !logits) throw new EngineError("LLAMA_BATCH_ALLOC", `llama_batch_init(${capacity}) returned null arrays`);
    this.tokens = new Int32Array(nativeView(token, capacity * 4));
    this.pos = new Int32Array(nativeView(pos, capacity * 4));
    this.logits = new Int8Array(nativeView(logits, capacity));
    new Int32Array(nativeView(n_seq_id, capacity * 4)).fill(1);
    const seqPtrs = new BigUint64Array(nativeView(seq_id, capacity * 8));
    this.seq = Array.from({ length: capacity }, (_, i) => new Int32Array(nativeView(seqPtrs[i]!, 4)));
    for (const s of this.seq) s[0] = 0;
    this.logits.fill(1);
  }

  /** The struct to pass to llama_decode for the first n tokens. */
  struct(n: number): LlamaBatchStruct {
    if (this.freed) throw new EngineError("LLAMA_BATCH_FREED", "batch already freed");
    if (!(n >= 1 && n <= this.capacity)) throw new EngineError("LLAMA_BATCH_SIZE", `batch of ${n} tokens exceeds capacity ${this.capacity}`);
    return { ...this.raw, n_tokens: n };
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.lib.fn.llama_batch_free(this.raw);
  }
}

/** Tokenize UTF-8 text with the model's vocabulary. */
export function tokenize(lib: LibLlama, vocab: LlamaVocabHandle, text: string, addSpecial: boolean): Int32Array {
  const bytes = Buffer.from(text, "utf8");
  let out = new Int32Array(bytes.length + 8);
  let n = lib.fn.llama_tokenize(vocab, bytes, bytes.length, out, out.length, addSpecial, false);
  if (n < 0) {
    if (n === -2147483648) throw new EngineError("LLAMA_TOKENIZE", "tokenization overflow");
    out = new Int32Array(-n);
    n = lib.fn.llama_tokenize(vocab, bytes, bytes.length, out, out.length, addSpecial, false);
    if (n < 0) throw new EngineError("LLAMA_TOKENIZE", `llama_tokenize failed (${n})`);
  }
  return out.subarray(0, n);
}

export interface QuantizeOptions {
  /** Quantizer threads (default 1). */
  readonly threads?: number;
  /** Allow re-quantizing already quantized tensors (default false). */
  readonly allowRequantize?: boolean;
  /** Quantize every tensor to the target type (no per-tensor mix; default false). */
  readonly pure?: boolean;
}

/**
 * llama_model_quantize(in, out, ftype) in this process. llama.cpp aborts its process on some
 * malformed inputs: validate `inPath` first (validateModelFile) or call from a child process.
 * K-quants (Q*_K) need rows that are a multiple of 256 elements.
 */
export function quantizeModel(inPath: string, outPath: string, ftype: number | LlamaFtypeName, options: QuantizeOptions = {}): void {
  const lib = loadLibLlama();
  const code = typeof ftype === "number" ? ftype : LlamaFtype[ftype];
  if (code === undefined || !Number.isInteger(code)) throw new EngineError("LLAMA_BAD_FTYPE", `unknown llama_ftype ${String(ftype)}`);
  const params = lib.fn.llama_model_quantize_default_params();
  params.ftype = code;
  params.nthread = options.threads ?? 1;
  params.allow_requantize = options.allowRequantize ?? false;
  params.pure = options.pure ?? false;
  const rc = lib.fn.llama_model_quantize(inPath, outPath, params);
  if (rc !== 0) throw new EngineError("LLAMA_QUANTIZE_FAILED", `llama_model_quantize(${inPath} -> ${outPath}, ftype ${code}) failed (${rc})`, { inPath, outPath, ftype: code, rc });
}
