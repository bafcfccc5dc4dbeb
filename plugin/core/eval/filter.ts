/**
 * The I/O keyword-filter baseline (pure): what a deployer without sealed weights would do, block
 * prompts that mention a locked task. Keywords are learnt from CALIBRATION prompts only; the
 * evaluation then shows how many held-out prompts of the locked task the filter blocks, how many
 * prompts of other tasks it blocks by mistake, and how many locked-task prompts pass it after a
 * trivial rewrite that leaves the request readable (the model may still answer it: the evaluation
 * runs the rewritten prompts through the plain model too).
 */

export interface KeywordFilter {
  /** Lower-cased keywords; a prompt is blocked when its lower-cased text contains any of them. */
  readonly keywords: readonly string[];
}

const WORD = /[\p{L}\p{N}_\[\]]+/gu;

function words(s: string): string[] {
  return s.toLowerCase().match(WORD) ?? [];
}

function ngrams(s: string, n: number): string[] {
  const t = s.toLowerCase();
  const out: string[] = [];
  for (let i = 0; i + n <= t.length; i++) out.push(t.slice(i, i + n));
  return out;
}

/**
 * Keywords of a task: the units (words of >= 2 characters; when no word qualifies, character
 * bigrams) that appear in at least `minSupport` (default 5%, and at least 2) of the task's calibration
 * prompts and in NONE of the other tasks' calibration prompts, most frequent first, at most
 * `maxKeywords` (default 20).
 */
export function learnKeywords(
  task: string,
  calibPrompts: Readonly<Record<string, readonly string[]>>,
  opts: { maxKeywords?: number; minSupport?: number } = {},
): KeywordFilter {
  const mine = calibPrompts[task] ?? [];
  const others = Object.entries(calibPrompts).filter(([t]) => t !== task).flatMap(([, ps]) => ps);
  const othersText = others.map((p) => p.toLowerCase());
  const minCount = Math.max(2, Math.ceil((opts.minSupport ?? 0.05) * mine.length));
  const pick = (units: (p: string) => Set<string>): string[] => {
    const counts = new Map<string, number>();
    for (const p of mine) for (const u of units(p)) counts.set(u, (counts.get(u) ?? 0) + 1);
    return [...counts]
      .filter(([u, c]) => c >= minCount && !othersText.some((o) => o.includes(u)))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, opts.maxKeywords ?? 20)
      .map(([u]) => u);
  };
  let keywords = pick((p) => new Set(words(p).filter((w) => w.length >= 2)));
  if (keywords.length === 0) keywords = pick((p) => new Set(ngrams(p, 2)));
  return { keywords };
}

/** Whether the filter blocks a prompt (case-insensitive substring match). */
export function blocks(filter: KeywordFilter, prompt: string): boolean {
  const t = prompt.toLowerCase();
  return filter.keywords.some((k) => t.includes(k));
}

export type Rewrite = "zero-width" | "homoglyph";

const HOMOGLYPH: Readonly<Record<string, string>> = {
  a: "\u0430", c: "\u0441", d: "\u0501", e: "\u0435", g: "\u0261", h: "\u04bb", i: "\u0456", j: "\u0458", k: "\u03ba", l: "\u04cf", n: "\u0578",
  o: "\u043e", p: "\u0440", q: "\u051b", r: "\u0433", s: "\u0455", u: "\u057d", v: "\u03bd", w: "\u051d", x: "\u0445", y: "\u0443",
  A: "\u0410", B: "\u0412", C: "\u0421", E: "\u0415", H: "\u041d", K: "\u041a", M: "\u041c", O: "\u041e", P: "\u0420", T: "\u0422", X: "\u0425",
  "0": "\u041e", "1": "\u0406", "3": "\u0417",
};

/**
 * A trivial rewrite of the parts of a prompt the filter matches, leaving every other character and
 * the prompt's LAST character untouched (the continuation point):
 * - zero-width: a ZERO WIDTH SPACE (U+200B) after the first character of each matched keyword
 *   (the text looks the same on screen);
 * - homoglyph: the first character of each matched keyword that has a Cyrillic look-alike is
 *   replaced by it.
 * Applied until no keyword matches or nothing more can change (then the prompt stays blocked).
 */
export function rewritePrompt(filter: KeywordFilter, prompt: string, how: Rewrite): string {
  let s = prompt;
  for (let guard = 0; guard < 4 * prompt.length + 8; guard++) {
    const t = s.toLowerCase();
    const last = s.length - 1;
    let changed = false;
    for (const k of filter.keywords) {
      const at = t.indexOf(k);
      if (at < 0) continue;
      if (how === "zero-width") {
        if (k.length < 2 || at + 1 > last) continue;
        s = s.slice(0, at + 1) + "\u200b" + s.slice(at + 1);
        changed = true;
        break;
      }
      for (let j = at; j < at + k.length && j < last; j++) {
        const h = HOMOGLYPH[s[j]!];
        if (h) {
          s = s.slice(0, j) + h + s.slice(j + 1);
          changed = true;
          break;
        }
      }
      if (changed) break;
    }
    if (!changed) break;
  }
  return s;
}

export interface FilterResult {
  readonly task: string;
  readonly keywords: readonly string[];
  /** Held-out prompts of the task the filter blocks. */
  readonly blockedHeldout: { readonly blocked: number; readonly total: number };
  /** Held-out prompts of other tasks it blocks (false positives). */
  readonly blockedOther: { readonly blocked: number; readonly total: number };
  /** Per rewrite: held-out prompts of the task that PASS the filter after the rewrite. */
  readonly passAfterRewrite: Readonly<Record<Rewrite, { readonly passed: number; readonly total: number }>>;
}

export function evaluateFilter(
  task: string,
  calibPrompts: Readonly<Record<string, readonly string[]>>,
  heldoutPrompts: Readonly<Record<string, readonly string[]>>,
): { result: FilterResult; filter: KeywordFilter } {
  const filter = learnKeywords(task, calibPrompts);
  const mine = heldoutPrompts[task] ?? [];
  const other = Object.entries(heldoutPrompts).filter(([t]) => t !== task).flatMap(([, p]) => p);
  const pass = (how: Rewrite) => ({ passed: mine.filter((p) => !blocks(filter, rewritePrompt(filter, p, how))).length, total: mine.length });
  return {
    filter,
    result: {
      task,
      keywords: filter.keywords,
      blockedHeldout: { blocked: mine.filter((p) => blocks(filter, p)).length, total: mine.length },
      blockedOther: { blocked: other.filter((p) => blocks(filter, p)).length, total: other.length },
      passAfterRewrite: { "zero-width": pass("zero-width"), homoglyph: pass("homoglyph") },
    },
  };
}
