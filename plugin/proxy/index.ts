/** The proxy's decision core: curated re-exports (express wiring lives in app.ts). */
export { PROXY_ERROR_STATUS, ProxyError, publicMessage, statusForError, type ProxyErrorCode } from "./errors.js";
export { apiError, apiErrorFrom, flavorForPath, type ApiErrorResponse, type ApiFlavor } from "./api-error.js";
export { assertModelName, isValidModelName, normalizeModelName, sameModel } from "./model-name.js";
export {
  ROUTES,
  checkRouteAccess,
  isDenial,
  matchRoute,
  upstreamPathFor,
  type Denial,
  type HeaderBag,
  type ListingKind,
  type RouteMatch,
  type RouteSpec,
} from "./routes.js";
export {
  LOADING_FIELD_POLICY,
  applyLoadingPolicy,
  extractModels,
  rewriteExtracted,
  rewriteRequestModel,
  type ExtractedRequest,
  type ModelRef,
} from "./request-model.js";
export {
  createModelRenamer,
  createResponseRewriter,
  filterListing,
  responseKindFor,
  rewriteJsonValue,
  type ModelRenamer,
  type ResponseKind,
} from "./model-rewrite.js";
export {
  SignatureReplayCache,
  findTokenHash,
  hashToken,
  ollamaPublicKeyText,
  parseCredentials,
  tokenHashEquals,
  verifyOllamaSignature,
  type Credentials,
} from "./auth.js";
