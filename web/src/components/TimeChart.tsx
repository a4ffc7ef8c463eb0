// A time series drawn with uPlot (canvas): x in seconds since the epoch, one line per series.
// Redrawn with setData when only the data changes; rebuilt when the series change. Each build
// leaves a User Timing measure `chart-draw:<testId>` (what benchmarks/chart.py reads).
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  values: (number | null)[];
}

const COLOURS = ['#228be6', '#fa5252', '#40c057', '#fab005', '#7950f2', '#15aabf', '#e64980',
  '#fd7e14', '#82c91e', '#868e96'];

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
  const shape = [...series.map((s) => s.label), range?.join('-') ?? ''].join('\u0000');

  useEffect(() => {
    const element = box.current;
    if (!element) return undefined;
    const started = performance.now();
    let measured = false;
    const measureFirstDraw = () => {
      if (measured) return;
      measured = true;
      try {
        performance.measure(`chart-draw:${testId ?? label}`, { start: started, end: performance.now() });
      } catch {
        // a browser without User Timing level 3: nothing is measured
      }
    };
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height,
      series: [{}, ...series.map((s, i) => ({
        label: s.label, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: false,
      }))],
      axes: [{}, { size: 80, values: (_u, ticks) => ticks.map((v) => format(v)) }],
      scales: {
        x: range ? { time: true, range: () => range }
          : minSpan ? { time: true, range: (_u, min, max) => (max - min < minSpan ? [max - minSpan, max] : [min, max]) }
            : { time: true },
      },
      legend: { show: series.length <= 12 },
      hooks: { draw: [() => measureFirstDraw()] }, // uPlot draws in a microtask after new uPlot()
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
    plot.current?.setData([times, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [times, series]);

  return <div ref={box} role="img" aria-label={label} data-testid={testId} className="time-chart" />;
}
