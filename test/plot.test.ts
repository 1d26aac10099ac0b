import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { commandSpec } from '../shared/commands.js';
import { MetricsWriter, readMetrics, MetricsError } from '../shared/metrics.js';
import { plot, PlotError } from '../worker/commands/plot.js';

/** A small 3-epoch run: falling loss, rising accuracy, cosine lr, one valid END record per epoch. */
function writeRun(file: string): void {
  const w = new MetricsWriter(file);
  const S = 50;
  const E = 3;
  for (let e = 0; e < E; e++) {
    for (let s = 0; s < S; s += 5) {
      const t = e * S + s;
      w.write({
        mode: 'train',
        epoch: e,
        step: s,
        iteration: t,
        loss: 2.3 * Math.exp(-t / 40) + 0.3,
        top1: 0.9 - 0.8 * Math.exp(-t / 40),
        top5: 0.99,
        lr: 0.05 * (1 + Math.cos((Math.PI * t) / (S * E))),
        batch_cost: 0.5,
        reader_cost: 0.01,
        allreduce_s: 0.02,
        ips: 256,
      });
    }
    w.write({
      mode: 'valid',
      end: true,
      epoch: e,
      step: 10,
      loss: 0.6 - 0.1 * e,
      top1: 0.7 + 0.05 * e,
      top5: 0.98,
      lr: 0,
      batch_cost: 0.2,
      reader_cost: 0.01,
      ips: 900,
    });
  }
  w.close();
}

/** Pixels close to an RGB colour (the curves' colours). */
async function countColour(png: string, rgb: [number, number, number]): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    if (Math.abs(data[i] - rgb[0]) < 30 && Math.abs(data[i + 1] - rgb[1]) < 30 && Math.abs(data[i + 2] - rgb[2]) < 30)
      n++;
  }
  return n;
}

test('plot draws loss, accuracy and lr curves of a run directory into <dir>/curves.png', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'plot-'));
  const runDir = path.join(root, 'HarDNet39ds');
  writeRun(path.join(runDir, 'metrics.jsonl'));
  const said: string[] = [];
  // model_save_dir (one architecture directory below) is accepted as well as the run directory itself
  const out = await plot({ target: root }, (l) => said.push(l));
  assert.equal(out, path.join(runDir, 'curves.png'));
  assert.match(said[0], /curves of 33 records/);
  const meta = await sharp(out).metadata();
  assert.equal(meta.format, 'png');
  assert.ok(
    meta.width! >= 1200 && meta.width! <= 2000 && meta.height! >= 400 && meta.height! <= 800,
    `${meta.width}x${meta.height}`,
  );
  // the curves are really drawn: train blue, valid red, lr green
  assert.ok((await countColour(out, [0x1f, 0x77, 0xb4])) > 500, 'train curves');
  assert.ok((await countColour(out, [0xd6, 0x27, 0x28])) > 200, 'valid curves');
  assert.ok((await countColour(out, [0x2c, 0xa0, 0x2c])) > 300, 'lr curve');
});

test('plot takes a metrics.jsonl and --output; valid step records are averaged per epoch', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'plot-'));
  const file = path.join(root, 'metrics.jsonl');
  const w = new MetricsWriter(file);
  w.write({ mode: 'train', epoch: 0, step: 0, loss: 2, top1: 0.1, lr: 0.1, batch_cost: 1, reader_cost: 0, ips: 10 });
  w.write({ mode: 'valid', epoch: 0, step: 0, loss: 1, top1: 0.5, lr: 0, batch_cost: 1, reader_cost: 0, ips: 10 });
  w.close();
  const out = await plot({ target: file, output: path.join(root, 'sub', 'c.png') }, () => {});
  assert.equal(out, path.join(root, 'sub', 'c.png'));
  assert.equal((await sharp(out).metadata()).format, 'png');
});

test('metrics.jsonl: append on resume, malformed lines name file and line, a cut-off last line is dropped', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'plot-'));
  const file = path.join(root, 'metrics.jsonl');
  const rec = { mode: 'train' as const, epoch: 0, step: 0, loss: 1, lr: 0.1, batch_cost: 1, reader_cost: 0, ips: 1 };
  new MetricsWriter(file).write(rec);
  const resumed = new MetricsWriter(file, { append: true });
  resumed.write({ ...rec, epoch: 1 });
  resumed.close();
  assert.deepEqual(
    readMetrics(file).map((r) => r.epoch),
    [0, 1],
  );
  const fresh = new MetricsWriter(file);
  fresh.close();
  assert.deepEqual(readMetrics(file), []);

  fs.writeFileSync(file, `${JSON.stringify(rec)}\n{"epoch": 1, "step": 0, "lo`);
  assert.equal(readMetrics(file).length, 1);
  fs.writeFileSync(file, `${JSON.stringify(rec)}\nnot json\n${JSON.stringify(rec)}\n`);
  assert.throws(
    () => readMetrics(file),
    (e: Error) => e instanceof MetricsError && e.message.includes('metrics.jsonl line 2: not a JSON object'),
  );
  fs.writeFileSync(file, `${JSON.stringify({ ...rec, loss: 'high' })}\n`);
  assert.throws(() => readMetrics(file), /line 1: key 'loss' must be a number, got "high"/);
  fs.writeFileSync(file, '');
  await assert.rejects(
    plot({ target: file }, () => {}),
    (e: Error) => e instanceof PlotError && /has no records yet/.test(e.message),
  );
  await assert.rejects(
    plot({ target: path.join(root, 'nope') }, () => {}),
    /does not exist/,
  );
  await assert.rejects(
    plot({ target: fs.mkdtempSync(path.join(os.tmpdir(), 'plot-empty-')) }, () => {}),
    /no metrics\.jsonl in/,
  );
});

test('the plot command is declared for the launcher and the worker', () => {
  const spec = commandSpec('plot');
  assert.ok(spec);
  assert.equal(spec.distributed, false);
  assert.deepEqual(spec.arguments, ['<run>']);
  assert.equal(spec.options[0].flags, '-o, --output <png>');
});
