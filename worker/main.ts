#!/usr/bin/env node
/**
 * The worker's entry point: `node dist/worker/main.js <command> [options]`. The launcher spawns it once per
 * device for train/eval (the environment contract in shared/env.ts says which rank it is) and calls
 * `runCommand` in its own process for infer/summary/prepare. Options are parsed with the same specs the launcher
 * shows in --help (shared/commands.ts).
 */
import { Command, CommanderError } from 'commander';
import { fileURLToPath } from 'node:url';
import { COMMANDS, applySpec, commandSpec } from '../shared/commands.js';
import { describeFailure } from '../shared/errors.js';

type Handler = (opts: Record<string, unknown>, args: string[]) => Promise<number>;

const HANDLERS: Record<string, Handler> = {
  train: async (o) => (await import('./train/train.js')).train(o as never),
  eval: async (o) => (await import('./commands/eval.js')).evalCommand(o as never),
  summary: async (o) => (await import('./commands/summary.js')).summary(o as never),
  infer: async (o) => (await import('./commands/infer.js')).infer(o as never),
  plot: async (o, args) => {
    await (await import('./commands/plot.js')).plot({ target: args[0], output: o.output as string | undefined });
    return 0;
  },
  prepare: async (o, args) => {
    await (await import('./data/prepare.js')).prepareDataset(args[0], o as never);
    return 0;
  },
};

/** Run one command with its argv (after the command name); resolves to the process exit code. */
export async function runCommand(name: string, argv: string[]): Promise<number> {
  const spec = commandSpec(name);
  const handler = HANDLERS[name];
  if (!spec || !handler) {
    process.stderr.write(
      `error: unknown command '${name}' (expected one of: ${COMMANDS.map((c) => c.name).join(', ')})\n`,
    );
    return 2;
  }
  const cmd = applySpec(new Command(name), spec).exitOverride().allowExcessArguments(false);
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  try {
    return await handler(cmd.opts(), cmd.args);
  } catch (e) {
    // one line and the error's exit code (2: usage or config); the stack only on request
    const { exitCode, line } = describeFailure(e);
    process.stderr.write(`error: ${line}\n`);
    if (process.env.HARDNET_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return exitCode;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [name = '', ...rest] = process.argv.slice(2);
  runCommand(name, rest).then((code) => {
    process.exitCode = code;
  });
}
