import {
  Alert, Button, Card, Group, Modal, ScrollArea, Select, SimpleGrid, Stack, Table, Text, TextInput, Textarea, Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getContainersListContainersQueryKey, getContainersListServersQueryKey, useContainersAddServer,
  useContainersDeleteServer, useContainersDisasterRecovery, useContainersDrainServer, useContainersFailover,
  useContainersHaHealth, useContainersListServers, useContainersLoadBalance, useContainersReplaceContainer,
  useContainersServerMaintenance,
} from '../../api/generated/berth';
import type { AddServer, HaAction, ServerRow } from '../../api/generated/model';
import { ConfirmModal } from '../../components/ConfirmModal';
import { ErrorAlert } from '../../components/ErrorText';
import { QueryState } from '../../components/QueryState';
import { dateTime, mebibytes } from '../../components/format';
import { CONTAINER_NAME, showFieldErrors } from '../../components/forms';
import { notify } from '../../components/notify';
import { ActionsTable, StateBadge, useInvalidate } from './common';
import type { TFunction } from 'i18next';

export const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const DOCKER_URL = /^(unix:\/\/\/[^\s]{1,200}|tcp:\/\/[A-Za-z0-9.\-[\]:]{1,200}:[0-9]{1,5})$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9A-Fa-f:.]+$/;

export function isIp(value: string): boolean {
  return IPV4.test(value) || (value.includes(':') && IPV6.test(value) && value.length <= 45);
}

type Fleet = 'failover' | 'loadBalance' | 'disasterRecovery';
type ServerAction = { kind: 'maintenanceOn' | 'maintenanceOff' | 'drain' | 'delete'; server: ServerRow };

