/**
 * The profiler's llama.cpp child. Started by profile-process.ts with an IPC channel; binds
 * libllama directly through koffi (ffi/libllama.ts, no node-llama-cpp addon in this process),
 * then serves requests in order: load a model, run tasks, exit. llama.cpp may abort this
 * process on a malformed model: the parent validates every file first and reports any exit.
 *
 * Capture: the context's `cb_eval` is a koffi-registered JS function. In the ask phase it
 * returns true for GGML_OP_MUL_MAT nodes whose src[0] is `blk.N.ffn_down.weight`; in the data
 * phase src[1] (F32, [n_ff, n_tokens]) holds, per token, the input of ffn_down:
 * silu(gate·x) * (up·x), one value per FFN neuron. Sums of |a| and a^2 accumulate per task,
 * layer and neuron in Float64Arrays. Every batch is one ubatch (n_batch = n_ubatch) of one
 * sequence with every token marked as an output, so column j of src[1] is token j of the batch
 * in every layer (llama.cpp drops non-output rows before the last layer's FFN otherwise).
 * Attention heads: MUL_MAT nodes whose src[0] is `blk.N.attn_output.weight` are captured the same
 * way; src[1] (F32, [n_head*hd, n_tokens]) is the per-head attention output, and sums of |a| per
 * feature go back to the parent, which averages them per head group (profile `heads`).
 * llama_decode is called synchronously: the callback runs on this thread during the call. The
 * data phase of the last layer returns false, which ends the graph there: the last ffn_down and
 * the output head are never computed (their results would be thrown away), and llama_decode
 * still returns 0 with the KV cache of every layer written.
 */
import { EngineError } from "../../errors.js";
import {
  GGML_OP_MUL_MAT,
  GGML_TYPE_F16,
  GGML_TYPE_F32,
  TokenBatch,
  loadLibLlama,
  nativeView,
  tensorBuffer,
  tensorData,
  tensorName,
  tensorNb,
  tensorNe,
  tensorOp,
  tensorSrc,
  tensorType,
  tokenize,
  type LibLlama,
  type LlamaContextHandle,
  type LlamaModelHandle,
  type LlamaVocabHandle,
} from "../../../ffi/libllama.js";
import { serveRequests } from "../child-rpc-worker.js";
import type {
  ProfileLoadResult,
  ProfileMessage,
  ProfileRequest,
  ProfileRunRequest,
  ProfileRunResult,
  ProfileScorePrepareRequest,
  ProfileScorePrepareResult,
  TaskActivationSums,
} from "./protocol.js";

const send = serveRequests<ProfileRequest, ProfileMessage>("profile worker", handle, { errorCode: true });

const FFN_DOWN = /^blk\.(\d+)\.ffn_down\.weight$/;
const ATTN_OUTPUT = /^blk\.(\d+)\.attn_output\.weight$/;

interface Loaded {
  readonly model: LlamaModelHandle;
  readonly vocab: LlamaVocabHandle;
  readonly info: ProfileLoadResult;
}

let lib: LibLlama;
let loaded: Loaded | undefined;

function unload(): void {
  freeScorer();
  if (!loaded) return;
  lib.fn.llama_model_free(loaded.model);
  loaded = undefined;
}

function load(modelPath: string, mapped: boolean): ProfileLoadResult {
  unload();
  const t0 = performance.now();
  const mp = lib.fn.llama_model_default_params();
  mp.n_gpu_layers = 0;
  if (mapped) {
    mp.load_mode = 1; // LLAMA_LOAD_MODE_MMAP
    mp.use_extra_bufts = false; // no repacked copies of the weights
  }
  const model = lib.fn.llama_model_load_from_file(modelPath, mp);
  if (!model) throw new EngineError("LLAMA_LOAD_FAILED", `llama.cpp could not load ${modelPath}`, { modelPath });
  const vocab = lib.fn.llama_model_get_vocab(model);
  const info: ProfileLoadResult = {
    loadMs: performance.now() - t0,
    nLayer: lib.fn.llama_model_n_layer(model),
    nEmbd: lib.fn.llama_model_n_embd(model),
    nVocab: lib.fn.llama_vocab_n_tokens(vocab),
    trainContextSize: lib.fn.llama_model_n_ctx_train(model),
  };
  loaded = { model, vocab, info };
  return info;
}

