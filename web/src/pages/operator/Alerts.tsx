import {
  Badge, Button, Card, Group, NumberInput, ScrollArea, SegmentedControl, Select, SimpleGrid, Stack, Table, Text, TextInput, Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getAlertsListAlertsQueryKey, getAlertsListRulesQueryKey, getAlertsRealtimeAlertsQueryKey, useAlertsAddAlert,
  useAlertsDeleteAlert, useAlertsListAlerts, useAlertsListRules,
} from '../../api/generated/berth';
import type { AddAlert } from '../../api/generated/model';
import { ConfirmModal } from '../../components/ConfirmModal';
import { ErrorAlert } from '../../components/ErrorText';
import { Pager, pageParams } from '../../components/Pager';
import { QueryState } from '../../components/QueryState';
import { bytes, dateTime } from '../../components/format';
import { showFieldErrors } from '../../components/forms';
import { notify } from '../../components/notify';
import { StateBadge, useInvalidate, wholeNumber } from './common';
import type { TFunction } from 'i18next';

const PAGE = 25;
const TYPES = ['traffic', 'server_health', 'docker_traffic', 'docker_container'] as const;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

type Deleting = { id: number; what: 'alert' | 'rule'; label: string };

export default function Alerts() {
  const { t } = useTranslation();
  const [deleting, setDeleting] = useState<Deleting | null>(null);
  return (
    <Stack maw={1300}>
      <Title order={2}>{t('operator.alerts.title')}</Title>
      <AlertList onDelete={setDeleting} />
      <Rules onDelete={setDeleting} />
      {deleting && <DeleteAlert target={deleting} onClose={() => setDeleting(null)} />}
    </Stack>
  );
}

