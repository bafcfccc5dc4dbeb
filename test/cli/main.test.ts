import { describe, expect, it } from "vitest";
import { COMMANDS, main } from "../../plugin/cli/main.js";
import type { CliIo } from "../../plugin/cli/args.js";

describe("secneuron command table", () => {
  it("each lazily loaded command has the name and summary the table lists", async () => {
    for (const entry of COMMANDS) {
      const cmd = await entry.load();
      expect(cmd.name).toBe(entry.name);
      expect(cmd.summary).toBe(entry.summary);
      expect(cmd.help).toMatch(new RegExp(`^Usage: secneuron ${entry.name}`));
    }
  });

  it("top-level help lists every command; unknown commands are usage errors", async () => {
    const io: CliIo & { out_: string } = { out_: "", isTTY: false, out(t) { io.out_ += t; }, err(t) { io.out_ += t; } };
    expect(await main(["--help"], io)).toBe(0);
    for (const c of COMMANDS) expect(io.out_).toContain(c.name);
    expect(await main(["nope"], io)).toBe(2);
  });
});
