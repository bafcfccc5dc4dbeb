/**
 * Typed errors. Every error secneuron raises on bad input is a SecNeuronError with a stable
 * `code`, a message naming what is wrong and where, and machine-readable `details`.
 */

export type ErrorDetails = Record<string, unknown>;

export class SecNeuronError extends Error {
  readonly code: string;
  readonly details: ErrorDetails;
  constructor(code: string, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** A GGUF file that violates the format or llama.cpp's expectations. */
export class GgufFormatError extends SecNeuronError {
  readonly field: string;
  readonly offset: number | undefined;
  constructor(
    code: string,
    field: string,
    offset: number | undefined,
    message: string,
    details: ErrorDetails = {},
  ) {
    const where = offset === undefined ? "" : ` at byte ${offset}`;
    super(code, `${field}${where}: ${message}`, { field, offset, ...details });
    this.field = field;
    this.offset = offset;
  }
}

/** Cipher, key or integrity failures (wrong key, flipped bit, bad framing). */
export class CryptoError extends SecNeuronError {}

/** A kernel backend that cannot be loaded or failed at run time. */
export class BackendError extends SecNeuronError {}

/** A policy expression or policy tree that cannot be parsed or satisfied. */
export class PolicyError extends SecNeuronError {}

/** A key manifest that is malformed, forged, expired or used with the wrong token. */
export class ManifestError extends SecNeuronError {}

/** The llama.cpp engine failed (child crashed, model rejected, timeout). */
export class EngineError extends SecNeuronError {}

/** Bad command-line usage. */
export class UsageError extends SecNeuronError {}
