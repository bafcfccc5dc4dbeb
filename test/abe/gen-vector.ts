/**
 * Writes the frozen FAME vector to stdout (JSON). Regenerate only on a deliberate format change:
 *   npx tsc -p tsconfig.json && node dist/test/abe/gen-vector.js > test/vectors/abe-fame-v1.json
 */
import { buildVector } from "./vector-build.js";

process.stdout.write(JSON.stringify(buildVector(), null, 2) + "\n");
