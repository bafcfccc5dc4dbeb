import { describe, expect, it } from "vitest";
import { randomProfile } from "../../plugin/core/eval/selection.js";
import { parseProfile, type Profile } from "../../plugin/core/profile/profile.js";

const base = (headGroups?: number): Profile => parseProfile({
  format: "secneuron-profile", version: 1,
  model: { architecture: "llama", blockCount: 2, feedForwardLength: 4, ...(headGroups ? { headGroups } : {}) },
  tasks: { a: { tokens: 1, layers: [{ layer: 0, importance: [1, 0, 0, 0], ...(headGroups ? { heads: [1, 0] } : {}) }] } },
});

describe("random baseline profile", () => {
  it("is seeded and covers every layer, with random head importances when the base has heads", () => {
    const r1 = randomProfile(base(2), 7);
    const r2 = randomProfile(base(2), 7);
    expect(r1).toEqual(r2);
    expect(parseProfile(JSON.parse(JSON.stringify(r1)))).toEqual(r1);
    expect(r1.tasks.a!.layers.map((l) => l.layer)).toEqual([0, 1]);
    expect(r1.tasks.a!.layers.every((l) => l.heads?.length === 2)).toBe(true);
    expect(randomProfile(base(), 7).tasks.a!.layers.every((l) => l.heads === undefined)).toBe(true);
    expect(randomProfile(base(2), 8)).not.toEqual(r1);
  });
});
