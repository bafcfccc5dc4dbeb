/** CP-ABE (FAME on BLS12-381): policy language, scheme and encodings. */
export * from "./policy.js";
export * from "./fame.js";
export {
  ABE_FORMAT_VERSION,
  ABE_MAGIC,
  ABE_SCHEME_FAME,
  KIND_CIPHERTEXT,
  KIND_MASTER_KEY,
  KIND_PUBLIC_PARAMS,
  KIND_USER_KEY,
  type FameCodec,
} from "./serialize.js";
export { bls12_381Group, type PairingGroup, type GroupOps, type TargetOps } from "./group.js";
