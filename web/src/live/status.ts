// Whether the live stream is open, for the header's badge.
import { useSyncExternalStore } from 'react';

export type LiveStatus = 'off' | 'connecting' | 'live' | 'reconnecting';

let status: LiveStatus = 'off';
const listeners = new Set<() => void>();

export function setLiveStatus(next: LiveStatus): void {
  if (next === status) return;
  status = next;
  listeners.forEach((listener) => listener());
}

export function useLiveStatus(): LiveStatus {
  return useSyncExternalStore((listener) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }, () => status);
}
