// The live stream (GET /api/stream, Server-Sent Events): one per signed-in tab, opened with a
// short-lived ticket (POST /api/stream/ticket; EventSource cannot send the bearer token).
// Events refresh the queries they concern; `traffic` feeds the realtime charts. When the
// stream cannot be (re)opened with its ticket (the gateway restarted after the ticket
// expired, a 503 at the stream limit) a fresh ticket is fetched, with a growing pause.
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import { liveStreamTicket } from '../api/generated/berth';
import { refresh } from '../api/queryClient';
import { notify } from '../components/notify';
import i18n from '../i18n';
import { useSession } from '../auth/AuthContext';
import { addSample, resetLiveTraffic, type LiveTraffic } from './traffic';
import { setLiveStatus } from './status';

// what each event makes stale (query key prefixes of the generated client)
const CONTAINERS = ['/api/containers'];
const RENTAL = ['/api/user/rental_info'];
const SERVERS = ['/api/servers'];
const ALERTS = ['/api/alerts'];
const REALTIME_ALERTS = ['/api/alerts/realtime'];

export const STALE: Record<string, string[][]> = {
  container_created: [CONTAINERS, RENTAL],
  container_removed: [CONTAINERS, RENTAL],
  container_stopped: [CONTAINERS],
  container_started: [CONTAINERS],
  container_died: [CONTAINERS],
  container_recovered: [CONTAINERS],
  container_moved: [CONTAINERS],
  server_went_down: [SERVERS],
  server_came_back: [SERVERS],
  server_updated: [SERVERS],
  server_removed: [SERVERS],
  rental_started: [RENTAL, CONTAINERS],
  rental_renewed: [RENTAL, CONTAINERS],
  rental_expired: [RENTAL, CONTAINERS],
  rental_suspended: [RENTAL, CONTAINERS],
  rental_resumed: [RENTAL, CONTAINERS],
  traffic_quota_exceeded: [RENTAL],
  traffic_quota_cleared: [RENTAL],
  alert_raised: [ALERTS, REALTIME_ALERTS],
  alert_resolved: [ALERTS, REALTIME_ALERTS],
};

export function applyEvent(client: QueryClient, kind: string): void {
  for (const queryKey of STALE[kind] ?? []) refresh(client, { queryKey });
}

/** An operator hears of an alert on whatever page they are (only admins' streams carry
 * alert_raised / alert_resolved; the payload is the alert as GET /api/alerts shows it). */
export function announceAlert(kind: string, data: string): void {
  if (kind !== 'alert_raised' && kind !== 'alert_resolved') return; // (no other frame is parsed)
  let message: unknown;
  try {
    message = (JSON.parse(data) as { message?: unknown }).message;
  } catch {
    return; // a malformed frame is ignored
  }
  if (typeof message !== 'string' || !message) return;
  if (kind === 'alert_raised') notify('red', i18n.t('live.alertRaised', { message }));
  else notify('green', i18n.t('live.alertResolved', { message }));
}

/** A traffic sweep ended: the month's use (rental info) and the traffic history changed. */
export function onSweep(client: QueryClient): void {
  refresh(client, { queryKey: RENTAL });
  refresh(client, {
    predicate: (query) => String(query.queryKey[0]).startsWith('/api/traffic/history/'),
  });
}

const MAX_PAUSE_MS = 15_000;

export function useLiveEvents(): void {
  const session = useSession();
  const client = useQueryClient();
  const token = session?.token;

  useEffect(() => {
    if (!token) {
      setLiveStatus('off');
      resetLiveTraffic();
      return undefined;
    }
    let source: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    let failures = 0;
    let opened = false;

    const retryLater = () => {
      source?.close();
      source = null;
      if (stopped) return;
      setLiveStatus('reconnecting');
      const pause = Math.min(MAX_PAUSE_MS, 1000 * 2 ** failures);
      failures += 1;
      timer = setTimeout(() => void connect(), pause);
    };

    const connect = async () => {
      setLiveStatus(opened ? 'reconnecting' : 'connecting');
      let url: string;
      try {
        url = (await liveStreamTicket()).url;
      } catch {
        retryLater(); // the gateway is away or saturated (a 401 signs out in berthFetch)
        return;
      }
      if (stopped) return;
      const next = new EventSource(url);
      source = next;
      next.addEventListener('hello', () => {
        failures = 0;
        if (opened) refresh(client); // back after a break: events were missed
        opened = true;
        setLiveStatus('live');
      });
      next.addEventListener('resync', () => refresh(client));
      next.addEventListener('session_ended', () => {
        next.close();
        source = null;
        setLiveStatus('off');
        refresh(client); // the next request's 401 signs out
      });
      next.addEventListener('traffic', (event) => {
        let sample: LiveTraffic;
        try {
          sample = JSON.parse((event as MessageEvent<string>).data) as LiveTraffic;
        } catch {
          return; // a malformed frame is ignored
        }
        addSample(sample);
        onSweep(client); // a new sweep: the month's use and the history moved too
      });
      for (const kind of Object.keys(STALE)) {
        next.addEventListener(kind, (event) => {
          applyEvent(client, kind);
          announceAlert(kind, (event as MessageEvent<string>).data);
        });
      }
      next.onerror = () => {
        // CONNECTING: the browser reconnects by itself (retry: 3 s) with this ticket;
        // CLOSED: the gateway refused it (expired ticket, stream limit): fetch a new one
        if (next.readyState === EventSource.CLOSED) retryLater();
        else setLiveStatus('reconnecting');
      };
    };

    void connect();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      source?.close();
      setLiveStatus('off');
    };
  }, [token, client]);
}
