/**
 * The few kinds of error the tool tells apart, each carrying what it names. The CLI (launcher/cli.ts,
 * worker/main.ts) prints one line for any of them and exits with its exitCode: 2 for usage and config errors
 * (nothing was started, or a worker was started wrongly), 1 for failures of a run. Anything else that reaches
 * the top is a bug: one line too, exit 1, and the stack with HARDNET_DEBUG=1.
 */
export abstract class HardnetError extends Error {
  abstract readonly exitCode: number;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A command line, environment or secret file that cannot work: exit 2, before anything starts. */
export class UsageError extends HardnetError {
  readonly exitCode: number = 2;
}

/** A config file or `-o` override that cannot work; `file` is the config's source, `key` its dotted path. */
export class ConfigError extends UsageError {
  constructor(
    message: string,
    readonly file?: string,
    readonly key?: string,
  ) {
    super(message);
  }
}

/** A dataset, file list or image that cannot be read or used; `file` names it where there is one. */
export class DataError extends HardnetError {
  readonly exitCode: number = 1;
  constructor(
    message: string,
    readonly file?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A checkpoint or weights file (.pth, weights.json, state.json) that cannot be read, used or written. */
export class CheckpointError extends HardnetError {
  readonly exitCode: number = 1;
  constructor(
    message: string,
    readonly path?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A collective that failed: `culprit` is the rank it blames where it knows one, `seq` the collective's number. */
export class CollectiveError extends HardnetError {
  readonly exitCode: number = 1;
  constructor(
    message: string,
    readonly culprit?: number,
    readonly seq?: number,
  ) {
    super(message);
  }
}

/**
 * The exit code and the one line to print for an error that ended a command. Ours say what is wrong in their
 * message; anything else is a bug, and the line says so (with its class, and how to see the stack).
 */
export function describeFailure(e: unknown): { exitCode: number; line: string } {
  if (e instanceof HardnetError) {
    const cause = e.cause instanceof Error && !e.message.includes(e.cause.message) ? ` (${e.cause.message})` : '';
    return { exitCode: e.exitCode, line: `${e.message}${cause}` };
  }
  const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return { exitCode: 1, line: `${what} (an internal error; HARDNET_DEBUG=1 prints the stack)` };
}
