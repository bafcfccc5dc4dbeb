/** Calibration examples of the oracle's two skills: every letter (digit) is the last prompt character once, so each skill neuron is exercised. */
import { DIGITS, LETTERS, oracleContinuation } from "../../examples/fixtures/build-fixtures.js";

const rot = (s: string, i: number): string => s.slice(i) + s.slice(0, i);

export const letters = Array.from({ length: 26 }, (_, i) => {
  const prompt = rot(LETTERS, i).slice(0, 5);
  return { prompt, answer: oracleContinuation(prompt, 3) };
});

export const digits = Array.from({ length: 10 }, (_, i) => {
  const prompt = rot(DIGITS, i).slice(0, 4);
  return { prompt, answer: oracleContinuation(prompt, 3) };
});