/** State shared with the eval callback for the batch being decoded. */
interface Capture {
  /** Per layer accumulators of the current task (allocated on first sight, n_ff wide). */
  sumAbs: Float64Array[];
  sumSq: Float64Array[];
  nFf: number;
  /** Per layer: sum over tokens of |a| per attention output feature (input of attn_output). */
  attnSumAbs: Float64Array[];
  attnSumSq: Float64Array[];
  /** Attention output width (n_head * head_dim; 0 until seen). */
  nAttn: number;
  attnSeen: Uint8Array;
  /** Tokens in the batch being decoded. */
  batchTokens: number;
  /** Columns at the start of the batch to leave out (a BOS token). */
  skip: number;
  /** Layers seen during the current decode. */
  seen: Uint8Array;
  error: Error | undefined;
  callbackMs: number;
  hostChecked: Set<bigint>;
  /** End each graph after the last layer's capture (skips the rest of the forward pass). */
  stopAfterLastLayer: boolean;
}

/**
 * sa[i] += sum_j |v[j][i]|, sq[i] += sum_j v[j][i]^2 for tokens j in [skip, n1). Four tokens per
 * pass (a quarter of the accumulator traffic): ~1 ns per value on one core.
 */
function accumulate(v: Float32Array, stride: number, skip: number, n1: number, n0: number, sa: Float64Array, sq: Float64Array): void {
  let j = skip;
  for (; j + 4 <= n1; j += 4) {
    const b0 = j * stride;
    const b1 = b0 + stride;
    const b2 = b1 + stride;
    const b3 = b2 + stride;
    for (let i = 0; i < n0; i++) {
      const x0 = v[b0 + i]!;
      const x1 = v[b1 + i]!;
      const x2 = v[b2 + i]!;
      const x3 = v[b3 + i]!;
      sa[i]! += Math.abs(x0) + Math.abs(x1) + Math.abs(x2) + Math.abs(x3);
      sq[i]! += x0 * x0 + x1 * x1 + x2 * x2 + x3 * x3;
    }
  }
  for (; j < n1; j++) {
    const b = j * stride;
    for (let i = 0; i < n0; i++) {
      const x = v[b + i]!;
      sa[i]! += Math.abs(x);
      sq[i]! += x * x;
    }
  }
}

