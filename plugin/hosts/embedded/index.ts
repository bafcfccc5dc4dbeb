/** The "embedded" host adapter: llama.cpp in a supervised child serving the Ollama API. */
export {
  EMBEDDED_OLLAMA_VERSION,
  EmbeddedHost,
  describeModelFile,
  humanParameterCount,
  type EmbeddedHostOptions,
} from "./embedded-host.js";
export type { ModelFileInfo } from "./protocol.js";
