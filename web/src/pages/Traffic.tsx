// The customer's traffic: live bytes/s per container (from the live stream), history by hour
// and by day, and this month against the plan's quota.
import { Alert, Card, Checkbox, Group, Progress, SegmentedControl, Stack, Table, Text, Title } from '@mantine/core';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { keepPreviousData } from '@tanstack/react-query';
import { useBillingRentalInfo, useTrafficTrafficHistory } from '../api/generated/berth';
import type { TrafficTrafficHistoryGranularity } from '../api/generated/model';
import { useSession } from '../auth/AuthContext';
import { QueryState } from '../components/QueryState';
import { TimeChart } from '../components/TimeChart';
import { bytes } from '../components/format';
import { useLiveStatus } from '../live/status';
import { useLiveTraffic } from '../live/traffic';

export default function Traffic() {
  const { t } = useTranslation();
  return (
    <Stack maw={1100}>
      <Title order={2}>{t('traffic.title')}</Title>
      <Month />
      <Live />
      <History />
    </Stack>
  );
}

function Month() {
  const { t, i18n } = useTranslation();
  const rental = useBillingRentalInfo();
  return (
    <Card withBorder data-testid="traffic-month">
      <QueryState query={rental}>
        {(info) => {
          const used = info.used?.traffic_bytes ?? null;
          const quota = info.plan?.traffic_quota_bytes ?? null;
          const percent = used !== null && quota ? Math.min(100, (used / quota) * 100) : 0;
          return (
            <>
              <Group justify="space-between" wrap="wrap">
                <Text fw={600}>{info.used?.traffic_month
                  ? t('traffic.month', { month: info.used.traffic_month }) : t('traffic.monthNone')}</Text>
                <Text fw={600} data-testid="month-used">
                  {used === null ? '—' : `${bytes(used, i18n.language)} / ${quota === null
                    ? t('traffic.unlimited') : bytes(quota, i18n.language)}`}
                </Text>
              </Group>
              {used !== null && quota !== null && (
                <Progress mt="sm" value={percent} aria-label={t('traffic.quota')}
                  color={percent >= 100 ? 'red' : percent >= 80 ? 'orange' : 'blue'} />
              )}
            </>
          );
        }}
      </QueryState>
    </Card>
  );
}