function makeCallback(cap: Capture, nLayer: number): (t: bigint, ask: boolean) => boolean {
  // src[0] pointers are the model's weight tensors: stable across decodes, so cache name lookups.
  // Value: layer (ffn_down) or nLayer + layer (attn_output); -1 for other weights.
  const layerOf = new Map<bigint, number>();
  const layerOfWeight = (w: bigint): number => {
    let l = layerOf.get(w);
    if (l === undefined) {
      const name = tensorName(w);
      const m = FFN_DOWN.exec(name);
      const a = m ? null : ATTN_OUTPUT.exec(name);
      l = m ? Number(m[1]) : a ? Number(a[1]) : -1;
      if (l >= nLayer) l = -1;
      if (a && l >= 0) l += nLayer;
      layerOf.set(w, l);
    }
    return l;
  };
  return (t, ask) => {
    try {
      if (ask) {
        if (tensorOp(t) !== GGML_OP_MUL_MAT) return false;
        const w = tensorSrc(t, 0);
        return w !== null && layerOfWeight(w) >= 0;
      }
      const c0 = performance.now();
      const w = tensorSrc(t, 0);
      const coded = w === null ? -1 : layerOfWeight(w);
      if (coded < 0) return true;
      const attn = coded >= nLayer;
      const layer = attn ? coded - nLayer : coded;
      const what = attn ? "attn_output" : "ffn_down";
      const a = tensorSrc(t, 1);
      if (a === null) throw new EngineError("PROFILE_GRAPH", `${what} of layer ${layer} has no input`);
      const type = tensorType(a);
      if (type !== GGML_TYPE_F32) throw new EngineError("PROFILE_GRAPH", `${what} input of layer ${layer} is ggml type ${type}, expected F32`);
      const [ne0, ne1, ne2, ne3] = tensorNe(a) as [number, number, number, number];
      const nb = tensorNb(a);
      if (ne2 !== 1 || ne3 !== 1) throw new EngineError("PROFILE_GRAPH", `${what} input of layer ${layer} has shape [${ne0}, ${ne1}, ${ne2}, ${ne3}]`);
      if (ne1 !== cap.batchTokens) {
        throw new EngineError("PROFILE_GRAPH", `${what} input of layer ${layer} has ${ne1} tokens, the batch has ${cap.batchTokens} (outputs not kept?)`);
      }
      if (nb[0] !== 4 || nb[1]! % 4 !== 0) throw new EngineError("PROFILE_GRAPH", `${what} input of layer ${layer} is not row-contiguous`);
      const buffer = tensorBuffer(a);
      if (buffer !== null && !cap.hostChecked.has(buffer)) {
        if (!lib.fn.ggml_backend_buffer_is_host(buffer)) throw new EngineError("PROFILE_GRAPH", "activations are not in host memory (GPU offload is not supported)");
        cap.hostChecked.add(buffer);
      }
      const data = tensorData(a);
      if (data === null) throw new EngineError("PROFILE_GRAPH", `${what} input of layer ${layer} has no data`);
      // FFN: one value per neuron. Attention: the output before attn_output, n_head * head_dim
      // features per token, head h's at [h*hd, (h+1)*hd) (grouped into head groups by the parent).
      const width = attn ? cap.nAttn : cap.nFf;
      if (width !== 0 && width !== ne0) {
        throw new EngineError("PROFILE_GRAPH", `layer ${layer} has ${ne0} ${attn ? "attention output features" : "FFN neurons"}, earlier layers ${width}`);
      }
      if (attn) cap.nAttn = ne0;
      else cap.nFf = ne0;
      const sums = attn ? [cap.attnSumAbs, cap.attnSumSq] : [cap.sumAbs, cap.sumSq];
      const sa = (sums[0]![layer] ??= new Float64Array(ne0));
      const sq = (sums[1]![layer] ??= new Float64Array(ne0));
      const stride = nb[1]! / 4;
      accumulate(new Float32Array(nativeView(data, (stride * (ne1 - 1) + ne0) * 4)), stride, cap.skip, ne1, ne0, sa, sq);
      (attn ? cap.attnSeen : cap.seen)[layer] = 1;
      cap.callbackMs += performance.now() - c0;
      if (attn) return true;
      // After the last layer's activations nothing else in the graph is needed (the KV cache of
      // every layer is already written): returning false ends the graph here, saving the last
      // ffn_down and the output head. Logits of such a batch are garbage and never read.
      return !(cap.stopAfterLastLayer && layer === nLayer - 1);
    } catch (e) {
      // Returning false (or throwing) silently stops the graph while llama_decode returns 0:
      // remember the error, keep going, and fail after the decode.
      cap.error ??= e instanceof Error ? e : new Error(String(e));
      return !ask;
    }
  };
}

interface Sample {
  readonly tokens: Int32Array;
  /** Leading tokens evaluated but not counted (the BOS). */
  readonly skip: number;
}