function AlertList({ onDelete }: { onDelete: (target: Deleting) => void }) {
  const { t, i18n } = useTranslation();
  const [page, setPage] = useState(1);
  const [status, setStatus] = useState<'open' | 'resolved' | 'all'>('open');
  const alerts = useAlertsListAlerts({ ...pageParams(page, PAGE), ...(status === 'all' ? {} : { status }) }, { query: { refetchInterval: 15_000 } });
  return (
    <Card withBorder>
      <Group justify="space-between" wrap="wrap" mb="sm">
        <Title order={3} size="h4">{t('operator.alerts.alerts')}</Title>
        <SegmentedControl value={status} aria-label={t('operator.alerts.filter')}
          onChange={(value) => { setStatus(value as typeof status); setPage(1); }}
          data={[{ value: 'open', label: t('operator.state.open') }, { value: 'resolved', label: t('operator.state.resolved') }, { value: 'all', label: t('operator.alerts.all') }]} />
      </Group>
      <QueryState query={alerts}>
        {(data) => data.alerts.length === 0 ? <Text size="sm" data-testid="no-alerts">{t('operator.alerts.none')}</Text> : (
          <>
            <ScrollArea type="auto">
              <Table striped miw={900} data-testid="alerts">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('operator.alerts.when')}</Table.Th>
                    <Table.Th>{t('operator.alerts.type')}</Table.Th>
                    <Table.Th>{t('operator.alerts.subject')}</Table.Th>
                    <Table.Th>{t('operator.alerts.message')}</Table.Th>
                    <Table.Th>{t('operator.alerts.status')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.alerts.map((alert) => (
                    <Table.Tr key={alert.alert_id}>
                      <Table.Td><Text size="xs">{dateTime(alert.timestamp, i18n.language)}</Text></Table.Td>
                      <Table.Td>{t(`operator.alerts.types.${alert.alert_type}`, { defaultValue: alert.alert_type })}</Table.Td>
                      <Table.Td><Text size="sm">{alert.subject.name ?? `${alert.subject.type} #${alert.subject.id}`}</Text><Text size="xs" c="dimmed">{alert.subject.type}</Text></Table.Td>
                      <Table.Td><Text size="sm">{alert.message}</Text></Table.Td>
                      <Table.Td><StateBadge state={alert.status} /></Table.Td>
                      <Table.Td><Button size="compact-xs" variant="light" color="red"
                        aria-label={t('operator.alerts.deleteAlert', { id: alert.alert_id })}
                        onClick={() => onDelete({ id: alert.alert_id, what: 'alert', label: alert.message })}>{t('operator.common.delete')}</Button></Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            <Pager total={data.total} pageSize={PAGE} page={page} onChange={setPage} />
          </>
        )}
      </QueryState>
    </Card>
  );
}

export function thresholdHelp(type: string, t: TFunction): string {
  return t(`operator.alerts.thresholdHelp.${type}`);
}

function Rules({ onDelete }: { onDelete: (target: Deleting) => void }) {
  const { t, i18n } = useTranslation();
  const invalidate = useInvalidate();
  const rules = useAlertsListRules();
  const add = useAlertsAddAlert();
  const form = useForm<{ alert_type: string; threshold: number | string; message: string }>({
    mode: 'controlled',
    initialValues: { alert_type: 'traffic', threshold: '', message: '' },
    validate: {
      threshold: wholeNumber(t, 0, 4_611_686_018_427_387_904),
      message: (value) => (!value.trim() ? t('validation.required') : value.length > 500 ? t('validation.tooLong', { max: 500 })
        : CONTROL.test(value) ? t('operator.validation.control') : null),
    },
  });
  const submit = form.onSubmit((values) => {
    add.mutate({ data: { alert_type: values.alert_type as AddAlert['alert_type'], threshold: Number(values.threshold), message: values.message.trim() } }, {
      onSuccess: (reply) => {
        notify('green', reply.message);
        invalidate(getAlertsListRulesQueryKey());
        form.reset();
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  const unit = (type: string, threshold: number) => (type === 'traffic' || type === 'docker_traffic' ? bytes(threshold, i18n.language)
    : type === 'server_health' ? t('operator.alerts.seconds', { count: threshold }) : '—');
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="sm">{t('operator.alerts.rules')}</Title>
      <QueryState query={rules}>
        {(data) => data.rules.length === 0 ? <Text size="sm">{t('operator.alerts.noRules')}</Text> : (
          <ScrollArea type="auto">
            <Table striped miw={700} data-testid="rules">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('operator.alerts.type')}</Table.Th>
                  <Table.Th>{t('operator.alerts.threshold')}</Table.Th>
                  <Table.Th>{t('operator.alerts.message')}</Table.Th>
                  <Table.Th>{t('operator.users.columns.actions')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {data.rules.map((rule) => (
                  <Table.Tr key={rule.rule_id}>
                    <Table.Td><Badge variant="light">{t(`operator.alerts.types.${rule.alert_type}`, { defaultValue: rule.alert_type })}</Badge></Table.Td>
                    <Table.Td>{unit(rule.alert_type, rule.threshold)}</Table.Td>
                    <Table.Td><Text size="sm">{rule.message}</Text></Table.Td>
                    <Table.Td><Button size="compact-xs" variant="light" color="red" aria-label={t('operator.alerts.deleteRule', { id: rule.rule_id })}
                      onClick={() => onDelete({ id: rule.alert_id, what: 'rule', label: rule.message })}>{t('operator.common.delete')}</Button></Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </ScrollArea>
        )}
      </QueryState>
      <form onSubmit={submit} noValidate data-testid="rule-form">
        <Stack gap="sm" mt="md">
          <Text fw={600} size="sm">{t('operator.alerts.addRule')}</Text>
          {add.isError && <ErrorAlert error={add.error} />}
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            <Select label={t('operator.alerts.type')} allowDeselect={false} withAsterisk
              data={TYPES.map((type) => ({ value: type, label: t(`operator.alerts.types.${type}`) }))} {...form.getInputProps('alert_type')} />
            <NumberInput label={t('operator.alerts.threshold')} description={thresholdHelp(form.values.alert_type, t)} withAsterisk min={0} allowDecimal={false}
              {...form.getInputProps('threshold')} />
            <TextInput label={t('operator.alerts.message')} withAsterisk autoComplete="off" {...form.getInputProps('message')} />
          </SimpleGrid>
          <Group><Button type="submit" loading={add.isPending}>{t('operator.alerts.addRule')}</Button></Group>
        </Stack>
      </form>
    </Card>
  );
}

function DeleteAlert({ target, onClose }: { target: Deleting; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const remove = useAlertsDeleteAlert({
    mutation: {
      onSuccess: (reply) => {
        notify('green', reply.message);
        invalidate(getAlertsListRulesQueryKey(), getAlertsListAlertsQueryKey(), getAlertsRealtimeAlertsQueryKey());
        onClose();
      },
    },
  });
  return (
    <ConfirmModal title={t(target.what === 'rule' ? 'operator.alerts.confirmRule' : 'operator.alerts.confirmAlert')}
      text={t(target.what === 'rule' ? 'operator.alerts.ruleText' : 'operator.alerts.alertText', { label: target.label })}
      confirmLabel={t('operator.common.delete')} onConfirm={() => remove.mutate({ id: target.id })} onClose={onClose}
      loading={remove.isPending} error={remove.error} />
  );
}
