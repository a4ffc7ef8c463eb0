// Realtime traffic as the live stream reports it (event `traffic`, one per traffic sweep):
// the latest rates per container and the series since the page opened, for the charts.
import { useSyncExternalStore } from 'react';

export interface LiveRate {
  container_id: number;
  container_name: string | null;
  in: number; // bytes/s
  out: number;
}

export interface LiveTraffic {
  sampled_at: string | null;
  containers: LiveRate[];
  traffic: { in: number; out: number };
}

export interface LiveSeries {
  times: number[]; // seconds since the epoch (uPlot's x)
  names: Map<number, string>;
  rates: Map<number, (number | null)[]>; // container id -> in+out bytes/s, one per time
  latest: LiveTraffic | null;
}

export const KEEP_POINTS = 240; // sweeps kept per container

let state: LiveSeries = { times: [], names: new Map(), rates: new Map(), latest: null };
const listeners = new Set<() => void>();

/** Add one `traffic` event to the series (a repeat of the latest sweep is ignored). */
export function addSample(sample: LiveTraffic, now: number = Date.now()): void {
  if (state.latest && sample.sampled_at && sample.sampled_at === state.latest.sampled_at &&
      state.times.length) {
    state = { ...state, latest: sample };
  } else {
    const at = sample.sampled_at ? Date.parse(sample.sampled_at) : now;
    const time = Math.round((Number.isNaN(at) ? now : at) / 1000);
    const times = [...state.times, time].slice(-KEEP_POINTS);
    const dropped = state.times.length + 1 - times.length;
    const names = new Map(state.names);
    const rates = new Map<number, (number | null)[]>();
    const seen = new Set<number>();
    for (const row of sample.containers) {
      names.set(row.container_id, row.container_name ?? `#${row.container_id}`);
      seen.add(row.container_id);
    }
    for (const id of new Set([...state.rates.keys(), ...seen])) {
      const before = state.rates.get(id) ?? new Array<number | null>(state.times.length).fill(null);
      const row = sample.containers.find((r) => r.container_id === id);
      rates.set(id, [...before, row ? row.in + row.out : 0].slice(dropped));
    }
    state = { times, names, rates, latest: sample };
  }
  listeners.forEach((listener) => listener());
}

export function resetLiveTraffic(): void {
  state = { times: [], names: new Map(), rates: new Map(), latest: null };
  listeners.forEach((listener) => listener());
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useLiveTraffic(): LiveSeries {
  return useSyncExternalStore(subscribe, () => state);
}