function run(req: ProfileRunRequest): ProfileRunResult {
  if (!loaded) throw new Error("no model is loaded");
  const { model, vocab, info } = loaded;
  const nCtx = Math.max(1, Math.min(req.contextSize, info.trainContextSize > 0 ? info.trainContextSize : req.contextSize));
  const nBatch = Math.max(1, Math.min(req.batchSize, nCtx));
  const bos = lib.fn.llama_vocab_bos(vocab);

  // Tokenize everything first: the plan gives the progress total.
  const plan: Array<{ name: string; samples: Sample[]; evaluate: number }> = [];
  let total = 0;
  for (const task of req.tasks) {
    const samples: Sample[] = [];
    let budget = req.maxTokens > 0 ? req.maxTokens : Number.POSITIVE_INFINITY;
    let evaluate = 0;
    for (const line of task.lines) {
      if (budget <= 0) break;
      if (line.length === 0) continue;
      let toks = tokenize(lib, vocab, line, req.addSpecial);
      const skip = !req.includeBos && req.addSpecial && toks.length > 0 && toks[0] === bos ? 1 : 0;
      if (toks.length - skip <= 0) continue;
      if (toks.length - skip > budget) toks = toks.subarray(0, skip + budget);
      budget -= toks.length - skip;
      evaluate += toks.length;
      samples.push({ tokens: toks, skip });
    }
    plan.push({ name: task.name, samples, evaluate });
    total += evaluate;
  }

  const cap: Capture = {
    sumAbs: [],
    sumSq: [],
    nFf: 0,
    attnSumAbs: [],
    attnSumSq: [],
    nAttn: 0,
    attnSeen: new Uint8Array(info.nLayer),
    batchTokens: 0,
    skip: 0,
    seen: new Uint8Array(info.nLayer),
    error: undefined,
    callbackMs: 0,
    hostChecked: new Set(),
    stopAfterLastLayer: req.collect && req.outputs === "all",
  };
  const cb = req.collect ? lib.registerEvalCallback(makeCallback(cap, info.nLayer)) : null;
  const cp = lib.fn.llama_context_default_params();
  cp.n_ctx = nCtx;
  cp.n_batch = nBatch;
  cp.n_ubatch = nBatch;
  cp.n_seq_max = 1;
  cp.n_threads = req.threads;
  cp.n_threads_batch = req.threads;
  cp.flash_attn_type = 0; // disabled: the plain CPU attention path, F32 KV if asked
  cp.type_k = req.kvType === "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
  cp.type_v = cp.type_k;
  cp.cb_eval = cb;
  cp.cb_eval_user_data = null;
  cp.no_perf = true;
  let ctx: LlamaContextHandle | null = null;
  let batch: TokenBatch | undefined;
  try {
    ctx = lib.fn.llama_init_from_model(model, cp);
    if (!ctx) throw new EngineError("LLAMA_CONTEXT_FAILED", `llama.cpp could not create a context (n_ctx ${nCtx}, n_batch ${nBatch})`);
    const mem = lib.fn.llama_get_memory(ctx);
    batch = new TokenBatch(lib, nBatch);
    if (req.outputs === "last") batch.logits.fill(0);
    const tasks: TaskActivationSums[] = [];
    let done = 0;
    let decodeMs = 0;
    let decodeCalls = 0;
    let lastProgress = 0;
    for (const task of plan) {
      cap.sumAbs = [];
      cap.sumSq = [];
      cap.attnSumAbs = [];
      cap.attnSumSq = [];
      let counted = 0;
      for (const s of task.samples) {
        // Windows of at most n_ctx tokens, each from an empty context.
        for (let w0 = 0; w0 < s.tokens.length; w0 += nCtx) {
          const window = s.tokens.subarray(w0, Math.min(s.tokens.length, w0 + nCtx));
          lib.fn.llama_memory_clear(mem, true);
          for (let b0 = 0; b0 < window.length; b0 += nBatch) {
            const n = Math.min(nBatch, window.length - b0);
            batch.tokens.set(window.subarray(b0, b0 + n));
            for (let j = 0; j < n; j++) batch.pos[j] = b0 + j;
            if (req.outputs === "last") {
              batch.logits.fill(0, 0, n);
              batch.logits[n - 1] = 1;
            }
            cap.batchTokens = n;
            cap.skip = w0 === 0 && b0 === 0 ? s.skip : 0;
            cap.seen.fill(0);
            cap.attnSeen.fill(0);
            const t0 = performance.now();
            const rc = lib.fn.llama_decode(ctx, batch.struct(n));
            decodeMs += performance.now() - t0;
            decodeCalls++;
            if (rc !== 0) throw new EngineError("LLAMA_DECODE_FAILED", `llama_decode returned ${rc} (task ${task.name}, ${n} tokens at position ${b0})`, { rc });
            if (cap.error) throw cap.error;
            if (req.collect) {
              const missing = [];
              for (let l = 0; l < info.nLayer; l++) if (!cap.seen[l]) missing.push(l);
              if (missing.length) throw new EngineError("PROFILE_GRAPH", `no ffn_down input captured for layer(s) ${missing.join(", ")} (not a dense llama FFN?)`);
              for (let l = 0; l < info.nLayer; l++) if (!cap.attnSeen[l]) missing.push(l);
              if (missing.length) throw new EngineError("PROFILE_GRAPH", `no attn_output input captured for layer(s) ${missing.join(", ")}`);
            }
            counted += n - cap.skip;
            done += n;
            const now = performance.now();
            if (now - lastProgress > 200) {
              lastProgress = now;
              send({ type: "progress", id: req.id, task: task.name, done, total });
            }
          }
        }
      }
      const nFf = cap.nFf;
      const fill = (arr: Float64Array[], n = nFf): Float64Array[] => Array.from({ length: req.collect ? info.nLayer : 0 }, (_, l) => arr[l] ?? new Float64Array(n));
      tasks.push({
        name: task.name, tokens: counted, evaluated: task.evaluate, samples: task.samples.length, sumAbs: fill(cap.sumAbs), sumSq: fill(cap.sumSq),
        attnSumAbs: fill(cap.attnSumAbs, cap.nAttn),
      });
    }
    send({ type: "progress", id: req.id, task: plan[plan.length - 1]?.name ?? "", done, total });
    return { tasks, nFf: cap.nFf, nAttn: cap.nAttn, decodeMs, callbackMs: cap.callbackMs, decodeCalls, tokensEvaluated: done, contextSize: nCtx, batchSize: nBatch };
  } finally {
    batch?.free();
    if (ctx) lib.fn.llama_free(ctx);
    if (cb !== null) lib.unregister(cb);
  }
}

