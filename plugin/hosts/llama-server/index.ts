export {
  BUILD_HINT,
  LLAMA_SERVER_OPENAI_ROUTES,
  LlamaServerHost,
  RAW_CHAT_TEMPLATE,
  bundledLlamaCppTag,
  defaultLlamaServerPath,
  type LlamaServerHostOptions,
} from "./llama-server-host.js";
