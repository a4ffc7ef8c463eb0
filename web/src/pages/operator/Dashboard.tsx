import { Anchor, Card, Group, List, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import {
  trafficTrafficStats, useAlertsMonitoringStatus, useAlertsRealtimeAlerts, useBillingCheckExpiry,
  useBillingExpiringRentals, useContainersListServers,
} from '../../api/generated/berth';
import { QueryState } from '../../components/QueryState';
import { bytes, dateTime } from '../../components/format';
import { Figure } from '../../components/Figure';
import { todayUtc } from '../distributor/generate';
import { StateBadge } from './common';

const REFRESH = 15_000;

export default function Dashboard() {
  const { t } = useTranslation();
  return (
    <Stack maw={1200}>
      <Title order={2}>{t('operator.dashboard.title')}</Title>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Servers />
        <Monitoring />
        <OpenAlerts />
        <TrafficToday />
        <Rentals />
      </SimpleGrid>
    </Stack>
  );
}

function Servers() {
  const { t } = useTranslation();
  const servers = useContainersListServers({ query: { refetchInterval: REFRESH } });
  return (
    <Card withBorder data-testid="dash-servers">
      <Group justify="space-between" mb="sm"><Title order={3} size="h4">{t('operator.dashboard.servers')}</Title>
        <Anchor component={Link} to="/operator/servers" size="sm">{t('operator.dashboard.manage')}</Anchor></Group>
      <QueryState query={servers}>
        {(data) => {
          const online = data.servers.filter((s) => s.status === 'online').length;
          return (
            <Stack gap="sm">
              <SimpleGrid cols={3}>
                <Figure label={t('operator.dashboard.online')} value={online} testId="servers-online" />
                <Figure label={t('operator.dashboard.offline')} value={data.servers.length - online} testId="servers-offline" />
                <Figure label={t('operator.dashboard.containers')} value={data.servers.reduce((n, s) => n + s.containers, 0)} />
              </SimpleGrid>
              {data.servers.length === 0 ? <Text size="sm">{t('operator.servers.empty')}</Text> : (
                <Table>
                  <Table.Tbody>
                    {data.servers.slice(0, 8).map((server) => (
                      <Table.Tr key={server.server_id}>
                        <Table.Td>{server.server_name}</Table.Td>
                        <Table.Td><StateBadge state={server.maintenance ? 'maintenance' : server.status} /></Table.Td>
                        <Table.Td>{t('operator.dashboard.containerCount', { count: server.containers })}</Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              )}
            </Stack>
          );
        }}
      </QueryState>
    </Card>
  );
}

function Monitoring() {
  const { t, i18n } = useTranslation();
  const monitoring = useAlertsMonitoringStatus({ query: { refetchInterval: REFRESH } });
  return (
    <Card withBorder data-testid="dash-monitoring">
      <Title order={3} size="h4" mb="sm">{t('operator.dashboard.monitoring')}</Title>
      <QueryState query={monitoring}>
        {(data) => (
          <Stack gap="xs">
            <Group gap="sm"><StateBadge state={data.status} testId="monitoring-status" />
              <Text size="sm" c="dimmed">{t('operator.dashboard.uptime', { uptime: data.uptime })}</Text></Group>
            {data.issues.length === 0 ? <Text size="sm">{t('operator.dashboard.noIssues')}</Text> : (
              <List size="sm" spacing={4}>
                {data.issues.slice(0, 8).map((issue, index) => (
                  <List.Item key={index}>{issue.message} <Text span size="xs" c="dimmed">({issue.type}, {dateTime(issue.timestamp, i18n.language)})</Text></List.Item>
                ))}
              </List>
            )}
          </Stack>
        )}
      </QueryState>
    </Card>
  );
}

function OpenAlerts() {
  const { t, i18n } = useTranslation();
  const alerts = useAlertsRealtimeAlerts({ limit: 5 }, { query: { refetchInterval: REFRESH } });
  return (
    <Card withBorder data-testid="dash-alerts">
      <Group justify="space-between" mb="sm"><Title order={3} size="h4">{t('operator.dashboard.openAlerts')}</Title>
        <Anchor component={Link} to="/operator/alerts" size="sm">{t('operator.dashboard.allAlerts')}</Anchor></Group>
      <QueryState query={alerts}>
        {(data) => (
          <Stack gap="xs">
            <Figure label={t('operator.dashboard.openNow')} value={data.total} testId="alerts-open" />
            {data.alerts.length === 0 ? <Text size="sm">{t('operator.dashboard.noAlerts')}</Text> : (
              <List size="sm" spacing={4}>
                {data.alerts.map((alert) => (
                  <List.Item key={alert.alert_id}>{alert.message} <Text span size="xs" c="dimmed">({dateTime(alert.timestamp, i18n.language)})</Text></List.Item>
                ))}
              </List>
            )}
          </Stack>
        )}
      </QueryState>
    </Card>
  );
}

function TrafficToday() {
  const { t, i18n } = useTranslation();
  const today = todayUtc();
  // POST /api/traffic/stats only reads: asked as a query, refreshed like the rest
  const stats = useQuery({
    queryKey: ['/api/traffic/stats', today],
    queryFn: ({ signal }) => trafficTrafficStats({ start_date: today, end_date: today }, signal),
    refetchInterval: 60_000,
  });
  return (
    <Card withBorder data-testid="dash-traffic">
      <Group justify="space-between" mb="sm"><Title order={3} size="h4">{t('operator.dashboard.trafficToday', { date: today })}</Title>
        <Anchor component={Link} to="/operator/traffic" size="sm">{t('operator.dashboard.trafficMore')}</Anchor></Group>
      <QueryState query={stats}>
        {(data) => (
          <SimpleGrid cols={3}>
            <Figure label={t('operator.traffic.in')} value={bytes(data.total_in, i18n.language)} testId="traffic-in" />
            <Figure label={t('operator.traffic.out')} value={bytes(data.total_out, i18n.language)} testId="traffic-out" />
            <Figure label={t('operator.traffic.users')} value={data.user_count} />
          </SimpleGrid>
        )}
      </QueryState>
    </Card>
  );
}

function Rentals() {
  const { t } = useTranslation();
  const expired = useBillingCheckExpiry({ query: { refetchInterval: 60_000 } });
  const expiring = useBillingExpiringRentals({ days: 7, limit: 1 }, { query: { refetchInterval: 60_000 } });
  return (
    <Card withBorder data-testid="dash-rentals">
      <Group justify="space-between" mb="sm"><Title order={3} size="h4">{t('operator.dashboard.rentals')}</Title>
        <Anchor component={Link} to="/operator/rentals" size="sm">{t('operator.dashboard.manage')}</Anchor></Group>
      <Stack gap="xs">
        <QueryState query={expired}>
          {(data) => <Figure label={t('operator.dashboard.pastDue')} value={data.expired_rentals.length} testId="rentals-past-due" />}
        </QueryState>
        <QueryState query={expiring}>
          {(data) => <Figure label={t('operator.dashboard.expiringWeek')} value={data.total} testId="rentals-expiring" />}
        </QueryState>
      </Stack>
    </Card>
  );
}
