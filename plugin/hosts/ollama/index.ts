export * from "./ollama-host.js";
export * from "./store.js";
