/** The training meter: its log lines and metrics.jsonl records come from the same figures, PaddleClas's way. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { endLine, trainLine } from '../shared/log_format.js';
import { MetricsWriter, readMetrics } from '../shared/metrics.js';
import { validEndLine, type EvalResult } from '../worker/train/evaluate.js';
import { TrainMeter, type MeterSettings } from '../worker/train/meter.js';
import type { StepResult } from '../worker/train/step.js';

const SETTINGS: MeterSettings = { topk: 5, printInterval: 1, showAccuracy: true, perWorkerBatch: 4, worldSize: 2 };

/** Step `i` of a made-up epoch: every figure differs from step to step, so a mixed-up mean shows. */
function stepResult(i: number): StepResult {
  return {
    loss: 2 - i / 16,
    correct: { top1: i % 3, topk: (i % 3) + 1 },
    n: 4,
    split: { data: (i + 1) / 1000, compute: 0.02 + i * 2e-4, allreduce: 0.005, optimizer: 0.002 * (i % 2) },
    stop: false,
  };
}

/** An epoch of `steps` steps through a meter; its log lines and its metrics records. */
function runEpoch(settings: MeterSettings, steps: number, validation?: EvalResult) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meter-'));
  const file = path.join(dir, 'metrics.jsonl');
  const lines: string[] = [];
  const meter = new TrainMeter((line) => lines.push(line), new MetricsWriter(file), settings);
  meter.startEpoch(3);
  for (let i = 0; i < steps; i++) {
    meter.recordStep(stepResult(i), { lr: 0.1 - i / 1000, iteration: 100 + i });
    meter.startBatch();
  }
  meter.endEpoch();
  if (validation) meter.endValidation(3, validation, 100 + steps);
  meter.close();
  const records = readMetrics(file);
  fs.rmSync(dir, { recursive: true, force: true });
  return { lines, records };
}

test('each train line prints the figures of its metrics record; reader_cost restarts after the first 10 steps', () => {
  const { lines, records } = runEpoch(SETTINGS, 12);
  const steps = records.filter((r) => !r.end);
  assert.equal(steps.length, 12);
  steps.forEach((r, i) => {
    const expected = stepResult(i);
    assert.equal(r.epoch, 3);
    assert.equal(r.step, i);
    assert.equal(r.iteration, 100 + i);
    assert.equal(r.loss, expected.loss);
    assert.equal(r.top1, expected.correct.top1 / 4);
    assert.equal(r.top5, expected.correct.topk / 4);
    assert.deepEqual(
      [r.data_s, r.compute_s, r.allreduce_s, r.optimizer_s],
      [expected.split.data, expected.split.compute, expected.split.allreduce, expected.split.optimizer],
    );
    assert.equal(r.ips, 4 / Math.max(r.batch_cost, 1e-9));
    const line = trainLine({
      epoch: r.epoch,
      step: r.step,
      top1: r.top1,
      top5: r.top5,
      loss: r.loss,
      lr: r.lr,
      topk: 5,
      batchCost: r.batch_cost,
      readerCost: r.reader_cost,
      ips: r.ips,
    });
    assert.equal(lines[i], line);
  });
  // reader_cost is the mean of the data waits so far, from step 10 on only of steps 10, 11, ...
  assert.ok(Math.abs(steps[9].reader_cost - 5.5 / 1000) < 1e-15, `step 9: ${steps[9].reader_cost}`);
  assert.ok(Math.abs(steps[10].reader_cost - 11 / 1000) < 1e-15, `step 10: ${steps[10].reader_cost}`);
  assert.ok(Math.abs(steps[11].reader_cost - 11.5 / 1000) < 1e-15, `step 11: ${steps[11].reader_cost}`);
});

test("the END line prints the END record's figures: epoch means of every step, ips from whole batches", () => {
  const { lines, records } = runEpoch(SETTINGS, 12);
  const end = records.find((r) => r.end)!;
  assert.equal(end.mode, 'train');
  assert.equal(end.step, 12);
  assert.equal(end.lr, 0);
  const losses = Array.from({ length: 12 }, (_, i) => stepResult(i).loss);
  assert.ok(Math.abs(end.loss - losses.reduce((a, b) => a + b) / 12) < 1e-12);
  assert.equal(end.batch_cost, records[11].batch_cost, 'the epoch batch_cost is the last running mean');
  assert.equal(end.reader_cost, records[11].reader_cost);
  const endText = lines[12];
  // the END line's batch_cost_sum is the epoch's seconds, and ips the whole batches over it
  const epochSeconds = (12 * 4) / end.ips;
  const expected = endLine({
    epoch: 3,
    mode: 'train',
    topk: 5,
    top1: end.top1,
    top5: end.top5,
    loss: end.loss,
    batchCost: end.batch_cost,
    readerCost: end.reader_cost,
    batchCostSum: epochSeconds,
    ips: end.ips,
  });
  assert.equal(endText, expected);
  assert.match(
    lines[13],
    /^epoch 3 time split per step: data wait 0\.0065 s, forward\+backward 0\.0211 s, all-reduce 0\.0050 s, optimizer 0\.0010 s \(epoch \d+\.\d s\)$/,
  );
  assert.equal(lines.length, 14);
});

test('with mixup/cutmix neither the lines nor the records carry train accuracy', () => {
  const { lines, records } = runEpoch({ ...SETTINGS, showAccuracy: false }, 2);
  for (const r of records) assert.ok(!('top1' in r) && !('top5' in r), JSON.stringify(r));
  for (const line of lines) assert.doesNotMatch(line, /top1|top5/);
});

test("a validation pass's END line and record carry the same figures, ips per worker", () => {
  const v: EvalResult = {
    top1: 0.625,
    top5: 0.875,
    loss: 1.25,
    samples: 64,
    batchCost: 0.5,
    readerCost: 0.01,
    seconds: 4,
  };
  const { lines, records } = runEpoch(SETTINGS, 1, v);
  const valid = records.find((r) => r.mode === 'valid')!;
  assert.deepEqual(
    { ...valid, time: undefined },
    {
      mode: 'valid',
      end: true,
      epoch: 3,
      step: 101,
      top1: 0.625,
      top5: 0.875,
      loss: 1.25,
      lr: 0,
      batch_cost: 0.5,
      reader_cost: 0.01,
      ips: 64 / 2 / 4,
      time: undefined,
    },
  );
  assert.equal(lines.at(-1), validEndLine(3, v, 5, 2));
});