// ---- scoring (ablation) --------------------------------------------------------------------

interface Scorer {
  readonly ctx: LlamaContextHandle;
  readonly batch: TokenBatch;
  readonly nVocab: number;
  /** Per task: examples as (tokens, index of the first scored target). */
  readonly tasks: Array<Array<{ tokens: Int32Array; first: number }>>;
  readonly counts: number[];
}

let scorer: Scorer | undefined;

function freeScorer(): void {
  if (!scorer) return;
  scorer.batch.free();
  lib.fn.llama_free(scorer.ctx);
  scorer = undefined;
}

/** Sequences packed into one decode, and tokens per decode, when scoring. */
const SCORE_SEQS = 4;
const SCORE_BATCH = 256;

function prepareScorer(req: ProfileScorePrepareRequest): ProfileScorePrepareResult {
  if (!loaded) throw new Error("no model is loaded");
  freeScorer();
  const { model, vocab, info } = loaded;
  const nCtx = Math.max(8, Math.min(req.contextSize, info.trainContextSize > 0 ? info.trainContextSize : req.contextSize));
  const bos = lib.fn.llama_vocab_bos(vocab);
  const eos = lib.fn.llama_vocab_eos(vocab);
  const tasks: Scorer["tasks"] = [];
  const counts: number[] = [];
  const items: number[] = [];
  for (const t of req.tasks) {
    const list: Scorer["tasks"][number] = [];
    let n = 0;
    for (const it of t.items) {
      const p = tokenize(lib, vocab, it.prompt, true);
      const all = tokenize(lib, vocab, it.prompt + it.answer, true);
      // The answer's tokens as the model reads them after the prompt (same prefix), else alone.
      const samePrefix = p.every((x, i) => all[i] === x);
      const ans = samePrefix ? all.subarray(p.length) : tokenize(lib, vocab, it.answer, false);
      const prompt = p.length > 0 ? p : bos >= 0 ? Int32Array.of(bos) : p;
      const targets = req.scoreEos && eos >= 0 ? Int32Array.of(...ans, eos) : ans;
      if (prompt.length === 0 || targets.length === 0 || prompt.length + targets.length - 1 > Math.min(nCtx, SCORE_BATCH)) continue;
      const tokens = new Int32Array(prompt.length + targets.length);
      tokens.set(prompt);
      tokens.set(targets, prompt.length);
      list.push({ tokens, first: prompt.length });
      n += targets.length;
    }
    tasks.push(list);
    counts.push(n);
    items.push(list.length);
  }
  // A few short examples per decode (one sequence each, positions from 0). Arithmetic dominates:
  // bigger packs only add masked attention work. One unified KV buffer holds the batch.
  const cp = lib.fn.llama_context_default_params();
  cp.n_ctx = SCORE_BATCH;
  cp.n_batch = SCORE_BATCH;
  cp.n_ubatch = SCORE_BATCH;
  cp.n_seq_max = SCORE_SEQS;
  cp.kv_unified = true;
  cp.n_threads = req.threads;
  cp.n_threads_batch = req.threads;
  cp.flash_attn_type = 0;
  cp.type_k = GGML_TYPE_F32; // exact: ablation effects can be small
  cp.type_v = GGML_TYPE_F32;
  cp.no_perf = true;
  const ctx = lib.fn.llama_init_from_model(model, cp);
  if (!ctx) throw new EngineError("LLAMA_CONTEXT_FAILED", `llama.cpp could not create a scoring context (n_ctx ${SCORE_BATCH}, ${SCORE_SEQS} sequences)`);
  scorer = { ctx, batch: new TokenBatch(lib, SCORE_BATCH), nVocab: info.nVocab, tasks, counts };
  return { tokens: counts, items };
}

