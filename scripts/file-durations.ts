// Writes test/support/file-durations.json (the seconds each test file took, which
// test/support/longest-first.ts orders the lanes by) from vitest JSON reports:
//   node_modules/.bin/node node_modules/vitest/vitest.mjs run --project process --reporter=json --outputFile.json=/tmp/process.json
//   node_modules/.bin/node scripts/file-durations.ts /tmp/process.json [more reports...]
// Files already in the list and absent from the reports keep their figure.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DURATIONS_FILE } from '../test/support/longest-first.ts';

interface JsonReport {
  testResults: Array<{ name: string; startTime: number; endTime: number }>;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = DURATIONS_FILE;

const reports = process.argv.slice(2);
if (reports.length === 0) {
  console.error('usage: scripts/file-durations.ts <vitest json report>...');
  process.exit(2);
}
const durations: Record<string, number> = fs.existsSync(OUT) ? (JSON.parse(fs.readFileSync(OUT, 'utf8')) as Record<string, number>) : {};
for (const report of reports) {
  const parsed = JSON.parse(fs.readFileSync(report, 'utf8')) as JsonReport;
  for (const file of parsed.testResults) durations[path.relative(ROOT, file.name)] = Math.round((file.endTime - file.startTime) / 1000);
}
const sorted = Object.fromEntries(Object.entries(durations).sort(([a, x], [b, y]) => y - x || a.localeCompare(b)));
fs.writeFileSync(OUT, `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`${OUT}: ${Object.keys(sorted).length} files`);