export default function Servers() {
  const { t, i18n } = useTranslation();
  const servers = useContainersListServers({ query: { refetchInterval: 15_000 } });
  const [adding, setAdding] = useState(false);
  const [fleet, setFleet] = useState<Fleet | null>(null);
  const [action, setAction] = useState<ServerAction | null>(null);
  const [replacing, setReplacing] = useState(false);
  const [result, setResult] = useState<{ title: string; message: string; actions: HaAction[] } | null>(null);
  const health = useContainersHaHealth({ query: { enabled: false, retry: false } });

  return (
    <Stack maw={1300}>
      <Group justify="space-between" wrap="wrap">
        <Title order={2}>{t('operator.servers.title')}</Title>
        <Button onClick={() => setAdding(true)} data-testid="add-server">{t('operator.servers.add')}</Button>
      </Group>
      <Card withBorder>
        <Text fw={600} mb="xs">{t('operator.servers.fleet')}</Text>
        <Group gap="xs" wrap="wrap">
          <Button variant="light" onClick={() => void health.refetch()} loading={health.isFetching} data-testid="check-health">
            {t('operator.servers.checkHealth')}
          </Button>
          <Button variant="light" color="orange" onClick={() => setFleet('failover')} data-testid="failover">{t('operator.servers.failover')}</Button>
          <Button variant="light" color="orange" onClick={() => setFleet('loadBalance')} data-testid="load-balance">{t('operator.servers.loadBalance')}</Button>
          <Button variant="light" color="orange" onClick={() => setFleet('disasterRecovery')} data-testid="disaster-recovery">{t('operator.servers.disasterRecovery')}</Button>
          <Button variant="light" color="orange" onClick={() => setReplacing(true)} data-testid="replace">{t('operator.servers.replace')}</Button>
        </Group>
        {health.isError && <ErrorAlert error={health.error} />}
        {health.data && (
          <Alert mt="sm" color={health.data.status === 'healthy' ? 'green' : health.data.status === 'degraded' ? 'orange' : 'red'} data-testid="health-result">
            <Group gap="xs"><Text size="sm">{t('operator.servers.healthNow')}</Text><StateBadge state={health.data.status} /></Group>
          </Alert>
        )}
      </Card>
      <QueryState query={servers}>
        {(data) => data.servers.length === 0 ? <Text data-testid="no-servers">{t('operator.servers.empty')}</Text> : (
          <ScrollArea type="auto">
            <Table striped highlightOnHover miw={1000} data-testid="servers">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('operator.servers.columns.name')}</Table.Th>
                  <Table.Th>{t('operator.servers.columns.address')}</Table.Th>
                  <Table.Th>{t('operator.servers.columns.status')}</Table.Th>
                  <Table.Th>{t('operator.servers.columns.containers')}</Table.Th>
                  <Table.Th>{t('operator.servers.columns.capacity')}</Table.Th>
                  <Table.Th>{t('operator.servers.columns.lastSeen')}</Table.Th>
                  <Table.Th>{t('operator.servers.columns.actions')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {data.servers.map((server) => {
                  const checked = health.data?.servers.find((row) => row.server_id === server.server_id);
                  return (
                    <Table.Tr key={server.server_id} data-testid={`server-${server.server_name}`}>
                      <Table.Td><Text fw={600} size="sm">{server.server_name}</Text><Text size="xs" c="dimmed">#{server.server_id}</Text></Table.Td>
                      <Table.Td><Text size="sm">{server.ip_address}</Text><Text size="xs" c="dimmed">{server.docker_url}</Text></Table.Td>
                      <Table.Td>
                        <Group gap={4}>
                          <StateBadge state={(checked ?? server).status} testId="server-status" />
                          {server.maintenance && <StateBadge state="maintenance" />}
                        </Group>
                        {server.down_since && <Text size="xs" c="red">{t('operator.servers.downSince', { when: dateTime(server.down_since, i18n.language) })}</Text>}
                      </Table.Td>
                      <Table.Td>{server.containers}</Table.Td>
                      <Table.Td><Text size="xs">{server.cpus != null ? t('operator.servers.cpus', { count: server.cpus }) : '—'}{server.memory_mib != null ? `, ${mebibytes(server.memory_mib, i18n.language)}` : ''}</Text></Table.Td>
                      <Table.Td><Text size="xs">{dateTime(server.last_seen_at, i18n.language)}</Text></Table.Td>
                      <Table.Td>
                        <Group gap={4} wrap="nowrap" role="group" aria-label={t('operator.servers.actionsFor', { name: server.server_name })}>
                          <Button size="compact-xs" variant="light" onClick={() => setAction({ kind: server.maintenance ? 'maintenanceOff' : 'maintenanceOn', server })}>
                            {server.maintenance ? t('operator.servers.maintenanceOff') : t('operator.servers.maintenanceOn')}
                          </Button>
                          <Button size="compact-xs" variant="light" color="orange" onClick={() => setAction({ kind: 'drain', server })}>{t('operator.servers.drain')}</Button>
                          <Button size="compact-xs" variant="light" color="red" onClick={() => setAction({ kind: 'delete', server })}>{t('operator.servers.delete')}</Button>
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  );
                })}
              </Table.Tbody>
            </Table>
          </ScrollArea>
        )}
      </QueryState>
      {adding && <AddServerModal onClose={() => setAdding(false)} />}
      {fleet && <FleetConfirm fleet={fleet} onClose={() => setFleet(null)} onDone={setResult} />}
      {action && <ServerConfirm action={action} onClose={() => setAction(null)} onDone={setResult} />}
      {replacing && <ReplaceModal onClose={() => setReplacing(false)} onDone={setResult} />}
      {result && (
        <Modal opened onClose={() => setResult(null)} title={result.title} size="xl" closeButtonProps={{ 'aria-label': t('app.close') }}>
          <Stack data-testid="action-result">
            <Text size="sm">{result.message}</Text>
            <ActionsTable actions={result.actions} />
          </Stack>
        </Modal>
      )}
    </Stack>
  );
}

type Done = (result: { title: string; message: string; actions: HaAction[] }) => void;

function FleetConfirm({ fleet, onClose, onDone }: { fleet: Fleet; onClose: () => void; onDone: Done }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const options = {
    mutation: {
      onSuccess: (reply: { message: string; actions: HaAction[] }) => {
        invalidate(getContainersListServersQueryKey(), getContainersListContainersQueryKey());
        onClose();
        onDone({ title: t(`operator.servers.${fleet}`), message: reply.message, actions: reply.actions });
      },
    },
  };
  const failover = useContainersFailover(options);
  const balance = useContainersLoadBalance(options);
  const recovery = useContainersDisasterRecovery(options);
  const mutation = fleet === 'failover' ? failover : fleet === 'loadBalance' ? balance : recovery;
  return (
    <ConfirmModal title={t('operator.servers.confirmFleet', { action: t(`operator.servers.${fleet}`) })}
      text={t(`operator.servers.explain.${fleet}`)} confirmLabel={t(`operator.servers.${fleet}`)} color="orange"
      onConfirm={() => mutation.mutate()} onClose={onClose} loading={mutation.isPending} error={mutation.error} />
  );
}

