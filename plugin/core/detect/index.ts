export * from "./classify.js";
export * from "./layouts.js";
