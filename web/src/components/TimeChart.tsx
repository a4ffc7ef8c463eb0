// A time series drawn with uPlot (canvas): x in seconds since the epoch, one line per series.
// Redrawn with setData when only the data changes; rebuilt when the series change. Each draw
// of new data leaves a User Timing measure `chart-draw:<testId>` (what benchmarks/chart.py
// reads).
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  values: (number | null)[];
}

const COLOURS = ['#228be6', '#fa5252', '#40c057', '#fab005', '#7950f2', '#15aabf', '#e64980',
  '#fd7e14', '#82c91e', '#868e96'];

/** A distinct colour for line i of n: the palette, then hues a golden angle apart. */
export function colour(i: number, n: number): string {
  return n <= COLOURS.length ? COLOURS[i] : `hsl(${Math.round((i * 137.508) % 360)}, 70%, 42%)`;
}

export function TimeChart({ times, series, height = 240, label, format, testId, range, minSpan }: {
  times: number[];
  range?: [number, number]; // the x axis's span (seconds), else the data's
  minSpan?: number; // without a range: the x axis spans at least this many seconds up to the last point
  series: ChartSeries[];
  height?: number;
  label: string; // the chart's accessible name
  format: (value: number) => string; // y axis values
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  // the x range is read through a ref, so a new range (each refetch moves `end`) is new data,
  // not a new chart; whether there is a range at all is part of the chart's shape
  const span = useRef(range);
  span.current = range;
  const shape = [...series.map((s) => s.label), range ? 'range' : ''].join('\u0000');
  // each draw of new data (a build, or setData) leaves a User Timing measure `chart-draw:<id>`
  // from handing the data over to uPlot's draw hook, with what was drawn as its detail
  const pending = useRef<{ started: number; points: number; series: number } | null>(null);
  const builtWith = useRef<[number[] | null, ChartSeries[] | null]>([null, null]);
  const measureDraw = () => {
    const drawn = pending.current;
    if (!drawn) return; // a redraw without new data (a resize, the cursor): not measured
    pending.current = null;
    const name = `chart-draw:${testId ?? label}`;
    try {
      performance.clearMeasures(name); // the latest draw's only: nothing piles up
      performance.measure(name, { start: drawn.started, end: performance.now(),
        detail: { points: drawn.points, series: drawn.series } });
    } catch {
      // a browser without User Timing level 3: nothing is measured
    }
  };

  useEffect(() => {
    const element = box.current;
    if (!element) return undefined;
    pending.current = { started: performance.now(), points: times.length, series: series.length };
    builtWith.current = [times, series];
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height,
      series: [{}, ...series.map((s, i) => ({
        label: s.label, stroke: colour(i, series.length), width: 1.5, spanGaps: false,
      }))],
      axes: [{}, { size: 80, values: (_u, ticks) => ticks.map((v) => format(v)) }],
      scales: {
        x: range ? { time: true, range: (_u, min, max) => span.current ?? [min, max] }
          : minSpan ? { time: true, range: (_u, min, max) => (max - min < minSpan ? [max - minSpan, max] : [min, max]) }
            : { time: true },
      },
      // many lines (one per container): every name stays listed, values only on hover for a
      // few, and the line nearest the cursor stands out
      legend: { live: series.length <= 12 },
      cursor: { focus: { prox: 16 } },
      focus: { alpha: series.length > 2 ? 0.25 : 1 },
      hooks: { draw: [() => measureDraw()] }, // uPlot draws in a microtask after new uPlot()
    };
    const created = new uPlot(options, [times, ...series.map((s) => s.values)] as uPlot.AlignedData,
      element);
    plot.current = created;
    const resize = new ResizeObserver(() => {
      created.setSize({ width: Math.max(200, element.clientWidth), height });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      created.destroy();
      plot.current = null;
    };
    // rebuilt when the set of series changes; data alone goes through setData below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height]);

  useEffect(() => {
    if (!plot.current) return;
    if (builtWith.current[0] === times && builtWith.current[1] === series) return; // just built with it
    pending.current = { started: performance.now(), points: times.length, series: series.length };
    plot.current.setData([times, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [times, series]);

  return <div ref={box} role="img" aria-label={label} data-testid={testId} className="time-chart" />;
}