function ServerConfirm({ action, onClose, onDone }: { action: ServerAction; onClose: () => void; onDone: Done }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const name = action.server.server_name;
  const refresh = () => invalidate(getContainersListServersQueryKey(), getContainersListContainersQueryKey());
  const maintenance = useContainersServerMaintenance({
    mutation: { onSuccess: (reply) => { refresh(); notify('green', reply.message); onClose(); } },
  });
  const drain = useContainersDrainServer({
    mutation: {
      onSuccess: (reply) => {
        refresh();
        onClose();
        onDone({ title: t('operator.servers.drainedTitle', { name }), message: reply.message, actions: reply.actions });
      },
    },
  });
  const remove = useContainersDeleteServer({
    mutation: { onSuccess: (reply) => { refresh(); notify('green', reply.message); onClose(); } },
  });
  const serverId = action.server.server_id;
  const confirm = () => {
    if (action.kind === 'drain') drain.mutate({ serverId });
    else if (action.kind === 'delete') remove.mutate({ serverId });
    else maintenance.mutate({ serverId, data: { maintenance: action.kind === 'maintenanceOn' } });
  };
  return (
    <ConfirmModal title={t(`operator.servers.confirm.${action.kind}Title`, { name })}
      text={t(`operator.servers.confirm.${action.kind}Text`, { count: action.server.containers })}
      confirmLabel={t(`operator.servers.${action.kind}`)} color={action.kind === 'maintenanceOff' ? 'blue' : 'red'}
      onConfirm={confirm} onClose={onClose} loading={maintenance.isPending || drain.isPending || remove.isPending}
      error={maintenance.error ?? drain.error ?? remove.error} />
  );
}

