import { Badge, Button, Card, Group, ScrollArea, Select, SimpleGrid, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useAlertsSystemLogs } from '../../api/generated/berth';
import type { AlertsSystemLogsParams } from '../../api/generated/model';
import { Pager, pageParams } from '../../components/Pager';
import { QueryState } from '../../components/QueryState';
import { dateTime } from '../../components/format';
import { isDate } from '../distributor/generate';
import { ID } from './common';
import type { TFunction } from 'i18next';

const PAGE = 50;

export interface AuditFilters {
  user_id: string;
  action: string;
  source: string;
  subject_type: string;
  subject_id: string;
  since: string;
  until: string;
}

const EMPTY: AuditFilters = { user_id: '', action: '', source: '', subject_type: '', subject_id: '', since: '', until: '' };

/** The filters as query parameters: empty ones left out (exported for the component tests). */
export function auditParams(filters: AuditFilters): Omit<AlertsSystemLogsParams, 'limit' | 'offset'> {
  const params: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(filters)) {
    const text = value.trim();
    if (text) params[key] = key === 'user_id' ? Number(text) : text;
  }
  return params as Omit<AlertsSystemLogsParams, 'limit' | 'offset'>;
}

export function validateAudit(values: AuditFilters, t: TFunction) {
  const errors: Partial<Record<keyof AuditFilters, string>> = {};
  if (values.user_id && !ID.test(values.user_id.trim())) errors.user_id = t('operator.validation.id');
  if (values.action.length > 96) errors.action = t('validation.tooLong', { max: 96 });
  if (values.subject_type.length > 32) errors.subject_type = t('validation.tooLong', { max: 32 });
  if (values.subject_id.length > 64) errors.subject_id = t('validation.tooLong', { max: 64 });
  if (values.since && !isDate(values.since)) errors.since = t('distributor.validation.date');
  if (values.until && !isDate(values.until)) errors.until = t('distributor.validation.date');
  if (!errors.since && !errors.until && values.since && values.until && values.until < values.since) errors.until = t('operator.validation.afterSince');
  return errors;
}

/** The audit log: who did what to which subject, when; filtered and paged. */
export default function Audit() {
  const { t, i18n } = useTranslation();
  const [page, setPage] = useState(1);
  const [filters, setFilters] = useState<AuditFilters>(EMPTY);
  const logs = useAlertsSystemLogs({ ...pageParams(page, PAGE), ...auditParams(filters) });
  const form = useForm<AuditFilters>({ mode: 'uncontrolled', initialValues: EMPTY, validate: (values) => validateAudit(values, t) });
  const submit = form.onSubmit((values) => { setFilters(values); setPage(1); });
  return (
    <Stack maw={1300}>
      <Title order={2}>{t('operator.audit.title')}</Title>
      <Card withBorder>
        <form onSubmit={submit} noValidate data-testid="audit-filters">
          <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }}>
            <TextInput label={t('operator.audit.user')} description={t('operator.audit.userHelp')} inputMode="numeric" key={form.key('user_id')} {...form.getInputProps('user_id')} />
            <TextInput label={t('operator.audit.action')} description={t('operator.audit.actionHelp')} key={form.key('action')} {...form.getInputProps('action')} />
            <TextInput label={t('operator.audit.subjectType')} description={t('operator.audit.subjectTypeHelp')} key={form.key('subject_type')} {...form.getInputProps('subject_type')} />
            <TextInput label={t('operator.audit.subjectId')} key={form.key('subject_id')} {...form.getInputProps('subject_id')} />
            <Select label={t('operator.audit.source')} clearable placeholder={t('operator.audit.anySource')}
              data={[{ value: 'api', label: t('operator.audit.sources.api') }, { value: 'event', label: t('operator.audit.sources.event') }]}
              key={form.key('source')} {...form.getInputProps('source')} />
            <TextInput type="date" label={t('operator.audit.since')} key={form.key('since')} {...form.getInputProps('since')} />
            <TextInput type="date" label={t('operator.audit.until')} key={form.key('until')} {...form.getInputProps('until')} />
            <Group align="flex-end" gap="xs">
              <Button type="submit" data-testid="audit-apply">{t('operator.audit.apply')}</Button>
              <Button variant="default" onClick={() => { form.reset(); setFilters(EMPTY); setPage(1); }}>{t('operator.audit.clear')}</Button>
            </Group>
          </SimpleGrid>
        </form>
      </Card>
      <QueryState query={logs}>
        {(data) => data.logs.length === 0 ? <Text data-testid="no-logs">{t('operator.audit.none')}</Text> : (
          <>
            <Text size="sm" c="dimmed" data-testid="audit-total">{t('operator.common.total', { count: data.total })}</Text>
            <ScrollArea type="auto">
              <Table striped miw={1000} data-testid="audit-log">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('operator.audit.when')}</Table.Th>
                    <Table.Th>{t('operator.audit.actor')}</Table.Th>
                    <Table.Th>{t('operator.audit.action')}</Table.Th>
                    <Table.Th>{t('operator.audit.message')}</Table.Th>
                    <Table.Th>{t('operator.audit.about')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.logs.map((row) => (
                    <Table.Tr key={row.log_id}>
                      <Table.Td><Text size="xs">{dateTime(row.timestamp, i18n.language)}</Text></Table.Td>
                      <Table.Td data-testid="log-actor">
                        <Text size="sm">{row.actor.username ?? (row.actor.type === 'system' ? t('operator.audit.system') : row.actor.type)}</Text>
                        {row.actor.user_id != null && <Text size="xs" c="dimmed">#{row.actor.user_id}{row.actor.role ? ` · ${t(`roles.${row.actor.role}`, { defaultValue: row.actor.role })}` : ''}</Text>}
                      </Table.Td>
                      <Table.Td><Badge variant="light" color={row.source === 'api' ? 'blue' : 'grape'}>{row.source}</Badge> <Text span ff="monospace" size="xs">{row.action}</Text></Table.Td>
                      <Table.Td><Text size="sm">{row.message}</Text></Table.Td>
                      <Table.Td>{row.user_id != null ? `#${row.user_id}` : '—'}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            <Pager total={data.total} pageSize={PAGE} page={page} onChange={setPage} />
          </>
        )}
      </QueryState>
    </Stack>
  );
}