function score(): number[] {
  const s = scorer;
  if (!s) throw new Error("score-prepare first");
  const mem = lib.fn.llama_get_memory(s.ctx);
  const out: number[] = [];
  for (let t = 0; t < s.tasks.length; t++) {
    const list = s.tasks[t]!;
    let nll = 0;
    for (let k = 0; k < list.length; ) {
      // Pack examples: everything but each one's last target, outputs from its last prompt token on.
      const packed: Array<{ at: number; ex: (typeof list)[number] }> = [];
      let n = 0;
      while (k < list.length && packed.length < SCORE_SEQS && n + list[k]!.tokens.length - 1 <= SCORE_BATCH) {
        const ex = list[k++]!;
        const len = ex.tokens.length - 1;
        const seq = packed.length;
        s.batch.tokens.set(ex.tokens.subarray(0, len), n);
        for (let j = 0; j < len; j++) {
          s.batch.pos[n + j] = j;
          s.batch.seq[n + j]![0] = seq;
          s.batch.logits[n + j] = j >= ex.first - 1 ? 1 : 0;
        }
        packed.push({ at: n, ex });
        n += len;
      }
      lib.fn.llama_memory_clear(mem, true);
      const rc = lib.fn.llama_decode(s.ctx, s.batch.struct(n));
      if (rc !== 0) throw new EngineError("LLAMA_DECODE_FAILED", `llama_decode returned ${rc} while scoring`, { rc });
      for (const { at, ex } of packed) {
        for (let j = ex.first - 1; j < ex.tokens.length - 1; j++) {
          const ptr = lib.fn.llama_get_logits_ith(s.ctx, at + j);
          if (ptr === null) throw new EngineError("LLAMA_NO_LOGITS", `no logits for batch position ${at + j}`);
          const lg = new Float32Array(nativeView(ptr, s.nVocab * 4));
          let max = -Infinity;
          for (let v = 0; v < s.nVocab; v++) if (lg[v]! > max) max = lg[v]!;
          let sum = 0;
          for (let v = 0; v < s.nVocab; v++) sum += Math.exp(lg[v]! - max);
          nll += max + Math.log(sum) - lg[ex.tokens[j + 1]!]!;
        }
      }
    }
    out.push(s.counts[t]! > 0 ? nll / s.counts[t]! : Number.NaN);
  }
  return out;
}

function handle(req: ProfileRequest): unknown {
  switch (req.op) {
    case "load":
      return load(req.modelPath, req.mapped === true);
    case "score-prepare":
      return prepareScorer(req);
    case "score":
      return score();
    case "run":
      return run(req);
    case "exit":
      unload();
      setImmediate(() => process.exit(0));
      return null;
  }
}

const t0 = performance.now();
lib = loadLibLlama({ logLevel: Number(process.env.SECNEURON_LLAMA_LOG_LEVEL ?? 3) });
send({ type: "ready", startMs: performance.now() - t0 });