function ReplaceModal({ onClose, onDone }: { onClose: () => void; onDone: Done }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const [confirming, setConfirming] = useState<string | null>(null);
  const replace = useContainersReplaceContainer({
    mutation: {
      onSuccess: (reply) => {
        invalidate(getContainersListServersQueryKey(), getContainersListContainersQueryKey());
        onClose();
        onDone({
          title: t('operator.servers.replace'), message: reply.message,
          actions: [{ container_id: reply.container_id, container_name: reply.container_name, action: 'recreated', from_server_id: reply.from_server_id, to_server_id: reply.server_id }],
        });
      },
    },
  });
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { container_name: '' },
    validate: { container_name: (value: string) => (!value ? t('validation.required') : CONTAINER_NAME.test(value) ? null : t('validation.containerName')) },
  });
  if (confirming) {
    return (
      <ConfirmModal title={t('operator.servers.confirmReplace', { name: confirming })} text={t('operator.servers.explain.replace')}
        confirmLabel={t('operator.servers.replace')} color="orange" onClose={onClose}
        onConfirm={() => replace.mutate({ data: { container_name: confirming } })} loading={replace.isPending} error={replace.error} />
    );
  }
  return (
    <Modal opened onClose={onClose} title={t('operator.servers.replace')} closeButtonProps={{ 'aria-label': t('app.close') }}>
      <form noValidate onSubmit={form.onSubmit((values) => setConfirming(values.container_name))}>
        <Stack>
          <TextInput label={t('operator.servers.containerName')} withAsterisk data-autofocus autoComplete="off"
            key={form.key('container_name')} {...form.getInputProps('container_name')} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>{t('operator.common.cancel')}</Button>
            <Button type="submit">{t('operator.common.next')}</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

interface ServerValues {
  server_name: string;
  ip_address: string;
  docker_url: string;
  status: string;
  tls_ca_cert: string;
  tls_client_cert: string;
  tls_client_key: string;
}

const PEM = /-----BEGIN [A-Z0-9 ]+-----[\s\S]+-----END [A-Z0-9 ]+-----/;

/** The add-server form's checks, mirroring AddServer (exported for the component tests). */
export function validateServer(values: ServerValues, t: TFunction) {
  const errors: Partial<Record<keyof ServerValues, string>> = {};
  if (!values.server_name) errors.server_name = t('validation.required');
  else if (!SERVER_NAME.test(values.server_name)) errors.server_name = t('operator.validation.serverName');
  if (!values.ip_address) errors.ip_address = t('validation.required');
  else if (!isIp(values.ip_address)) errors.ip_address = t('operator.validation.ip');
  if (values.docker_url && !DOCKER_URL.test(values.docker_url)) errors.docker_url = t('operator.validation.dockerUrl');
  for (const field of ['tls_ca_cert', 'tls_client_cert', 'tls_client_key'] as const) {
    if (values[field] && !PEM.test(values[field])) errors[field] = t('operator.validation.pem');
    else if (values[field].length > 16384) errors[field] = t('validation.tooLong', { max: 16384 });
  }
  if (values.tls_client_cert && !values.tls_client_key) errors.tls_client_key = t('operator.validation.keyWithCert');
  if (values.tls_client_key && !values.tls_client_cert) errors.tls_client_cert = t('operator.validation.certWithKey');
  if (values.tls_ca_cert && !values.tls_client_cert && !errors.tls_client_cert) errors.tls_client_cert = t('operator.validation.certWithCa');
  return errors;
}

export function AddServerModal({ onClose }: { onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const add = useContainersAddServer();
  const form = useForm<ServerValues>({
    mode: 'uncontrolled',
    initialValues: { server_name: '', ip_address: '', docker_url: '', status: '', tls_ca_cert: '', tls_client_cert: '', tls_client_key: '' },
    transformValues: (values) => ({ ...values, server_name: values.server_name.trim(), ip_address: values.ip_address.trim(), docker_url: values.docker_url.trim() }),
    validate: (values) => validateServer(values, t),
  });
  const submit = form.onSubmit((values) => {
    const body: AddServer = {
      server_name: values.server_name,
      ip_address: values.ip_address,
      ...(values.docker_url ? { docker_url: values.docker_url } : {}),
      ...(values.status ? { status: values.status as AddServer['status'] } : {}),
      ...(values.tls_ca_cert ? { tls_ca_cert: values.tls_ca_cert } : {}),
      ...(values.tls_client_cert ? { tls_client_cert: values.tls_client_cert } : {}),
      ...(values.tls_client_key ? { tls_client_key: values.tls_client_key } : {}),
    };
    add.mutate({ data: body }, {
      onSuccess: (reply) => {
        notify(reply.status === 'online' ? 'green' : 'orange', t('operator.servers.added', { name: values.server_name, status: t(`operator.state.${reply.status}`) }));
        invalidate(getContainersListServersQueryKey());
        onClose();
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <Modal opened onClose={onClose} title={t('operator.servers.addTitle')} size="lg" closeButtonProps={{ 'aria-label': t('app.close') }}>
      <form onSubmit={submit} noValidate data-testid="server-form">
        <Stack>
          {add.isError && <ErrorAlert error={add.error} />}
          <SimpleGrid cols={{ base: 1, sm: 2 }}>
            <TextInput label={t('operator.servers.name')} withAsterisk data-autofocus autoComplete="off"
              key={form.key('server_name')} {...form.getInputProps('server_name')} />
            <TextInput label={t('operator.servers.ip')} withAsterisk autoComplete="off"
              key={form.key('ip_address')} {...form.getInputProps('ip_address')} />
          </SimpleGrid>
          <TextInput label={t('operator.servers.dockerUrl')} description={t('operator.servers.dockerUrlHelp')} autoComplete="off"
            key={form.key('docker_url')} {...form.getInputProps('docker_url')} />
          <Select label={t('operator.servers.initial')} clearable placeholder={t('operator.servers.initialProbe')}
            data={[{ value: 'maintenance', label: t('operator.state.maintenance') }]}
            key={form.key('status')} {...form.getInputProps('status')} />
          <Text size="sm" fw={600}>{t('operator.servers.tls')}</Text>
          <Text size="xs" c="dimmed">{t('operator.servers.tlsHelp')}</Text>
          <Textarea label={t('operator.servers.caCert')} autosize minRows={2} maxRows={6} ff="monospace"
            key={form.key('tls_ca_cert')} {...form.getInputProps('tls_ca_cert')} />
          <Textarea label={t('operator.servers.clientCert')} autosize minRows={2} maxRows={6}
            key={form.key('tls_client_cert')} {...form.getInputProps('tls_client_cert')} />
          <Textarea label={t('operator.servers.clientKey')} autosize minRows={2} maxRows={6}
            key={form.key('tls_client_key')} {...form.getInputProps('tls_client_key')} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>{t('operator.common.cancel')}</Button>
            <Button type="submit" loading={add.isPending} data-testid="server-submit">{t('operator.servers.addSubmit')}</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
