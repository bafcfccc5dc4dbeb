/**
 * The child's model registry (runs in worker.ts only): names registered by the parent, each
 * loaded lazily on first use into one llama.cpp context with one sequence. Every operation on a
 * model (generation, embedding, unload) runs through that model's FIFO queue, so concurrent
 * requests wait their turn instead of fighting over the sequence.
 *
 * Each generation starts from an empty sequence (no prompt cache): the output depends only on
 * the request and the weights, even when the weights file was rewritten in place.
 */
import {
  LlamaCompletion,
  LlamaText,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type { ModelFileInfo, WorkerConfig } from "./protocol.js";

/** A request error with the HTTP status it maps to. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool";
  readonly content: string;
}

/** What to generate from: a plain prompt, or messages rendered by the chat wrapper. */
export type GenerationInput = { readonly kind: "raw"; readonly text: string } | { readonly kind: "chat"; readonly messages: readonly ChatMessage[] };

export interface SamplingParams {
  /** Tokens to generate; undefined: until an end token or the context is full. */
  readonly maxTokens?: number;
  /** 0: greedy. */
  readonly temperature: number;
  readonly topK?: number;
  readonly topP?: number;
  readonly minP?: number;
  readonly seed?: number;
  readonly stop: readonly string[];
  readonly repeatPenalty?: number;
  readonly repeatLastN?: number;
  readonly frequencyPenalty?: number;
  readonly presencePenalty?: number;
}

export interface GenerationResult {
  readonly text: string;
  /** "stop": end token or stop sequence; "length": token limit or full context. */
  readonly doneReason: "stop" | "length";
  readonly promptTokens: number;
  readonly evalTokens: number;
  /** Prompt tokens (with BOS) followed by the generated tokens. */
  readonly tokens: number[];
  /** Nanoseconds, as Ollama reports them. */
  readonly loadNs: number;
  readonly promptNs: number;
  readonly evalNs: number;
  readonly totalNs: number;
}

export interface EmbeddingResult {
  readonly vectors: number[][];
  readonly promptTokens: number;
  readonly loadNs: number;
  readonly totalNs: number;
}

interface Loaded {
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly sequence: LlamaContextSequence;
  readonly completion: LlamaCompletion;
  /** undefined: raw (message contents joined by newlines). */
  readonly wrapper: ChatWrapper | undefined;
  readonly loadedAt: Date;
  embedding?: LlamaEmbeddingContext;
}

export interface ModelEntry {
  readonly name: string;
  readonly path: string;
  readonly info: ModelFileInfo;
  /** Set while loaded (or loading). */
  loaded?: Promise<Loaded>;
  /** Tail of this model's FIFO queue. */
  tail: Promise<void>;
  /** Set once unregistered: queued work fails with 404. */
  removed: boolean;
}

const ms = (t0: number): number => Math.round((performance.now() - t0) * 1e6);

export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry>();

  constructor(
    private readonly llama: Llama,
    private readonly config: WorkerConfig,
  ) {}

  /** Registered names, in registration order. */
  list(): ModelEntry[] {
    return [...this.entries.values()];
  }

  loadedNames(): string[] {
    return this.list()
      .filter((e) => e.loaded !== undefined)
      .map((e) => e.name);
  }

  /** Exact name, else the name with ":latest" added or removed (Ollama's default tag). */
  find(name: string): ModelEntry | undefined {
    const exact = this.entries.get(name);
    if (exact) return exact;
    if (name.endsWith(":latest")) return this.entries.get(name.slice(0, -":latest".length));
    if (!name.includes(":")) return this.entries.get(`${name}:latest`);
    return undefined;
  }

  /** The entry for a request's model, or a 404 ApiError in Ollama's wording. */
  get(name: string): ModelEntry {
    const e = this.find(name);
    if (!e) throw new ApiError(404, `model "${name}" not found, try pulling it first`);
    return e;
  }

  async register(name: string, path: string, info: ModelFileInfo): Promise<void> {
    const old = this.entries.get(name);
    if (old && old.path === path && old.info.digest === info.digest) return;
    if (old) await this.unregister(name);
    this.entries.set(name, { name, path, info, tail: Promise.resolve(), removed: false });
  }

  /** Forget a name: waits for its queued work, then frees the model. */
  async unregister(name: string): Promise<void> {
    const e = this.entries.get(name);
    if (!e) return;
    this.entries.delete(name);
    e.removed = true;
    await this.exclusive(e, () => this.unloadNow(e), true);
  }

  /** Free a model's memory, keep its registration (keep_alive 0). */
  unload(e: ModelEntry): Promise<void> {
    return this.exclusive(e, () => this.unloadNow(e), true);
  }

  async unloadAll(): Promise<void> {
    await Promise.all(this.list().map((e) => this.unregister(e.name)));
  }

  private async unloadNow(e: ModelEntry): Promise<void> {
    const p = e.loaded;
    e.loaded = undefined;
    if (!p) return;
    let l: Loaded;
    try {
      l = await p;
    } catch {
      return;
    }
    l.completion.dispose();
    await l.embedding?.dispose();
    await l.context.dispose();
    await l.model.dispose();
  }

  /** Run fn after everything queued before it on this model. */
  exclusive<T>(e: ModelEntry, fn: () => Promise<T>, evenIfRemoved = false): Promise<T> {
    const run = e.tail.then(() => {
      if (e.removed && !evenIfRemoved) throw new ApiError(404, `model "${e.name}" not found, try pulling it first`);
      return fn();
    });
    e.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Load the model if needed; returns it and the nanoseconds spent loading (0 when loaded). */
  private async ensureLoaded(e: ModelEntry): Promise<{ loaded: Loaded; loadNs: number }> {
    if (e.loaded) {
      try {
        return { loaded: await e.loaded, loadNs: 0 };
      } catch {
        e.loaded = undefined;
      }
    }
    const t0 = performance.now();
    e.loaded = this.load(e);
    try {
      return { loaded: await e.loaded, loadNs: ms(t0) };
    } catch (err) {
      e.loaded = undefined;
      throw new ApiError(500, `llama runner failed to load model "${e.name}": ${(err as Error).message}`);
    }
  }

  private async load(e: ModelEntry): Promise<Loaded> {
    const model = await this.llama.loadModel({ modelPath: e.path, gpuLayers: 0 });
    try {
      const contextSize = Math.min(this.config.contextSize, model.trainContextSize);
      const context = await model.createContext({
        contextSize,
        sequences: 1,
        threads: this.config.threads,
        batchSize: Math.min(contextSize, 512),
      });
      const sequence = context.getSequence();
      const completion = new LlamaCompletion({ contextSequence: sequence });
      const hasTemplate = typeof model.fileInfo.metadata.tokenizer?.chat_template === "string";
      const wrapper = this.config.chatWrapper === "auto" && hasTemplate ? resolveChatWrapper(model) : undefined;
      return { model, context, sequence, completion, wrapper, loadedAt: new Date() };
    } catch (err) {
      await model.dispose();
      throw err;
    }
  }

  /** Loaded-model facts for /api/ps: context length and load time, undefined when not loaded. */
  async loadedInfo(e: ModelEntry): Promise<{ contextLength: number; loadedAt: Date } | undefined> {
    if (!e.loaded) return undefined;
    try {
      const l = await e.loaded;
      return { contextLength: l.context.contextSize, loadedAt: l.loadedAt };
    } catch {
      return undefined;
    }
  }

  /** Load a model without generating (Ollama's empty-prompt request). */
  preload(e: ModelEntry): Promise<number> {
    return this.exclusive(e, async () => (await this.ensureLoaded(e)).loadNs);
  }

  generate(
    e: ModelEntry,
    input: GenerationInput,
    params: SamplingParams,
    onText: (chunk: string) => void,
    signal: AbortSignal,
  ): Promise<GenerationResult> {
    return this.exclusive(e, async () => {
      const t0 = performance.now();
      const { loaded, loadNs } = await this.ensureLoaded(e);
      const { model, sequence, completion } = loaded;
      const { tokens: inputTokens, stopTriggers } = renderInput(loaded, input);
      const bos = model.tokens.bos;
      const addBos = bos !== null && model.tokens.shouldPrependBosToken;
      const promptTokens: number[] = addBos ? [Number(bos), ...inputTokens.map(Number)] : inputTokens.map(Number);
      await sequence.clearHistory();
      const generated: number[] = [];
      let firstTokenAt: number | undefined;
      const tGen = performance.now();
      if (params.maxTokens === 0) {
        return {
          text: "",
          doneReason: "length",
          promptTokens: promptTokens.length,
          evalTokens: 0,
          tokens: promptTokens,
          loadNs,
          promptNs: 0,
          evalNs: 0,
          totalNs: ms(t0),
        };
      }
      const greedy = params.temperature <= 0;
      const penalize =
        (params.repeatPenalty !== undefined && params.repeatPenalty !== 1) ||
        (params.frequencyPenalty !== undefined && params.frequencyPenalty !== 0) ||
        (params.presencePenalty !== undefined && params.presencePenalty !== 0);
      const r = await completion.generateCompletionWithMeta(inputTokens, {
        maxTokens: params.maxTokens,
        temperature: greedy ? 0 : params.temperature,
        topK: greedy ? undefined : params.topK,
        topP: greedy ? undefined : params.topP,
        minP: greedy ? undefined : params.minP,
        seed: params.seed,
        repeatPenalty: penalize
          ? {
              penalty: params.repeatPenalty,
              lastTokens: params.repeatLastN,
              frequencyPenalty: params.frequencyPenalty,
              presencePenalty: params.presencePenalty,
            }
          : false,
        customStopTriggers: [...stopTriggers, ...params.stop.filter((s) => s.length > 0)],
        disableContextShift: true,
        signal,
        stopOnAbortSignal: true,
        onToken: (t) => {
          if (firstTokenAt === undefined) firstTokenAt = performance.now();
          for (const x of t) generated.push(Number(x));
        },
        onTextChunk: onText,
      });
      const tEnd = performance.now();
      const first = firstTokenAt ?? tEnd;
      return {
        text: r.response,
        doneReason: r.metadata.stopReason === "maxTokens" ? "length" : "stop",
        promptTokens: promptTokens.length,
        evalTokens: generated.length,
        tokens: [...promptTokens, ...generated],
        loadNs,
        promptNs: Math.round((first - tGen) * 1e6),
        evalNs: Math.round((tEnd - first) * 1e6),
        totalNs: ms(t0),
      };
    });
  }

  embed(e: ModelEntry, inputs: readonly string[], signal: AbortSignal): Promise<EmbeddingResult> {
    return this.exclusive(e, async () => {
      const t0 = performance.now();
      const { loaded, loadNs } = await this.ensureLoaded(e);
      if (!loaded.embedding) {
        const contextSize = Math.min(this.config.contextSize, loaded.model.trainContextSize);
        try {
          loaded.embedding = await loaded.model.createEmbeddingContext({ contextSize, threads: this.config.threads, batchSize: Math.min(contextSize, 512) });
        } catch (err) {
          throw new ApiError(501, `model "${e.name}" cannot compute embeddings here: ${(err as Error).message}`);
        }
      }
      const vectors: number[][] = [];
      let promptTokens = 0;
      for (const text of inputs) {
        if (signal.aborted) throw new ApiError(499, "request cancelled");
        const tokens = loaded.model.tokenize(text);
        promptTokens += tokens.length;
        const emb = await loaded.embedding.getEmbeddingFor(tokens);
        vectors.push([...emb.vector]);
      }
      return { vectors, promptTokens, loadNs, totalNs: ms(t0) };
    });
  }
}

/**
 * The tokens to evaluate (without BOS: LlamaCompletion prepends it) and the wrapper's stop
 * triggers. Raw: the text itself, or the message contents joined with "\n". With a chat wrapper:
 * the wrapper's rendering of the messages followed by an open assistant turn.
 */
function renderInput(l: Loaded, input: GenerationInput): { tokens: Token[]; stopTriggers: LlamaText[] } {
  const tokenizer = l.model.tokenizer;
  if (input.kind === "raw") return { tokens: tokenizer(input.text, false, "trimLeadingSpace"), stopTriggers: [] };
  if (!l.wrapper) {
    const text = input.messages.map((m) => m.content).join("\n");
    return { tokens: tokenizer(text, false, "trimLeadingSpace"), stopTriggers: [] };
  }
  const history: ChatHistoryItem[] = [];
  for (const m of input.messages) {
    if (m.role === "system") history.push({ type: "system", text: m.content });
    else if (m.role === "assistant") history.push({ type: "model", response: [m.content] });
    else history.push({ type: "user", text: m.content });
  }
  history.push({ type: "model", response: [] });
  const state = l.wrapper.generateContextState({ chatHistory: history });
  let tokens = state.contextText.tokenize(tokenizer, "trimLeadingSpace");
  const bos = l.model.tokens.bos;
  if (bos !== null && tokens.length > 0 && tokens[0] === bos) tokens = tokens.slice(1);
  return { tokens, stopTriggers: state.stopGenerationTriggers };
}
