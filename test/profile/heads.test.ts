/** Attention head groups, the second neuron kind: profile fields, selection and the policy tree. */
import { describe, expect, it } from "vitest";
import { parseProfile, ProfileError, type Profile } from "../../plugin/core/profile/profile.js";
import { selectNeurons } from "../../plugin/core/profile/select.js";
import { buildPolicyTree, nodeHeadCount, nodeNeuronCount } from "../../plugin/core/policy/tree.js";

/** Two layers, FFN width 4, 3 head groups; importances per task as [layer0, layer1]. */
function headProfile(): any {
  return {
    format: "secneuron-profile", version: 1,
    model: { architecture: "llama", blockCount: 2, feedForwardLength: 4, headGroups: 3 },
    tasks: {
      a: { tokens: 5, layers: [{ layer: 0, importance: [1, 0, 0, 0], heads: [4, 1, 1] }, { layer: 1, importance: [0, 0, 0, 0], heads: [1, 1, 2] }] },
      b: { tokens: 5, layers: [{ layer: 0, importance: [0, 1, 0, 0], heads: [1, 3, 1] }, { layer: 1, importance: [0, 0, 0, 0], heads: [1, 1, 2] }] },
      c: { tokens: 5, layers: [{ layer: 0, importance: [0, 0, 1, 0], heads: [1, 1, 1] }, { layer: 1, importance: [0, 0, 0, 0], heads: [1, 1, 1] }] },
    },
  };
}

describe("profile head importances", () => {
  it("parses heads and model.headGroups, and old profiles stay valid", () => {
    const p = parseProfile(headProfile());
    expect(p.model.headGroups).toBe(3);
    expect(p.tasks.a!.layers[0]!.heads).toEqual([4, 1, 1]);
    const old = headProfile();
    delete old.model.headGroups;
    for (const t of Object.values(old.tasks) as any[]) for (const l of t.layers) delete l.heads;
    const q = parseProfile(old);
    expect(q.model.headGroups).toBeUndefined();
    expect(q.tasks.a!.layers[0]!.heads).toBeUndefined();
    expect(parseProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
  });
  const bad: Array<[string, (p: any) => void, RegExp]> = [
    ["heads without model.headGroups", (p) => { delete p.model.headGroups; }, /\$\.tasks\.a\.layers\[0\]\.heads: head importances need \$\.model\.headGroups/],
    ["wrong head group count", (p) => { p.tasks.b.layers[1].heads.pop(); }, /\$\.tasks\.b\.layers\[1\]\.heads: expected 3 values \(one per head group\), got 2/],
    ["negative head importance", (p) => { p.tasks.c.layers[0].heads[2] = -0.5; }, /\$\.tasks\.c\.layers\[0\]\.heads\[2\]: expected a finite number >= 0/],
    ["null head importance", (p) => { p.tasks.c.layers[0].heads[1] = null; }, /\$\.tasks\.c\.layers\[0\]\.heads\[1\]/],
    ["heads not an array", (p) => { p.tasks.a.layers[1].heads = 3; }, /\$\.tasks\.a\.layers\[1\]\.heads: expected an array/],
    ["zero head groups", (p) => { p.model.headGroups = 0; }, /\$\.model\.headGroups/],
    ["fractional head groups", (p) => { p.model.headGroups = 1.5; }, /\$\.model\.headGroups: expected an integer/],
  ];
  for (const [name, mutate, msg] of bad) {
    it(`rejects ${name} naming the JSON path`, () => {
      const p = headProfile();
      mutate(p);
      expect(() => parseProfile(p)).toThrow(ProfileError);
      expect(() => parseProfile(p)).toThrow(msg);
    });
  }
});

describe("head selection", () => {
  const p: Profile = parseProfile(headProfile());
  it("selects no heads by default (existing behaviour unchanged)", () => {
    const sel = selectNeurons(p, { tasks: ["a"], count: 1 });
    expect(sel.perTask.get("a")).toEqual([{ layer: 0, index: 0 }]);
    expect(sel.perTaskHeads?.get("a") ?? []).toEqual([]);
    expect(buildPolicyTree(sel).nodes.map((n) => [n.id, n.heads.size])).toEqual([["a", 0]]);
  });
  it("ranks head groups by specificity, per task", () => {
    const sel = selectNeurons(p, { tasks: ["a", "b"], count: 0, headCount: 1 });
    // a: group 0 of layer 0 (4 vs 1); b: group 1 of layer 0 (3 vs 1); layer 1 group 2 is shared by a and b.
    expect(sel.perTaskHeads!.get("a")).toEqual([{ layer: 0, index: 0 }]);
    expect(sel.perTaskHeads!.get("b")).toEqual([{ layer: 0, index: 1 }]);
    expect(sel.totalHeads).toBe(6);
    const two = selectNeurons(p, { tasks: ["a", "b"], count: 0, headCount: { a: 2, b: 2 } });
    expect(two.perTaskHeads!.get("a")).toEqual([{ layer: 0, index: 0 }, { layer: 1, index: 2 }]);
    expect(two.perTaskHeads!.get("b")).toEqual([{ layer: 0, index: 1 }, { layer: 1, index: 2 }]);
    expect(selectNeurons(p, { tasks: ["a"], count: 0, headRatio: 2 / 6 }).perTaskHeads!.get("a")!.length).toBe(2);
    expect(selectNeurons(p, { tasks: ["a"], count: 0, headCount: 1, layers: [1] }).perTaskHeads!.get("a")).toEqual([{ layer: 1, index: 2 }]);
  });
  it("rejects bad head counts and head selection without head importances", () => {
    expect(() => selectNeurons(p, { tasks: ["a"], headCount: 7 })).toThrow(/head group count 7 for 'a' must be an integer in 0\.\.6/);
    expect(() => selectNeurons(p, { tasks: ["a"], headRatio: 1.5 })).toThrow(/head ratio/);
    const old = headProfile();
    delete old.model.headGroups;
    for (const t of Object.values(old.tasks) as any[]) for (const l of t.layers) delete l.heads;
    expect(() => selectNeurons(parseProfile(old), { tasks: ["a"], headCount: 1 })).toThrow(/no head importances/);
  });
  it("puts each head group in exactly one node, next to the neurons", () => {
    const sel = selectNeurons(p, { tasks: ["a", "b"], count: 1, headCount: 2 });
    const tree = buildPolicyTree(sel);
    const view = tree.nodes.map((n) => ({ id: n.id, neurons: [...n.neurons], heads: [...n.heads] }));
    expect(view).toEqual([
      { id: "a", neurons: [[0, [0]]], heads: [[0, [0]]] },
      { id: "b", neurons: [[0, [1]]], heads: [[0, [1]]] },
      { id: "a+b", neurons: [], heads: [[1, [2]]] },
    ]);
    expect(tree.nodes.map((n) => [nodeNeuronCount(n), nodeHeadCount(n)])).toEqual([[1, 1], [1, 1], [0, 1]]);
  });
});
