/**
 * `launch plot <run>`: loss, top-1 accuracy and learning-rate curves of a run, from its metrics.jsonl, as one PNG.
 *
 * The chart is an SVG written here and rasterised by sharp (librsvg), which the project already has for images:
 * three line panels need axes, ticks and polylines only, and the Node chart libraries either need a browser or
 * canvas (a native build) or pull in a large dependency for that.
 */
import { UsageError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { readMetrics, type MetricsRecord } from '../../shared/metrics.js';

export interface PlotOptions {
  /** a run directory (holding metrics.jsonl, or one sub-directory that does) or a metrics.jsonl file */
  target: string;
  /** PNG to write; default `<the metrics file's dir>/curves.png` */
  output?: string;
}

export class PlotError extends UsageError {}

/** Find the metrics file a target names. */
export function resolveMetricsFile(target: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch {
    throw new PlotError(`plot: ${target} does not exist (expected a run directory or a metrics.jsonl file)`);
  }
  if (st.isFile()) return target;
  const direct = path.join(target, 'metrics.jsonl');
  if (fs.existsSync(direct)) return direct;
  // model_save_dir holds one directory per architecture: accept it when exactly one of them has metrics
  const nested = fs
    .readdirSync(target, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(target, d.name, 'metrics.jsonl')))
    .map((d) => path.join(target, d.name, 'metrics.jsonl'));
  if (nested.length === 1) return nested[0];
  if (nested.length > 1) throw new PlotError(`plot: ${target} holds several runs; name one of: ${nested.join(', ')}`);
  throw new PlotError(`plot: no metrics.jsonl in ${target} or its sub-directories`);
}

interface Series {
  label: string;
  color: string;
  points: [number, number][];
  /** draw markers at the points (few, e.g. one per epoch) */
  markers?: boolean;
}

interface Panel {
  title: string;
  yLabel: string;
  series: Series[];
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Average runs of points so a long run (75k logged steps) stays a light SVG; keeps the curve's shape. */
function thin(points: [number, number][], max = 1500): [number, number][] {
  if (points.length <= max) return points;
  const out: [number, number][] = [];
  const per = points.length / max;
  for (let b = 0; b < max; b++) {
    const chunk = points.slice(Math.floor(b * per), Math.floor((b + 1) * per));
    if (chunk.length)
      out.push([
        chunk.reduce((s, p) => s + p[0], 0) / chunk.length,
        chunk.reduce((s, p) => s + p[1], 0) / chunk.length,
      ]);
  }
  return out;
}

/** Turn the records into curves with x in epochs (fractional for steps). */
export function buildPanels(records: MetricsRecord[]): Panel[] {
  const trainSteps = records.filter((r) => r.mode === 'train' && !r.end);
  // steps per epoch: from the train END records when there are any, else the largest logged step + 1
  const ends = records.filter((r) => r.mode === 'train' && r.end).map((r) => r.step);
  const stepsPerEpoch = Math.max(1, ...(ends.length ? ends : trainSteps.map((r) => r.step + 1)));
  const x = (r: MetricsRecord): number => r.epoch + r.step / stepsPerEpoch;
  const curve = (pick: (r: MetricsRecord) => number | undefined | null): [number, number][] =>
    thin(
      trainSteps
        .flatMap((r) => {
          const v = pick(r);
          return num(v) ? [[x(r), v] as [number, number]] : [];
        })
        .sort((a, b) => a[0] - b[0]),
    );

  // validation: one point per epoch at its end; from the END record, else the mean of that epoch's step records
  const validByEpoch = new Map<number, { loss: number[]; top1: number[]; end?: MetricsRecord }>();
  for (const r of records.filter((q) => q.mode === 'valid')) {
    const e = validByEpoch.get(r.epoch) ?? { loss: [], top1: [] };
    if (r.end) e.end = r;
    else {
      e.loss.push(r.loss);
      if (num(r.top1)) e.top1.push(r.top1);
    }
    validByEpoch.set(r.epoch, e);
  }
  const mean = (a: number[]): number | undefined => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : undefined);
  const validPoints = (pick: 'loss' | 'top1'): [number, number][] =>
    [...validByEpoch.entries()]
      .sort((a, b) => a[0] - b[0])
      .flatMap(([epoch, e]) => {
        const v = e.end ? e.end[pick] : mean(e[pick]);
        return num(v) ? [[epoch + 1, v] as [number, number]] : [];
      });

  return [
    {
      title: 'Loss',
      yLabel: 'loss',
      series: [
        { label: 'train', color: '#1f77b4', points: curve((r) => r.loss) },
        { label: 'valid', color: '#d62728', points: validPoints('loss'), markers: true },
      ],
    },
    {
      title: 'Top-1 accuracy',
      yLabel: 'top-1',
      series: [
        { label: 'train', color: '#1f77b4', points: curve((r) => r.top1) },
        { label: 'valid', color: '#d62728', points: validPoints('top1'), markers: true },
      ],
    },
    { title: 'Learning rate', yLabel: 'lr', series: [{ label: 'lr', color: '#2ca02c', points: curve((r) => r.lr) }] },
  ];
}

/** 1-2-5 ticks covering [lo, hi]. */
function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (hi === lo) {
    hi = lo + (lo === 0 ? 1 : Math.abs(lo) * 0.1);
    lo = lo - (lo === 0 ? 0 : Math.abs(lo) * 0.1);
  }
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < hi) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

