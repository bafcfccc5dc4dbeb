/** The CPU kernel library (kernels/c): AES-NI/VAES GCM over pthreads. */
import { BackendError } from "../../plugin/errors.js";
import { SN_ABI_VERSION, SnStatus, statusName, type SnLibrary } from "../abi.js";
import { NativeRowCipherBackend, type NativeBackendOptions } from "./native.js";

export function createCBackend(lib: SnLibrary, options: NativeBackendOptions = {}): NativeRowCipherBackend {
  const abi = lib.abiVersion();
  if (abi !== SN_ABI_VERSION) {
    throw new BackendError("E_BACKEND_ABI", `C library ${lib.path}: ABI ${abi}, expected ${SN_ABI_VERSION}`, {
      path: lib.path,
      abi,
    });
  }
  const { status, detail } = lib.probe();
  if (status !== SnStatus.OK) {
    throw new BackendError("E_BACKEND_PROBE", `C library ${lib.path}: probe returned ${statusName(status)}: ${detail}`);
  }
  const threads = options.threads ?? 0;
  return new NativeRowCipherBackend("c", lib, `${detail}; threads ${threads === 0 ? "all" : threads}`, { threads });
}
