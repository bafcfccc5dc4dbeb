/** llama.cpp engine adapter: node-llama-cpp in a child process. */
export {
  EngineProcess,
  completeInChild,
  resolveWorkerPath,
  validateModelFile,
  type CompleteInChildOptions,
  type CompleteOptions,
  type EngineExit,
  type EngineStartOptions,
  type LoadModelOptions,
  type LoadedModelInfo,
} from "./engine-process.js";