function tickLabel(v: number, step: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5) return v.toExponential(1);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(decimals);
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const PANEL_W = 520;
const PANEL_H = 440;
const HEADER_H = 50;
const M = { left: 72, right: 20, top: 40, bottom: 56 };
const FONT = 'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif"';

function panelSvg(p: Panel, ox: number, oy: number): string {
  const w = PANEL_W - M.left - M.right;
  const h = PANEL_H - M.top - M.bottom;
  const all = p.series.flatMap((s) => s.points);
  const out: string[] = [`<g transform="translate(${ox},${oy})" ${FONT}>`];
  out.push(
    `<text x="${PANEL_W / 2}" y="24" font-size="17" font-weight="bold" text-anchor="middle">${esc(p.title)}</text>`,
  );
  out.push(`<rect x="${M.left}" y="${M.top}" width="${w}" height="${h}" fill="white" stroke="#444"/>`);
  if (all.length === 0) {
    out.push(
      `<text x="${M.left + w / 2}" y="${M.top + h / 2}" font-size="14" text-anchor="middle" fill="#888">no data</text></g>`,
    );
    return out.join('\n');
  }
  const xs = niceTicks(Math.min(0, ...all.map((q) => q[0])), Math.max(...all.map((q) => q[0])));
  // a little headroom so points at the extremes do not sit on the frame
  const [lo, hi] = [Math.min(...all.map((q) => q[1])), Math.max(...all.map((q) => q[1]))];
  const pad = (hi - lo) * 0.03;
  const ys = niceTicks(lo >= 0 ? Math.max(0, lo - pad) : lo - pad, hi + pad); // no negative axis for lr, loss, accuracy
  const [x0, x1, y0, y1] = [xs[0], xs[xs.length - 1], ys[0], ys[ys.length - 1]];
  const sx = (v: number): number => M.left + ((v - x0) / (x1 - x0)) * w;
  const sy = (v: number): number => M.top + h - ((v - y0) / (y1 - y0)) * h;
  const xStep = xs.length > 1 ? xs[1] - xs[0] : 1;
  const yStep = ys.length > 1 ? ys[1] - ys[0] : 1;
  for (const t of xs) {
    out.push(`<line x1="${sx(t)}" y1="${M.top}" x2="${sx(t)}" y2="${M.top + h}" stroke="#e5e5e5"/>`);
    out.push(
      `<text x="${sx(t)}" y="${M.top + h + 18}" font-size="12" text-anchor="middle">${tickLabel(t, xStep)}</text>`,
    );
  }
  for (const t of ys) {
    out.push(`<line x1="${M.left}" y1="${sy(t)}" x2="${M.left + w}" y2="${sy(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${sy(t) + 4}" font-size="12" text-anchor="end">${tickLabel(t, yStep)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${w}" height="${h}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${M.left + w / 2}" y="${PANEL_H - 14}" font-size="13" text-anchor="middle">epoch</text>`);
  out.push(
    `<text transform="translate(16,${M.top + h / 2}) rotate(-90)" font-size="13" text-anchor="middle">${esc(p.yLabel)}</text>`,
  );
  p.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const pts = s.points.map(([a, b]) => `${sx(a).toFixed(1)},${sy(b).toFixed(1)}`).join(' ');
    out.push(
      `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="${s.markers ? 2 : 1.5}" stroke-linejoin="round"/>`,
    );
    if (s.markers || s.points.length === 1) {
      for (const [a, b] of s.points)
        out.push(`<circle cx="${sx(a).toFixed(1)}" cy="${sy(b).toFixed(1)}" r="4" fill="${s.color}"/>`);
    }
    // legend, top right inside the plot
    const ly = M.top + 18 + i * 20;
    const lx = M.left + w - 90;
    out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 24}" y2="${ly - 4}" stroke="${s.color}" stroke-width="3"/>`);
    out.push(`<text x="${lx + 30}" y="${ly}" font-size="13">${esc(s.label)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** The whole figure as SVG text. */
export function curvesSvg(records: MetricsRecord[], title: string): string {
  const panels = buildPanels(records);
  const width = PANEL_W * panels.length;
  const height = PANEL_H + HEADER_H;
  const valid = panels[1].series[1].points;
  const best = valid.reduce<[number, number] | undefined>((b, q) => (!b || q[1] > b[1] ? q : b), undefined);
  const subtitle = best ? ` — best valid top-1 ${best[1].toFixed(5)} in epoch ${best[0] - 1}` : '';
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="32" font-size="20" text-anchor="middle" ${FONT}>${esc(title + subtitle)}</text>`,
    ...panels.map((p, i) => panelSvg(p, i * PANEL_W, HEADER_H)),
    '</svg>',
  ].join('\n');
}

/** Draw a run's curves; returns the PNG's path. */
export async function plot(opts: PlotOptions, out: (line: string) => void = console.log): Promise<string> {
  if (!opts.target) throw new PlotError('plot: name a run directory or a metrics.jsonl file');
  const file = resolveMetricsFile(opts.target);
  const records = readMetrics(file);
  if (records.length === 0) throw new PlotError(`plot: ${file} has no records yet`);
  const output = opts.output ?? path.join(path.dirname(file), 'curves.png');
  fs.mkdirSync(path.dirname(path.resolve(output)), { recursive: true });
  await sharp(Buffer.from(curvesSvg(records, path.dirname(file))))
    .png()
    .toFile(output);
  out(`curves of ${records.length} records from ${file}: ${output}`);
  return output;
}
