import {
  Alert, Badge, Button, Code, Group, Modal, NumberInput, Pagination, ScrollArea, Select, Stack, Table, Text,
  TextInput, Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { notify } from '../components/notify';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getBillingRentalInfoQueryKey, getContainersListContainersQueryKey, useBillingRentalInfo,
  useContainersContainerLogs, useContainersCreateContainer, useContainersDeleteContainer,
  useContainersListContainers, useContainersRestartContainer, useContainersStartContainer,
  useContainersStopContainer,
} from '../api/generated/berth';
import type { ContainerRow, CreateContainer, RentalInfo } from '../api/generated/model';
import { ErrorAlert, useErrorMessage } from '../components/ErrorText';
import { QueryState } from '../components/QueryState';
import { dateTime } from '../components/format';
import { CONTAINER_NAME, showFieldErrors } from '../components/forms';
import { useLiveStatus } from '../live/status';
import { refresh as refreshQueries } from '../api/queryClient';

const PAGE_SIZE = 20;
const STATUS_COLOR: Record<string, string> = {
  running: 'green', stopped: 'gray', paused: 'yellow', restarting: 'blue', missing: 'red', creating: 'blue',
};

export default function Containers() {
  const { t } = useTranslation();
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const [logsOf, setLogsOf] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const rental = useBillingRentalInfo();
  const live = useLiveStatus();
  const list = useContainersListContainers({ limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE }, {
    query: {
      // follow a container on its way (creating, restarting, or not yet as asked) closely;
      // otherwise the live stream says when something changed (a slow poll while it is down)
      refetchInterval: (query) => (query.state.data?.containers.some(
        (row) => row.status !== row.desired_state) ? 2_000 : live === 'live' ? false : 15_000),
    },
  });
  const canCreate = rental.data?.rental_status === 'active' && !rental.data.suspended_at;

  return (
    <Stack maw={1100}>
      <Group justify="space-between" wrap="wrap">
        <Title order={2}>{t('containers.title')}</Title>
        <Button onClick={() => setCreating(true)} disabled={!canCreate} data-testid="new-container">
          {t('containers.create')}
        </Button>
      </Group>
      {rental.data && !canCreate && <Alert color="gray">{t('containers.needRental')}</Alert>}
      {rental.data?.plan && rental.data.used?.containers != null && (
        <Text size="sm" c="dimmed">
          {t('containers.count', { used: rental.data.used.containers, max: rental.data.plan.max_containers })}
        </Text>
      )}
      <QueryState query={list}>
        {(data) => data.containers.length === 0 ? <Text data-testid="no-containers">{t('containers.empty')}</Text> : (
          <>
            <ScrollArea type="auto">
              <Table striped highlightOnHover miw={720} data-testid="containers">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('containers.columns.name')}</Table.Th>
                    <Table.Th>{t('containers.columns.image')}</Table.Th>
                    <Table.Th>{t('containers.columns.status')}</Table.Th>
                    <Table.Th>{t('containers.columns.ports')}</Table.Th>
                    <Table.Th>{t('containers.columns.created')}</Table.Th>
                    <Table.Th>{t('containers.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.containers.map((row) => (
                    <Row key={row.container_id} row={row} onLogs={setLogsOf} onDelete={setDeleting} />
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            {data.total > PAGE_SIZE && (
              <Pagination total={Math.ceil(data.total / PAGE_SIZE)} value={page} onChange={setPage}
                aria-label={t('containers.page')} />
            )}
          </>
        )}
      </QueryState>
      {creating && rental.data && <CreateModal rental={rental.data} onClose={() => setCreating(false)} />}
      {logsOf && <LogsModal name={logsOf} onClose={() => setLogsOf(null)} />}
      {deleting && <DeleteModal name={deleting} onClose={() => setDeleting(null)} />}
    </Stack>
  );
}

function useRefresh() {
  const queryClient = useQueryClient();
  return () => {
    refreshQueries(queryClient, { queryKey: getContainersListContainersQueryKey() });
    refreshQueries(queryClient, { queryKey: getBillingRentalInfoQueryKey() });
  };
}

function Row({ row, onLogs, onDelete }: {
  row: ContainerRow; onLogs: (name: string) => void; onDelete: (name: string) => void;
}) {
  const { t, i18n } = useTranslation();
  const message = useErrorMessage(false);
  const refresh = useRefresh();
  const options = (status: 'running' | 'stopped') => ({
    mutation: {
      onSuccess: () => {
        notify('green', t('containers.done', { name: row.container_name, status: t(`containers.status.${status}`) }));
        refresh();
      },
      onError: (error: unknown) => {
        notify('red', message(error));
      },
    },
  });
  const start = useContainersStartContainer(options('running'));
  const stop = useContainersStopContainer(options('stopped'));
  const restart = useContainersRestartContainer(options('running'));
  const busy = start.isPending || stop.isPending || restart.isPending;
  const name = row.container_name;
  const ports = Object.entries(row.ports ?? {}).map(([inside, outside]) => `${outside}→${inside}`).join(', ');
  return (
    <Table.Tr data-testid={`container-${name}`}>
      <Table.Td><Text fw={600} size="sm">{name}</Text></Table.Td>
      <Table.Td><Text size="sm">{row.image}</Text></Table.Td>
      <Table.Td><Badge color={STATUS_COLOR[row.status] ?? 'gray'}>{t(`containers.status.${row.status}`)}</Badge></Table.Td>
      <Table.Td><Text size="sm">{ports || '—'}</Text></Table.Td>
      <Table.Td><Text size="sm">{dateTime(row.created_at, i18n.language)}</Text></Table.Td>
      <Table.Td>
        <Group gap={4} wrap="nowrap" role="group" aria-label={t('containers.actionsFor', { name })}>
          {row.desired_state === 'stopped' ? (
            <Button size="compact-xs" variant="light" disabled={busy} onClick={() => start.mutate({ containerName: name })}>{t('containers.start')}</Button>
          ) : (
            <Button size="compact-xs" variant="light" disabled={busy} onClick={() => stop.mutate({ containerName: name })}>{t('containers.stop')}</Button>
          )}
          <Button size="compact-xs" variant="light" disabled={busy} onClick={() => restart.mutate({ containerName: name })}>{t('containers.restart')}</Button>
          <Button size="compact-xs" variant="light" onClick={() => onLogs(name)}>{t('containers.logs')}</Button>
          <Button size="compact-xs" variant="light" color="red" onClick={() => onDelete(name)}>{t('containers.delete')}</Button>
        </Group>
      </Table.Td>
    </Table.Tr>
  );
}

function CreateModal({ rental, onClose }: { rental: RentalInfo; onClose: () => void }) {
  const { t } = useTranslation();
  const refresh = useRefresh();
  const create = useContainersCreateContainer();
  const images = rental.plan?.images ?? [];
  const form = useForm<CreateContainer>({
    mode: 'uncontrolled',
    initialValues: { container_name: '', image: images.length === 1 ? images[0].reference : '' },
    validate: {
      container_name: (value) => (!value ? t('validation.required') : CONTAINER_NAME.test(value) ? null : t('validation.containerName')),
      image: (value) => (value ? null : t('validation.image')),
    },
  });
  const submit = form.onSubmit((values) => {
    create.mutate({ data: values }, {
      onSuccess: (reply) => {
        notify('green', t('containers.created', { name: reply.container_name }));
        refresh();
        onClose();
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <Modal opened onClose={onClose} title={t('containers.createTitle')} closeButtonProps={{ 'aria-label': t('containers.close') }}>
      <form onSubmit={submit} noValidate data-testid="create-form">
        <Stack>
          {create.isError && <ErrorAlert error={create.error} />}
          <TextInput label={t('containers.name')} withAsterisk data-autofocus autoComplete="off"
            key={form.key('container_name')} {...form.getInputProps('container_name')} />
          <Select label={t('containers.image')} withAsterisk allowDeselect={false}
            data={images.map((image) => ({ value: image.reference, label: `${image.display_name} (${image.reference})` }))}
            key={form.key('image')} {...form.getInputProps('image')} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>{t('containers.cancel')}</Button>
            <Button type="submit" loading={create.isPending}>{t('containers.createSubmit')}</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function DeleteModal({ name, onClose }: { name: string; onClose: () => void }) {
  const { t } = useTranslation();
  const refresh = useRefresh();
  const remove = useContainersDeleteContainer();
  const confirm = () => remove.mutate({ containerName: name }, {
    onSuccess: () => {
      notify('green', t('containers.deleted', { name }));
      refresh();
      onClose();
    },
  });
  return (
    <Modal opened onClose={onClose} title={t('containers.confirmTitle', { name })} closeButtonProps={{ 'aria-label': t('containers.close') }}>
      <Stack>
        <Text size="sm">{t('containers.confirmText')}</Text>
        {remove.isError && <ErrorAlert error={remove.error} />}
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose} data-autofocus>{t('containers.cancel')}</Button>
          <Button color="red" onClick={confirm} loading={remove.isPending} data-testid="confirm-delete">{t('containers.confirm')}</Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function LogsModal({ name, onClose }: { name: string; onClose: () => void }) {
  const { t } = useTranslation();
  const [tail, setTail] = useState<number>(100);
  const valid = Number.isInteger(tail) && tail >= 1 && tail <= 1000;
  const logs = useContainersContainerLogs(name, { tail }, { query: { enabled: valid } });
  return (
    <Modal opened onClose={onClose} title={t('containers.logsTitle', { name })} size="xl" closeButtonProps={{ 'aria-label': t('containers.close') }}>
      <Stack>
        <Group align="flex-end">
          <NumberInput label={t('containers.tail')} value={tail} min={1} max={1000} allowDecimal={false} w={140}
            error={valid ? null : t('validation.tail')} onChange={(value) => setTail(typeof value === 'number' ? value : NaN)} />
          <Button variant="light" onClick={() => void logs.refetch()} disabled={!valid} loading={logs.isFetching}>{t('containers.refresh')}</Button>
        </Group>
        <QueryState query={logs}>
          {(data) => data.lines.length === 0 ? <Text size="sm" c="dimmed">{t('containers.noLines')}</Text> : (
            <ScrollArea h={400} type="auto">
              <Code block data-testid="log-lines">{data.lines.join('\n')}</Code>
            </ScrollArea>
          )}
        </QueryState>
      </Stack>
    </Modal>
  );
}