function Live() {
  const { t, i18n } = useTranslation();
  const live = useLiveTraffic();
  const status = useLiveStatus();
  const rate = (v: number) => `${bytes(v, i18n.language)}/s`;
  const series = useMemo(() => [...live.rates.entries()].map(([id, values]) => ({
    label: live.names.get(id) ?? `#${id}`, values,
  })), [live]);
  return (
    <Card withBorder>
      <Group justify="space-between" mb="sm">
        <Text fw={600}>{t('traffic.live')}</Text>
        <Text size="sm" c="dimmed" data-testid="live-sampled">
          {live.latest?.sampled_at ? t('traffic.sampledAt', { when: new Date(live.latest.sampled_at).toLocaleTimeString(i18n.language) })
            : status === 'live' ? t('traffic.waiting') : t('live.connecting')}
        </Text>
      </Group>
      {live.times.length > 0 && series.length > 0 ? (
        <TimeChart times={live.times} series={series} label={t('traffic.liveChart')} format={rate}
          testId="live-chart" height={200}
          // a few seconds of samples would get an axis of fractions of a second: at least 5 minutes
          minSpan={300} />
      ) : (
        <Text size="sm" c="dimmed">{t('traffic.noLive')}</Text>
      )}
      {live.latest && live.latest.containers.length > 0 && (
        <Table mt="sm" data-testid="live-rates">
          <Table.Thead><Table.Tr>
            <Table.Th>{t('traffic.container')}</Table.Th><Table.Th>{t('traffic.in')}</Table.Th>
            <Table.Th>{t('traffic.out')}</Table.Th>
          </Table.Tr></Table.Thead>
          <Table.Tbody>
            {live.latest.containers.map((row) => (
              <Table.Tr key={row.container_id}>
                <Table.Td>{row.container_name ?? `#${row.container_id}`}</Table.Td>
                <Table.Td>{rate(row.in)}</Table.Td><Table.Td>{rate(row.out)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Card>
  );
}

// the periods the history offers, in days back from the current hour (the API allows up to
// 62 days by hour and 3 years by day); the first of each is the default
const SPANS: Record<TrafficTrafficHistoryGranularity, number[]> = { raw: [1], hour: [1, 7, 30], day: [31, 92, 365] };
const HOUR_MS = 3_600_000;

function History() {
  const { t, i18n } = useTranslation();
  const session = useSession();
  const [granularity, setGranularity] = useState<TrafficTrafficHistoryGranularity>('hour');
  const [days, setDays] = useState(SPANS.hour[0]);
  const [perContainer, setPerContainer] = useState(false);
  // the period starts on the hour: the same start (so the same query) all hour long, and the
  // window moves on with the clock (a start that moved with every render would refetch forever)
  const hour = Math.floor(Date.now() / HOUR_MS);
  const start = useMemo(() => new Date((hour - days * 24) * HOUR_MS).toISOString(), [days, hour]);
  const history = useTrafficTrafficHistory(session?.userId ?? 0,
    { granularity, start, ...(perContainer ? { by_container: true } : {}) },
    { query: { enabled: !!session, placeholderData: keepPreviousData } });
  return (
    <Card withBorder>
      <Group justify="space-between" mb="sm" wrap="wrap">
        <Text fw={600}>{t('traffic.history')}</Text>
        <Group gap="xs" wrap="wrap">
          <SegmentedControl value={String(days)} aria-label={t('traffic.span')}
            onChange={(value) => setDays(Number(value))}
            data={SPANS[granularity].map((n) => ({ value: String(n), label: t('traffic.lastDays', { count: n }) }))}
            data-testid="span" />
          <SegmentedControl value={granularity} aria-label={t('traffic.granularity')}
            onChange={(value) => {
              const next = value as TrafficTrafficHistoryGranularity;
              setGranularity(next);
              setDays(SPANS[next][0]);
            }}
            data={[{ value: 'hour', label: t('traffic.byHour') }, { value: 'day', label: t('traffic.byDay') }]}
            data-testid="granularity" />
          <Checkbox label={t('traffic.perContainer')} checked={perContainer} data-testid="per-container"
            onChange={(event) => setPerContainer(event.currentTarget.checked)} />
        </Group>
      </Group>
      <QueryState query={history}>
        {(reply) => {
          const points = reply.traffic_history;
          if (points.length === 0) return <Text size="sm" c="dimmed" data-testid="history-empty">{t('traffic.noHistory')}</Text>;
          const seconds = (iso: string) => Math.round(Date.parse(iso) / 1000);
          const times = points.map((p) => seconds(String(p.timestamp)));
          const span: [number, number] = [Math.min(seconds(reply.start), times[0]),
            Math.max(seconds(reply.end), times[times.length - 1])];
          return (
            <>
              <TimeChart times={times} range={span} label={t('traffic.historyChart')} testId="history-chart"
                format={(v) => bytes(v, i18n.language)}
                series={perContainer && reply.containers
                  // one line per container: its bytes in + out at each point
                  ? reply.containers.map((c) => ({ label: c.container_name ?? `#${c.container_id}`, values: c.bytes_in.map((v, k) => v + c.bytes_out[k]) }))
                  : [{ label: t('traffic.in'), values: points.map((p) => Number(p.in ?? 0)) },
                    { label: t('traffic.out'), values: points.map((p) => Number(p.out ?? 0)) }]} />
              <Text size="sm" mt="xs" data-testid="history-total">
                {t('traffic.total', { in: bytes(reply.total_in, i18n.language), out: bytes(reply.total_out, i18n.language) })}
              </Text>
              {reply.truncated && <Alert mt="xs" color="yellow">{t('traffic.truncated')}</Alert>}
              {perContainer && reply.containers_truncated && (
                <Alert mt="xs" color="yellow">{t('traffic.containersTruncated', { count: reply.containers?.length ?? 0 })}</Alert>
              )}
            </>
          );
        }}
      </QueryState>
    </Card>
  );
}
