import { Badge, Button, Group, ScrollArea, Stack, Table, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getBillingListSerialsQueryKey, useBillingDeleteSerial, useBillingListSerials, useBillingUpdateSerial,
} from '../../api/generated/berth';
import type { SerialRow } from '../../api/generated/model';
import { ConfirmModal } from '../../components/ConfirmModal';
import { Pager, pageParams } from '../../components/Pager';
import { QueryState } from '../../components/QueryState';
import { downloadCsv, toCsv } from '../../components/csv';
import { dateTime } from '../../components/format';
import { notify } from '../../components/notify';
import { todayUtc } from './generate';

const PAGE = 20;
const STATUS_COLOR: Record<string, string> = { valid: 'green', used: 'blue', expired: 'orange', revoked: 'red' };

export function serialsCsv(rows: SerialRow[]): string {
  return toCsv(['serial_id', 'serial_code', 'type', 'status', 'plan_id', 'expiry_date', 'distributor_id', 'used_by', 'created_at'],
    rows.map((row) => [row.serial_id, row.serial_code, row.type, row.status, row.plan_id ?? '', row.expiry_date,
      row.distributor_id ?? '', row.used_by ?? '', row.created_at]));
}

type Pending = { kind: 'revoke' | 'reinstate' | 'delete'; row: SerialRow };

/** The serials one may see (a distributor: those they issued; an admin: all), paged; an admin
 * may also revoke, reinstate and delete them, each after a confirmation. */
export function SerialsTable({ manage = false }: { manage?: boolean }) {
  const { t, i18n } = useTranslation();
  const [page, setPage] = useState(1);
  const [pending, setPending] = useState<Pending | null>(null);
  const serials = useBillingListSerials(pageParams(page, PAGE));
  return (
    <QueryState query={serials}>
      {(data) => (
        <Stack gap="sm">
          {data.serials.length === 0 ? <Text size="sm" data-testid="no-serials">{t('distributor.noSerials')}</Text> : (
            <>
              <Group justify="flex-end">
                <Button size="xs" variant="light" data-testid="serials-csv"
                  onClick={() => downloadCsv(`berth-serials-page${page}-${todayUtc()}.csv`, serialsCsv(data.serials))}>
                  {t('distributor.csvPage')}
                </Button>
              </Group>
              <ScrollArea type="auto">
                <Table striped miw={manage ? 900 : 720} data-testid="serials-table">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>{t('distributor.columns.code')}</Table.Th>
                      <Table.Th>{t('distributor.columns.type')}</Table.Th>
                      <Table.Th>{t('distributor.columns.status')}</Table.Th>
                      <Table.Th>{t('distributor.columns.plan')}</Table.Th>
                      <Table.Th>{t('distributor.columns.expiry')}</Table.Th>
                      <Table.Th>{t('distributor.columns.usedBy')}</Table.Th>
                      <Table.Th>{t('distributor.columns.created')}</Table.Th>
                      {manage && <Table.Th>{t('distributor.columns.actions')}</Table.Th>}
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {data.serials.map((row) => (
                      <Table.Tr key={row.serial_id} data-testid={`serial-${row.serial_code}`}>
                        <Table.Td><Text ff="monospace" size="xs">{row.serial_code}</Text></Table.Td>
                        <Table.Td>{t(`distributor.serialType.${row.type}`)}</Table.Td>
                        <Table.Td><Badge color={STATUS_COLOR[row.status] ?? 'gray'}>{t(`distributor.serialStatus.${row.status}`)}</Badge></Table.Td>
                        <Table.Td>{row.plan_id ?? '—'}</Table.Td>
                        <Table.Td>{row.expiry_date}</Table.Td>
                        <Table.Td>{row.used_by ? `#${row.used_by}` : row.issued_to ?? '—'}</Table.Td>
                        <Table.Td><Text size="xs">{dateTime(row.created_at, i18n.language)}</Text></Table.Td>
                        {manage && (
                          <Table.Td>
                            <Group gap={4} wrap="nowrap" role="group" aria-label={t('distributor.actionsFor', { code: row.serial_code })}>
                              {row.status === 'valid' && (
                                <Button size="compact-xs" variant="light" color="orange" onClick={() => setPending({ kind: 'revoke', row })}>
                                  {t('distributor.revoke')}
                                </Button>
                              )}
                              {row.status === 'revoked' && (
                                <Button size="compact-xs" variant="light" onClick={() => setPending({ kind: 'reinstate', row })}>
                                  {t('distributor.reinstate')}
                                </Button>
                              )}
                              <Button size="compact-xs" variant="light" color="red" onClick={() => setPending({ kind: 'delete', row })}>
                                {t('distributor.delete')}
                              </Button>
                            </Group>
                          </Table.Td>
                        )}
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </ScrollArea>
            </>
          )}
          <Pager total={data.total} pageSize={PAGE} page={page} onChange={setPage} />
          {pending && <SerialAction pending={pending} onClose={() => setPending(null)} />}
        </Stack>
      )}
    </QueryState>
  );
}

function SerialAction({ pending, onClose }: { pending: Pending; onClose: () => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const done = () => {
    notify('green', t(`distributor.done.${pending.kind}`, { code: pending.row.serial_code }));
    void queryClient.invalidateQueries({ queryKey: getBillingListSerialsQueryKey() });
    onClose();
  };
  const update = useBillingUpdateSerial({ mutation: { onSuccess: done } });
  const remove = useBillingDeleteSerial({ mutation: { onSuccess: done } });
  const id = pending.row.serial_id;
  const confirm = () => {
    if (pending.kind === 'delete') remove.mutate({ id });
    else update.mutate({ id, data: { status: pending.kind === 'revoke' ? 'revoked' : 'valid' } });
  };
  return (
    <ConfirmModal title={t(`distributor.confirm.${pending.kind}Title`, { code: pending.row.serial_code })}
      text={t(`distributor.confirm.${pending.kind}Text`)} confirmLabel={t(`distributor.${pending.kind}`)}
      color={pending.kind === 'reinstate' ? 'blue' : 'red'} onConfirm={confirm} onClose={onClose}
      loading={update.isPending || remove.isPending} error={update.error ?? remove.error} />
  );
}
