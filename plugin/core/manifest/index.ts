/** Key manifests: format, canonical encoding, signing, token wrapping, validation. Pure. */
export * from "./canonical.js";
export * from "./manifest.js";
export * from "./schema.js";
export * from "./token.js";
export * from "./user-key-wrap.js";
