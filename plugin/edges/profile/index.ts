/** Activation profiling (llama.cpp in a child process) and llama-imatrix import/export. */
export {
  ProfileProcess,
  profileModel,
  profileModelWithStats,
  resolveProfileWorkerPath,
  sha256File,
  taskProfileFromSums,
  type ProfileModelOptions,
  type ProfileProcessOptions,
  type ProfileProgress,
  type ProfileStats,
  type RunOptions,
  type ProfileLoadResult,
  type ProfileRunResult,
  type TaskActivationSums,
} from "./profile-process.js";
export { ablateModel, type AblateOptions, type AblationStats, type AblationUnits } from "./ablate.js";
export { iterativeSelection, type IterativeOptions, type IterativeResult } from "./iterative.js";
export {
  importImatrix,
  imatrixFfnLayers,
  imatrixTaskProfile,
  profileTaskImatrixEntries,
  writeImatrix,
  type Imatrix,
  type ImatrixEntry,
  type ImatrixFfnLayer,
  type ImatrixWriteEntry,
  type ImatrixWriteOptions,
} from "./imatrix.js";
