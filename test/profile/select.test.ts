import { describe, expect, it } from "vitest";
import { parseProfile, parseProfileText, ProfileError, type Profile } from "../../plugin/core/profile/profile.js";
import { selectNeurons } from "../../plugin/core/profile/select.js";
import { authorizedNodes, buildPolicyTree, nodeNeuronCount } from "../../plugin/core/policy/tree.js";
import { oracleProfile } from "../../examples/fixtures/oracle-profile.js";
import { ORACLE_SKILLS } from "../../examples/fixtures/oracle-model.js";

function profileOf(tasks: Record<string, number[]>, nFf: number): Profile {
  return parseProfile({
    format: "secneuron-profile", version: 1,
    model: { architecture: "llama", blockCount: 1, feedForwardLength: nFf },
    tasks: Object.fromEntries(Object.entries(tasks).map(([k, v]) => [k, { tokens: 10, layers: [{ layer: 0, importance: v }] }])),
  });
}

describe("profile parsing", () => {
  it("accepts the oracle profile and round-trips through JSON", () => {
    const p = oracleProfile();
    expect(parseProfileText(JSON.stringify(p))).toEqual(p);
  });
  const bad: Array<[string, (p: any) => void, RegExp]> = [
    ["wrong format", (p) => { p.format = "x"; }, /\$\.format/],
    ["future version", (p) => { p.version = 2; }, /\$\.version: unsupported version 2/],
    ["unknown field", (p) => { p.extra = 1; }, /\$\.extra: unknown field/],
    ["bad task name", (p) => { p.tasks["Bad Name"] = p.tasks.letters; }, /\$\.tasks\.Bad Name/],
    ["wrong neuron count", (p) => { p.tasks.letters.layers[0].importance.pop(); }, /\$\.tasks\.letters\.layers\[0\]\.importance: expected 512 values/],
    ["negative importance", (p) => { p.tasks.digits.layers[1].importance[7] = -1; }, /\$\.tasks\.digits\.layers\[1\]\.importance\[7\]/],
    ["NaN as null", (p) => { p.tasks.digits.layers[1].importance[3] = null; }, /importance\[3\]/],
    ["layer out of range", (p) => { p.tasks.digits.layers[1].layer = 2; }, /layers\[1\]\.layer: expected an integer in 0\.\.1/],
    ["duplicate layer", (p) => { p.tasks.digits.layers[1].layer = 0; }, /appears twice/],
    ["bad digest", (p) => { p.model.sha256 = "abc"; }, /\$\.model\.sha256/],
  ];
  for (const [name, mutate, msg] of bad) {
    it(`rejects ${name} naming the JSON path`, () => {
      const p = JSON.parse(JSON.stringify(oracleProfile()));
      mutate(p);
      expect(() => parseProfile(p)).toThrow(ProfileError);
      expect(() => parseProfile(p)).toThrow(msg);
    });
  }
  it("rejects text that is not JSON", () => {
    expect(() => parseProfileText("{")).toThrow(/not valid JSON/);
  });
});

