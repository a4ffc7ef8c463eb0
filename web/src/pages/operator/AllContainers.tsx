import { Badge, Button, Group, ScrollArea, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getContainersListContainersQueryKey, useContainersDeleteContainer, useContainersListContainers,
  useContainersListServers, useContainersStartContainer, useContainersStopContainer,
} from '../../api/generated/berth';
import type { ContainerRow } from '../../api/generated/model';
import { ConfirmModal } from '../../components/ConfirmModal';
import { useErrorMessage } from '../../components/ErrorText';
import { Pager, pageParams } from '../../components/Pager';
import { QueryState } from '../../components/QueryState';
import { dateTime } from '../../components/format';
import { notify } from '../../components/notify';
import { ID, useInvalidate } from './common';

const PAGE = 25;
const STATUS_COLOR: Record<string, string> = {
  running: 'green', stopped: 'gray', paused: 'yellow', restarting: 'blue', missing: 'red', creating: 'blue',
};

/** Every container on the platform, filtered by owner and server, paged. */
export default function AllContainers() {
  const { t, i18n } = useTranslation();
  const [page, setPage] = useState(1);
  const [owner, setOwner] = useState('');
  const [server, setServer] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<ContainerRow | null>(null);
  const ownerOk = owner === '' || ID.test(owner);
  const servers = useContainersListServers();
  const list = useContainersListContainers({
    ...pageParams(page, PAGE),
    ...(owner && ownerOk ? { user_id: Number(owner) } : {}),
    ...(server ? { server_id: Number(server) } : {}),
  }, { query: { refetchInterval: 15_000 } });
  const serverName = (id: number) => servers.data?.servers.find((s) => s.server_id === id)?.server_name ?? `#${id}`;
  return (
    <Stack maw={1300}>
      <Title order={2}>{t('operator.containers.title')}</Title>
      <Group align="flex-end" wrap="wrap" data-testid="container-filters">
        <TextInput label={t('operator.containers.owner')} value={owner} inputMode="numeric" w={180}
          error={ownerOk ? null : t('operator.validation.id')}
          onChange={(event) => { setOwner(event.currentTarget.value.trim()); setPage(1); }} />
        <Select label={t('operator.containers.server')} clearable value={server} w={220} placeholder={t('operator.containers.anyServer')}
          data={(servers.data?.servers ?? []).map((s) => ({ value: String(s.server_id), label: s.server_name }))}
          onChange={(value) => { setServer(value); setPage(1); }} />
      </Group>
      <QueryState query={list}>
        {(data) => data.containers.length === 0 ? <Text data-testid="no-containers">{t('operator.containers.empty')}</Text> : (
          <>
            <ScrollArea type="auto">
              <Table striped miw={960} data-testid="all-containers">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('containers.columns.name')}</Table.Th>
                    <Table.Th>{t('operator.containers.owner')}</Table.Th>
                    <Table.Th>{t('operator.containers.server')}</Table.Th>
                    <Table.Th>{t('containers.columns.image')}</Table.Th>
                    <Table.Th>{t('containers.columns.status')}</Table.Th>
                    <Table.Th>{t('containers.columns.created')}</Table.Th>
                    <Table.Th>{t('containers.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.containers.map((row) => (
                    <Row key={row.container_id} row={row} server={serverName(row.server_id)} locale={i18n.language} onDelete={setDeleting} />
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            <Pager total={data.total} pageSize={PAGE} page={page} onChange={setPage} />
          </>
        )}
      </QueryState>
      {deleting && <DeleteContainer row={deleting} onClose={() => setDeleting(null)} />}
    </Stack>
  );
}

function Row({ row, server, locale, onDelete }: { row: ContainerRow; server: string; locale: string; onDelete: (row: ContainerRow) => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const message = useErrorMessage(false);
  const options = {
    mutation: {
      onSuccess: () => invalidate(getContainersListContainersQueryKey()),
      onError: (error: unknown) => notify('red', message(error)),
    },
  };
  const start = useContainersStartContainer(options);
  const stop = useContainersStopContainer(options);
  const name = row.container_name;
  return (
    <Table.Tr data-testid={`container-${name}`}>
      <Table.Td><Text fw={600} size="sm">{name}</Text><Text size="xs" c="dimmed">#{row.container_id}</Text></Table.Td>
      <Table.Td>#{row.user_id}</Table.Td>
      <Table.Td>{server}</Table.Td>
      <Table.Td><Text size="sm">{row.image}</Text></Table.Td>
      <Table.Td>
        <Badge color={STATUS_COLOR[row.status] ?? 'gray'}>{t(`containers.status.${row.status}`)}</Badge>
        {row.status !== row.desired_state && <Text size="xs" c="dimmed">{t('operator.containers.wanted', { state: t(`containers.status.${row.desired_state}`) })}</Text>}
      </Table.Td>
      <Table.Td><Text size="xs">{dateTime(row.created_at, locale)}</Text></Table.Td>
      <Table.Td>
        <Group gap={4} wrap="nowrap" role="group" aria-label={t('containers.actionsFor', { name })}>
          {row.desired_state === 'stopped' ? (
            <Button size="compact-xs" variant="light" loading={start.isPending} onClick={() => start.mutate({ containerName: name })}>{t('containers.start')}</Button>
          ) : (
            <Button size="compact-xs" variant="light" loading={stop.isPending} onClick={() => stop.mutate({ containerName: name })}>{t('containers.stop')}</Button>
          )}
          <Button size="compact-xs" variant="light" color="red" onClick={() => onDelete(row)}>{t('containers.delete')}</Button>
        </Group>
      </Table.Td>
    </Table.Tr>
  );
}

function DeleteContainer({ row, onClose }: { row: ContainerRow; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const remove = useContainersDeleteContainer({
    mutation: {
      onSuccess: () => {
        notify('green', t('containers.deleted', { name: row.container_name }));
        invalidate(getContainersListContainersQueryKey());
        onClose();
      },
    },
  });
  return (
    <ConfirmModal title={t('containers.confirmTitle', { name: row.container_name })}
      text={t('operator.containers.confirmDelete', { owner: row.user_id })} confirmLabel={t('containers.confirm')}
      onConfirm={() => remove.mutate({ containerName: row.container_name })} onClose={onClose}
      loading={remove.isPending} error={remove.error} />
  );
}
