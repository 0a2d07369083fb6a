// The client's types come from the service's own OpenAPI schema.
//   node scripts/schema.mjs write   regenerate src/schema.ts from the installed personae
//   node scripts/schema.mjs check   fail when src/schema.ts no longer matches the schema
// The schema is read from Python ($PERSONAE_PYTHON, else python3): personae.service.openapi_schema().
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import openapiTS, { astToString } from "openapi-typescript";

const mode = process.argv[2] ?? "check";
const python = process.env.PERSONAE_PYTHON ?? "python3";
const json = execFileSync(python, ["-c",
  "import json, personae.service as s; print(json.dumps(s.openapi_schema(), sort_keys=True))"],
  { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
const folder = mkdtempSync(join(tmpdir(), "personae-schema-"));
const schemaFile = join(folder, "openapi.json");
writeFileSync(schemaFile, json);
const header = "// Generated from the personae service's OpenAPI schema by scripts/schema.mjs: do not edit.\n";
const generated = header + astToString(await openapiTS(new URL(`file://${schemaFile}`)));
const target = new URL("../src/schema.ts", import.meta.url);
if (mode === "write") {
  writeFileSync(target, generated);
  console.log(`wrote ${target.pathname}`);
} else {
  let current = "";
  try { current = readFileSync(target, "utf8"); } catch { /* missing: a mismatch */ }
  if (current !== generated) {
    console.error("clients/typescript/src/schema.ts does not match the service's OpenAPI schema: " +
      "run `npm run schema` in clients/typescript and commit the result");
    process.exit(1);
  }
  console.log("src/schema.ts matches the service's OpenAPI schema");
}
