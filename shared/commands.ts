/**
 * The job commands (train, eval, infer, summary, prepare) and their options, defined once.
 *
 * The launcher builds its commander subcommands from these specs (so `launch train --help` lists them) and the
 * worker parses the same argv with the same specs, so the two can never disagree about an option.
 */
import { type Command, Option } from 'commander';

export interface OptionSpec {
  flags: string;
  description: string;
  defaultValue?: string | boolean | string[];
  /** repeatable option collecting values into an array (PaddleClas's `-o KEY=VALUE -o ...`) */
  repeatable?: boolean;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** train/eval run one worker per device under supervision; the others run in the launcher's process */
  distributed: boolean;
  arguments?: string[];
  options: OptionSpec[];
}

const configOptions: OptionSpec[] = [
  { flags: '-c, --config <file>', description: 'PaddleClas YAML config (default: the built-in quickstart)' },
  {
    flags: '-o, --override <KEY=VALUE>',
    description: 'override a config key (dotted path, repeatable)',
    repeatable: true,
  },
];

export const COMMANDS: CommandSpec[] = [
  {
    name: 'train',
    summary: 'train a model (one worker per device)',
    distributed: true,
    options: [
      ...configOptions,
      {
        flags: '--resume <dir|auto>',
        description: "resume from a checkpoint directory, or 'auto' for the latest complete one",
      },
    ],
  },
  { name: 'eval', summary: 'evaluate a model on the validation set', distributed: true, options: [...configOptions] },
  {
    name: 'infer',
    summary: 'classify images and print the top-5 classes',
    distributed: false,
    options: [
      { flags: '-i, --image_file <path>', description: 'image file or folder' },
      {
        flags: '-m, --model <name>',
        description: 'architecture, e.g. HarDNet68 (default: the one a checkpoint of this tool names)',
      },
      { flags: '--pretrained_model <file>', description: 'weights: an official .pth or a checkpoint of this tool' },
      { flags: '--classes_num <n>', description: "number of classes (default: the checkpoint's, else 1000)" },
      {
        flags: '--resize_short <n>',
        description:
          "resize the short side to this many pixels (default: 256, or on a checkpoint of this tool the VALID transforms of its run's config.yaml)",
      },
      { flags: '--crop_size <n>', description: 'centre crop size (default: 224, or as --resize_short)' },
      { flags: '--top_k <n>', description: 'how many classes to print', defaultValue: '5' },
      { flags: '--backend <name>', description: 'auto | tensorflow | wasm | cpu', defaultValue: 'auto' },
    ],
  },
  {
    name: 'summary',
    summary: 'print parameter, BN-buffer and MAC counts of a model',
    distributed: false,
    options: [
      { flags: '-m, --model <name>', description: 'architecture, e.g. HarDNet68' },
      { flags: '--image_size <n>', description: 'input height and width', defaultValue: '224' },
      { flags: '--classes_num <n>', description: 'number of classes', defaultValue: '1000' },
      { flags: '--json', description: 'print one JSON object' },
    ],
  },
  {
    name: 'prepare',
    summary: 'write a dataset as image files with PaddleClas file lists',
    distributed: false,
    arguments: ['<dataset>'],
    options: [
      { flags: '--src <dir>', description: 'source directory', defaultValue: '/usr/share/datasets/fashion-mnist' },
      { flags: '--out <dir>', description: 'output directory', defaultValue: 'data/fashion-mnist' },
    ],
  },
  {
    name: 'plot',
    summary: "draw a run's loss, top-1 and learning-rate curves from its metrics.jsonl into one PNG",
    distributed: false,
    arguments: ['<run>'],
    options: [
      {
        flags: '-o, --output <png>',
        description:
          'PNG to write (default: curves.png beside the metrics.jsonl it reads, e.g. <model_save_dir>/<model>/curves.png)',
      },
    ],
  },
];

export function commandSpec(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** Add a spec's arguments and options to a commander command. */
export function applySpec(cmd: Command, spec: CommandSpec): Command {
  cmd.description(spec.summary);
  for (const a of spec.arguments ?? []) cmd.argument(a);
  for (const o of spec.options) {
    const opt = new Option(o.flags, o.description);
    if (o.repeatable) opt.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]).default([]);
    else if (o.defaultValue !== undefined) opt.default(o.defaultValue);
    cmd.addOption(opt);
  }
  return cmd;
}
