/**
 * The models a sidecar serves: every `*.gguf` in the models folder. A model's name is its file
 * name without `.sn.gguf` or `.gguf` (`name:latest` is the same model, as in Ollama). Sealed
 * models must verify (signature) and belong to the sidecar's authority; plain models must pass
 * llama.cpp validation. A file that fails is left out and reported, never served.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { SecNeuronError } from "../errors.js";
import { validateLlamaModel } from "../core/gguf/llama-check.js";
import { isSealed } from "../core/seal/sealed-metadata.js";
import { readGgufHeader } from "./gguf-file.js";
import { openSealedModel, type SealedModel } from "./unseal.js";

export type ServedModel =
  | { readonly name: string; readonly path: string; readonly sealed: false; readonly size: number; readonly modifiedAt: Date }
  | { readonly name: string; readonly path: string; readonly sealed: true; readonly size: number; readonly modifiedAt: Date; readonly model: SealedModel };

export interface RegistryProblem {
  readonly file: string;
  readonly code: string;
  readonly message: string;
}

export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function modelNameOf(file: string): string | undefined {
  const m = /^(.*?)(\.sn)?\.gguf$/i.exec(file);
  return m && MODEL_NAME.test(m[1]!) ? m[1] : undefined;
}

/** `name:latest` and `name` are the same model; any other tag is a different name. */
export function canonicalModelName(name: string): string {
  return name.endsWith(":latest") ? name.slice(0, -":latest".length) : name;
}

export class ModelRegistry {
  private constructor(
    private readonly byName: ReadonlyMap<string, ServedModel>,
    readonly problems: readonly RegistryProblem[],
  ) {}

  static scan(dir: string, expected: { authority: string; issuer: string }): ModelRegistry {
    const models = new Map<string, ServedModel>();
    const problems: RegistryProblem[] = [];
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => /\.gguf$/i.test(f) && !f.startsWith(".")).sort();
    } catch (e) {
      throw new SecNeuronError("MODELS_DIR_UNREADABLE", `cannot read the models folder ${dir}: ${(e as Error).message}`);
    }
    for (const file of files) {
      const path = join(dir, file);
      const name = modelNameOf(file);
      if (!name) { problems.push({ file, code: "MODEL_BAD_NAME", message: `'${file}' does not give a valid model name (${MODEL_NAME})` }); continue; }
      if (models.has(name)) { problems.push({ file, code: "MODEL_DUPLICATE_NAME", message: `'${file}' and '${models.get(name)!.path}' both name model '${name}'` }); continue; }
      try {
        const st = statSync(path);
        const header = readGgufHeader(path);
        if (isSealed(header.metadata)) {
          const model = openSealedModel(path);
          if (model.info.authority !== expected.authority || model.info.issuer !== expected.issuer) {
            throw new SecNeuronError("MODEL_FOREIGN_AUTHORITY", `sealed for authority ${model.info.authority.slice(0, 16)}…, this sidecar trusts ${expected.authority.slice(0, 16)}…`);
          }
          models.set(name, { name, path, sealed: true, size: st.size, modifiedAt: st.mtime, model });
        } else {
          validateLlamaModel(header);
          models.set(name, { name, path, sealed: false, size: st.size, modifiedAt: st.mtime });
        }
      } catch (e) {
        if (!(e instanceof SecNeuronError)) throw e;
        problems.push({ file, code: e.code, message: e.message });
      }
    }
    return new ModelRegistry(models, problems);
  }

  get(name: string): ServedModel | undefined {
    return this.byName.get(canonicalModelName(name));
  }

  list(): ServedModel[] {
    return [...this.byName.values()];
  }
}
