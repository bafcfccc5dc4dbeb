#!/usr/bin/env node
// Entry point: the compiled CLI (npm install builds dist/ through the prepare script).
import { main } from "../dist/plugin/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
