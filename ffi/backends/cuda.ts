/** The CUDA kernel library (kernels/cuda): same ABI; rows are copied to the GPU per batch. */
import { BackendError } from "../../plugin/errors.js";
import { SN_ABI_VERSION, SnStatus, statusName, type SnLibrary } from "../abi.js";
import { NativeRowCipherBackend } from "./native.js";

export interface CudaProbe {
  readonly available: boolean;
  readonly status: number;
  readonly statusName: string;
  readonly detail: string;
}

/** Probes the CUDA library: "no device" (driver missing, error 35) is a clean, typed answer. */
export function probeCuda(lib: SnLibrary): CudaProbe {
  const { status, detail } = lib.probe();
  return { available: status === SnStatus.OK, status, statusName: statusName(status), detail };
}

export function createCudaBackend(lib: SnLibrary): NativeRowCipherBackend {
  const abi = lib.abiVersion();
  if (abi !== SN_ABI_VERSION) {
    throw new BackendError("E_BACKEND_ABI", `CUDA library ${lib.path}: ABI ${abi}, expected ${SN_ABI_VERSION}`);
  }
  const p = probeCuda(lib);
  if (!p.available) {
    throw new BackendError(
      p.status === SnStatus.ERR_NO_DEVICE ? "E_BACKEND_NO_DEVICE" : "E_BACKEND_PROBE",
      `CUDA library ${lib.path}: ${p.statusName}: ${p.detail}`,
      { path: lib.path, status: p.status, detail: p.detail },
    );
  }
  return new NativeRowCipherBackend("cuda", lib, p.detail);
}