describe("neuron selection", () => {
  it("recovers exactly the oracle's skill neurons", () => {
    const sel = selectNeurons(oracleProfile(), { tasks: ["letters", "digits"], ratio: 0.5 });
    expect(sel.perTask.get("letters")).toEqual(ORACLE_SKILLS.letters.neurons.map((index) => ({ layer: 0, index })));
    expect(sel.perTask.get("digits")).toEqual(ORACLE_SKILLS.digits.neurons.map((index) => ({ layer: 0, index })));
  });

  it("ranks by specificity: a neuron important to every task loses to a task-exclusive one", () => {
    // neuron 0: shared (5 vs 5); neuron 1: exclusive but weaker (2 vs 0); neuron 2: mostly mine (4 vs 1)
    const p = profileOf({ a: [5, 2, 4, 0], b: [5, 0, 1, 1] }, 4);
    expect(selectNeurons(p, { tasks: ["a"], count: 2 }).perTask.get("a")!.map((n) => n.index)).toEqual([1, 2]);
    expect(selectNeurons(p, { tasks: ["a"], count: 1, scoring: "importance" }).perTask.get("a")!.map((n) => n.index)).toEqual([0]);
    expect(selectNeurons(p, { tasks: ["a"], count: 1, scoring: "penalty", penalty: 1 }).perTask.get("a")!.map((n) => n.index)).toEqual([2]);
  });

  it("never selects neurons that are silent on the task", () => {
    const p = profileOf({ a: [1, 0, 0, 0], b: [0, 1, 1, 1] }, 4);
    expect(selectNeurons(p, { tasks: ["a"], count: 4 }).perTask.get("a")).toEqual([{ layer: 0, index: 0 }]);
  });

  it("rejects bad lock specs", () => {
    const p = oracleProfile();
    expect(() => selectNeurons(p, { tasks: [] })).toThrow(/no tasks/);
    expect(() => selectNeurons(p, { tasks: ["code"] })).toThrow(/'code' is not in the profile/);
    expect(() => selectNeurons(p, { tasks: ["letters", "letters"] })).toThrow(/twice/);
    expect(() => selectNeurons(p, { tasks: ["letters"], ratio: 0 })).toThrow(/ratio/);
    expect(() => selectNeurons(p, { tasks: ["letters"], count: 5000 })).toThrow(/count/);
    expect(() => selectNeurons(p, { tasks: ["letters"], layers: [7] })).toThrow(/layer 7/);
  });
});

describe("layered policy tree", () => {
  const p = profileOf({ a: [3, 3, 0, 1, 0], b: [0, 3, 3, 1, 0], c: [0, 0, 0, 0, 1] }, 5);
  const sel = selectNeurons(p, { tasks: ["a", "b"], count: 2 });

  it("puts shared neurons in the node of their task set, exclusive ones in single-task nodes", () => {
    const tree = buildPolicyTree(sel);
    expect(tree.nodes.map((n) => n.id)).toEqual(["a", "b", "a+b"]);
    expect(tree.nodes.map((n) => [...n.neurons.get(0)!])).toEqual([[0], [2], [1]]);
    expect(tree.nodes[2]!.policies).toEqual(["task:a or admin", "task:b or admin"]);
    expect(tree.nodes.reduce((s, n) => s + nodeNeuronCount(n), 0)).toBe(3);
  });

  it("applies custom policies, admin by default, and rejects bad ones", () => {
    const tree = buildPolicyTree(sel, { policies: { a: "task:a and tier:pro", b: "task:b and tier:pro" } });
    expect(tree.nodes[0]!.policies).toEqual(["task:a and tier:pro or admin"]);
    expect(buildPolicyTree(sel, { admin: false }).nodes[0]!.policies).toEqual(["task:a"]);
    expect(() => buildPolicyTree(sel, { policies: { a: "task:a and (" } })).toThrow(/policy for task 'a'/);
    expect(() => buildPolicyTree(sel, { policies: { a: "admin" } })).toThrow(/or admin/);
    expect(() => buildPolicyTree(sel, { policies: { c: "task:c" } })).toThrow(/not locked/);
  });

  it("authorizes nodes by attributes, with least privilege per requested task", () => {
    const tree = buildPolicyTree(sel);
    const ids = (attrs: string[], tasks?: string[]) => authorizedNodes(tree, attrs, tasks).map((x) => x.node.id);
    expect(ids(["task:a"])).toEqual(["a", "a+b"]);
    expect(ids(["task:b"])).toEqual(["b", "a+b"]);
    expect(ids(["admin"])).toEqual(["a", "b", "a+b"]);
    expect(ids(["task:c", "tier:pro"])).toEqual([]);
    expect(ids(["task:a", "task:b"], ["a"])).toEqual(["a", "a+b"]);
    expect(ids(["task:a"], ["b"])).toEqual([]);
    expect(authorizedNodes(tree, ["task:b"]).find((x) => x.node.id === "a+b")!.policyIndex).toBe(1);
  });
});
