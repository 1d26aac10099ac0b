/**
 * The lifeline protocol between a worker's shim (launcher/shim.ts) and the launcher (launcher/supervise.ts):
 * one JSON object per line, shim to launcher only. Both sides use these types and functions, so a message
 * one side writes is one the other reads.
 */

export type ShimMessage =
  /** the worker program started with this pid */
  | { kind: 'started'; pid: number }
  /** the worker program could not be started (not found, not executable) */
  | { kind: 'spawnError'; error: string }
  /** the worker program ended; its left-over children are being cleared */
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null };

export function encodeShimMessage(msg: ShimMessage): string {
  return `${JSON.stringify(msg)}\n`;
}

/** A line longer than this is not from our shim: a few small fields and a spawn error message. */
const MAX_LINE_BYTES = 64 * 1024;

export class ShimProtocolError extends Error {
  constructor(readonly detail: string) {
    super(`shim lifeline: ${detail}`);
    this.name = 'ShimProtocolError';
  }
}

function parseMessage(line: string): ShimMessage {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new ShimProtocolError('a line that is not JSON');
  }
  const m = v as Record<string, unknown>;
  switch (m?.kind) {
    case 'started':
      if (Number.isInteger(m.pid) && (m.pid as number) > 0) return { kind: 'started', pid: m.pid as number };
      break;
    case 'spawnError':
      if (typeof m.error === 'string') return { kind: 'spawnError', error: m.error };
      break;
    case 'exited':
      if ((m.code === null || Number.isInteger(m.code)) && (m.signal === null || typeof m.signal === 'string')) {
        return { kind: 'exited', code: m.code as number | null, signal: m.signal as NodeJS.Signals | null };
      }
      break;
  }
  throw new ShimProtocolError(`an unknown or malformed message (kind ${JSON.stringify(m?.kind)})`);
}

/**
 * Splits the lifeline's byte stream into messages; chunks may cut lines anywhere. A line that is not a message
 * (a bug, or something else writing to the lifeline) ends the reading: the messages before it are returned
 * with the error, and every later chunk is ignored.
 */
export class ShimMessageReader {
  private buffered = '';
  private failed: ShimProtocolError | undefined;

  push(chunk: Buffer | string): { messages: ShimMessage[]; error?: ShimProtocolError } {
    const messages: ShimMessage[] = [];
    if (this.failed) return { messages };
    this.buffered += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    try {
      for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
        messages.push(parseMessage(this.buffered.slice(0, nl)));
        this.buffered = this.buffered.slice(nl + 1);
      }
      if (this.buffered.length > MAX_LINE_BYTES) throw new ShimProtocolError(`a line over ${MAX_LINE_BYTES} bytes`);
    } catch (e) {
      this.failed = e as ShimProtocolError;
      this.buffered = '';
      return { messages, error: this.failed };
    }
    return { messages };
  }
}
