/**
 * Run a piece of hostile-input code in a fresh node process with a heap cap and a wall-clock limit, so that a
 * parser that hangs or allocates without bound fails the test instead of taking the test runner down with it.
 * The code is an ES module; it prints one line `RESULT <json>` when it finishes. Its peak resident memory
 * (getrusage maxrss, which counts array buffers and native allocations that the heap cap does not) comes back.
 */
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';

export interface Isolated {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  result?: any;
  /** peak resident set size of the child, in MB */
  maxRssMb?: number;
  stdout: string;
  stderr: string;
}

/** A file: URL of a compiled module under dist/, for `import` inside isolated code. */
export function distUrl(fromTest: string, rel: string): string {
  return pathToFileURL(path.resolve(path.dirname(new URL(fromTest).pathname), '..', rel)).href;
}

export function runIsolated(code: string, o: { timeoutMs: number; maxOldSpaceMb?: number }): Promise<Isolated> {
  const wrapped = `${code}\nprocess.stdout.write('MAXRSS ' + process.resourceUsage().maxRSS + '\\n');\n`;
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [`--max-old-space-size=${o.maxOldSpaceMb ?? 256}`, '--input-type=module', '-e', wrapped],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const out: Isolated = { code, signal, timedOut, stdout, stderr };
      for (const line of stdout.split('\n')) {
        if (line.startsWith('RESULT ')) out.result = JSON.parse(line.slice(7));
        if (line.startsWith('MAXRSS ')) out.maxRssMb = Number(line.slice(7)) / 1024;
      }
      resolve(out);
    });
  });
}
