// Prints, at the very end of `make test`, which tests failed in which lane and why: CI keeps only the
// tail of the output, and a lane's own failure report scrolls away under the lanes that run after it.
// Reads the JSON report each vitest run wrote (--reporter=json); where a lane failed without a failed
// test in its report (an unhandled error, a worker that died), prints the tail of that lane's log.
//
//   node scripts/test-failures.ts <lane>=<report.json>:<log> ...
import { existsSync, readFileSync } from 'node:fs';

interface AssertionResult {
  readonly fullName: string;
  readonly status: string;
  readonly failureMessages: readonly string[];
}
interface FileResult {
  readonly name: string;
  readonly status: string;
  readonly message?: string;
  readonly assertionResults: readonly AssertionResult[];
}
interface JsonReport {
  readonly numFailedTests: number;
  readonly testResults: readonly FileResult[];
}

// Room for a failure that explains itself (a convergence that gave up prints what every member saw).
const MESSAGE_LINES = 80;
const LOG_LINES = 60;
// The log carries the reporter's colours; the summary is read as plain text.
const ANSI_ESCAPE = /\u001b\[[0-9;]*m/g;

function plainLines(text: string): string[] {
  return text.replace(ANSI_ESCAPE, '').split('\n');
}

/** A failure message's head, without the test runner's own stack frames. */
function messageHead(text: string): string {
  const lines = plainLines(text).filter((line) => !line.includes('/node_modules/'));
  return lines.slice(0, MESSAGE_LINES).join('\n');
}

/** The part of a lane's log that says why it failed: its unhandled errors if any, else its end. */
function logExcerpt(text: string): string {
  const lines = plainLines(text);
  const unhandled = lines.findIndex((line) => line.includes('Unhandled Error'));
  const from = unhandled >= 0 ? unhandled : Math.max(0, lines.length - LOG_LINES);
  return lines.slice(from, from + LOG_LINES).join('\n');
}

function readReport(path: string): JsonReport | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as JsonReport;
  } catch {
    return undefined;
  }
}

/** The failures one lane's report names, as printable blocks; empty when it names none. */
function failuresOf(report: JsonReport): string[] {
  const blocks: string[] = [];
  for (const file of report.testResults) {
    const failed = file.assertionResults.filter((test) => test.status === 'failed');
    for (const test of failed) {
      const message = test.failureMessages.join('\n') || '(no message)';
      blocks.push(`FAIL ${file.name} > ${test.fullName}\n${messageHead(message)}`);
    }
    if (failed.length === 0 && file.status === 'failed') {
      blocks.push(`FAIL ${file.name}\n${messageHead(file.message || '(no message)')}`);
    }
  }
  return blocks;
}

function summarizeLane(lane: string, reportPath: string, logPath: string): void {
  const report = readReport(reportPath);
  const blocks = report ? failuresOf(report) : [];
  if (blocks.length > 0) {
    console.log(`--- ${lane}: ${blocks.length} failed`);
    for (const block of blocks) console.log(`${block}\n`);
    return;
  }
  console.log(`--- ${lane}: no failed test in its report; from its log:`);
  console.log(existsSync(logPath) ? logExcerpt(readFileSync(logPath, 'utf8')) : '(no log)');
}

for (const argument of process.argv.slice(2)) {
  const match = /^([^=]+)=([^:]+):(.+)$/.exec(argument);
  if (!match) throw new Error(`expected <lane>=<report.json>:<log>, got ${argument}`);
  const [, lane, reportPath, logPath] = match;
  summarizeLane(lane!, reportPath!, logPath!);
}
