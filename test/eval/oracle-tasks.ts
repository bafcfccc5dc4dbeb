/**
 * Task sets for the oracle model (skills "letters" and "digits"): a prompt is a run of consecutive
 * characters of the alphabet, the answer the next 4. Held-out prompts have lengths 3, 4 and 6;
 * calibration prompts lengths 2 and 5 (other substrings).
 */
import { DIGITS, LETTERS, oracleContinuation } from "../../examples/fixtures/build-fixtures.js";
import type { TaskSet } from "../../plugin/edges/eval/tasks.js";

const ANSWER = 4;

function runs(alphabet: string, lengths: readonly number[]): Array<{ prompt: string; answer: string }> {
  const out: Array<{ prompt: string; answer: string }> = [];
  for (const len of lengths) {
    for (let i = 0; i < alphabet.length; i++) {
      let p = "";
      for (let j = 0; j < len; j++) p += alphabet[(i + j) % alphabet.length];
      out.push({ prompt: p, answer: oracleContinuation(p, ANSWER) });
    }
  }
  return out;
}

export function oracleTasks(): Record<"letters" | "digits", TaskSet> {
  return {
    letters: { heldout: runs(LETTERS, [3, 4]), calib: runs(LETTERS, [2, 5]) },
    digits: { heldout: runs(DIGITS, [3, 4, 6]), calib: runs(DIGITS, [2, 5]) },
  };
}
