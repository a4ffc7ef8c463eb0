// Pieces the operator screens share: the list of actions a fleet operation took, a status
// badge, checks for numeric fields.
import { Badge, ScrollArea, Table, Text } from '@mantine/core';
import { useQueryClient, type QueryKey } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { useContainersListServers } from '../../api/generated/berth';
import type { HaAction } from '../../api/generated/model';
import type { TFunction } from 'i18next';

const ACTION_COLOR: Record<string, string> = { moved: 'blue', recreated: 'teal', started: 'green', failed: 'red' };
const STATE_COLOR: Record<string, string> = {
  online: 'green', offline: 'red', healthy: 'green', degraded: 'orange', unhealthy: 'red', maintenance: 'gray',
  open: 'red', resolved: 'gray',
};

export function StateBadge({ state, testId }: { state: string; testId?: string }) {
  const { t } = useTranslation();
  return <Badge color={STATE_COLOR[state] ?? 'gray'} data-testid={testId}>{t(`operator.state.${state}`, { defaultValue: state })}</Badge>;
}

/** What failover / load balance / disaster recovery / drain did, container by container. */
export function ActionsTable({ actions }: { actions: HaAction[] }) {
  const { t } = useTranslation();
  const servers = useContainersListServers(); // (the servers page's query: usually cached)
  const server = (id: number | null | undefined) => {
    if (id == null) return '—';
    const name = servers.data?.servers.find((row) => row.server_id === id)?.server_name;
    return name ? <>{name} <Text span size="xs" c="dimmed">#{id}</Text></> : `#${id}`;
  };
  if (actions.length === 0) return <Text size="sm" data-testid="no-actions">{t('operator.servers.noActions')}</Text>;
  return (
    <ScrollArea type="auto">
      <Table miw={520} data-testid="actions-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>{t('operator.servers.columns.container')}</Table.Th>
            <Table.Th>{t('operator.servers.columns.action')}</Table.Th>
            <Table.Th>{t('operator.servers.columns.from')}</Table.Th>
            <Table.Th>{t('operator.servers.columns.to')}</Table.Th>
            <Table.Th>{t('operator.servers.columns.error')}</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {actions.map((action, index) => (
            <Table.Tr key={`${action.container_id}-${index}`}>
              <Table.Td>{action.container_name} <Text span size="xs" c="dimmed">#{action.container_id}</Text></Table.Td>
              <Table.Td><Badge color={ACTION_COLOR[action.action] ?? 'gray'}>{t(`operator.servers.action.${action.action}`)}</Badge></Table.Td>
              <Table.Td>{server(action.from_server_id)}</Table.Td>
              <Table.Td>{server(action.to_server_id)}</Table.Td>
              <Table.Td><Text size="xs">{action.error ?? ''}</Text></Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </ScrollArea>
  );
}

export function useInvalidate() {
  const queryClient = useQueryClient();
  return (...keys: QueryKey[]) => keys.forEach((queryKey) => void queryClient.invalidateQueries({ queryKey }));
}

/** A whole number in [min, max], or the message; '' counts as missing. */
export function wholeNumber(t: TFunction, min: number, max: number, optional = false) {
  return (value: unknown) => {
    if (value === '' || value === null || value === undefined) return optional ? null : t('validation.required');
    const number = Number(value);
    return Number.isInteger(number) && number >= min && number <= max ? null : t('operator.validation.range', { min, max });
  };
}

export const ID = /^[1-9]\d{0,9}$/;

/** GiB (as typed, decimals allowed) to bytes; '' stays null. */
export function gibToBytes(value: number | string): number | null {
  if (value === '' || value === null) return null;
  return Math.round(Number(value) * 1024 ** 3);
}

export function bytesToGib(value: number | null | undefined): number | string {
  return value == null ? '' : Math.round((value / 1024 ** 3) * 1000) / 1000;
}
