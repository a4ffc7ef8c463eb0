import { Badge, Button, Card, Group, Modal, ScrollArea, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getBillingCheckExpiryQueryKey, getBillingExpiringRentalsQueryKey, getBillingRentalHistoryQueryKey,
  useBillingCheckExpiry, useBillingExpiringRentals, useBillingRenewRental, useBillingRentalHistory,
  useBillingResumeRental,
} from '../../api/generated/berth';
import { ConfirmModal } from '../../components/ConfirmModal';
import { Pager, pageParams } from '../../components/Pager';
import { ErrorAlert } from '../../components/ErrorText';
import { QueryState } from '../../components/QueryState';
import { dateTime } from '../../components/format';
import { showFieldErrors } from '../../components/forms';
import { notify } from '../../components/notify';
import { addDays, isDate, todayUtc } from '../distributor/generate';
import { ID, useInvalidate } from './common';

const STATUS_COLOR: Record<string, string> = { active: 'green', expired: 'orange', cancelled: 'gray' };

type Renewing = { rental_id: number; user_id: number; end: string };

export default function Rentals() {
  const { t } = useTranslation();
  const [renewing, setRenewing] = useState<Renewing | null>(null);
  const [user, setUser] = useState('');
  const [shown, setShown] = useState<number | null>(null);
  const expired = useBillingCheckExpiry();
  return (
    <Stack maw={1200}>
      <Title order={2}>{t('operator.rentals.title')}</Title>
      <Card withBorder data-testid="past-due">
        <Title order={3} size="h4" mb="xs">{t('operator.rentals.pastDue')}</Title>
        <Text size="sm" c="dimmed" mb="sm">{t('operator.rentals.pastDueHelp')}</Text>
        <QueryState query={expired}>
          {(data) => data.expired_rentals.length === 0 ? <Text size="sm">{t('operator.rentals.nonePastDue')}</Text> : (
            <ScrollArea type="auto">
              <Table striped miw={520}>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('operator.rentals.rental')}</Table.Th>
                    <Table.Th>{t('operator.rentals.user')}</Table.Th>
                    <Table.Th>{t('operator.rentals.ended')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.expired_rentals.map((row) => (
                    <Table.Tr key={row.rental_id}>
                      <Table.Td>#{row.rental_id}</Table.Td>
                      <Table.Td><Button size="compact-xs" variant="subtle" onClick={() => { setUser(String(row.user_id)); setShown(row.user_id); }}>#{row.user_id}</Button></Table.Td>
                      <Table.Td>{row.expiry_date}</Table.Td>
                      <Table.Td><Button size="compact-xs" variant="light" onClick={() => setRenewing({ rental_id: row.rental_id, user_id: row.user_id, end: row.expiry_date })}>{t('operator.rentals.renew')}</Button></Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
          )}
        </QueryState>
      </Card>
      <Expiring onUser={(id) => { setUser(String(id)); setShown(id); }} onRenew={setRenewing} />
      <Card withBorder>
        <Title order={3} size="h4" mb="sm">{t('operator.rentals.history')}</Title>
        <form noValidate onSubmit={(event) => { event.preventDefault(); if (ID.test(user)) setShown(Number(user)); }}>
          <Group align="flex-end">
            <TextInput label={t('operator.rentals.userId')} value={user} inputMode="numeric" w={180}
              error={user === '' || ID.test(user) ? null : t('operator.validation.id')}
              onChange={(event) => setUser(event.currentTarget.value.trim())} />
            <Button type="submit" variant="light" data-testid="show-history">{t('operator.rentals.show')}</Button>
          </Group>
        </form>
        {shown !== null && <History userId={shown} onRenew={setRenewing} />}
      </Card>
      {renewing && <RenewModal rental={renewing} onClose={() => setRenewing(null)} />}
    </Stack>
  );
}

function History({ userId, onRenew }: { userId: number; onRenew: (rental: Renewing) => void }) {
  const { t, i18n } = useTranslation();
  const history = useBillingRentalHistory(userId);
  const [resuming, setResuming] = useState(false);
  const invalidate = useInvalidate();
  const resume = useBillingResumeRental({
    mutation: { onSuccess: (reply) => { notify('green', reply.message); invalidate(getBillingRentalHistoryQueryKey(userId)); setResuming(false); } },
  });
  return (
    <Stack mt="md">
      <QueryState query={history}>
        {(data) => data.rental_history.length === 0 ? <Text size="sm" data-testid="no-history">{t('operator.rentals.noHistory')}</Text> : (
          <ScrollArea type="auto">
            <Table striped miw={860} data-testid="rental-history">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('operator.rentals.rental')}</Table.Th>
                  <Table.Th>{t('operator.rentals.status')}</Table.Th>
                  <Table.Th>{t('operator.rentals.period')}</Table.Th>
                  <Table.Th>{t('operator.rentals.plan')}</Table.Th>
                  <Table.Th>{t('operator.rentals.renewedAt')}</Table.Th>
                  <Table.Th>{t('operator.users.columns.actions')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {data.rental_history.map((row) => (
                  <Table.Tr key={row.rental_id}>
                    <Table.Td>#{row.rental_id}{row.serial_id != null && <Text size="xs" c="dimmed">{t('operator.rentals.serial', { id: row.serial_id })}</Text>}</Table.Td>
                    <Table.Td>
                      <Badge color={STATUS_COLOR[row.status] ?? 'gray'}>{t(`distributor.rentalStatus.${row.status}`)}</Badge>
                      {row.suspended_at && <Text size="xs" c="red">{t('operator.rentals.suspended', { reason: row.suspension_reason ?? '—' })}</Text>}
                    </Table.Td>
                    <Table.Td>{row.start_date} – {row.end_date}</Table.Td>
                    <Table.Td>{row.plan_id ?? '—'}</Table.Td>
                    <Table.Td><Text size="xs">{dateTime(row.renewed_at, i18n.language)}</Text></Table.Td>
                    <Table.Td>
                      <Group gap={4} wrap="nowrap">
                        <Button size="compact-xs" variant="light" onClick={() => onRenew({ rental_id: row.rental_id, user_id: userId, end: row.end_date })}>{t('operator.rentals.renew')}</Button>
                        {row.suspended_at && row.status === 'active' && (
                          <Button size="compact-xs" variant="light" color="orange" onClick={() => setResuming(true)}>{t('operator.rentals.resume')}</Button>
                        )}
                      </Group>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </ScrollArea>
        )}
      </QueryState>
      {resuming && (
        <ConfirmModal title={t('operator.rentals.confirmResume', { id: userId })} text={t('operator.rentals.resumeText')} color="orange"
          confirmLabel={t('operator.rentals.resume')} onConfirm={() => resume.mutate({ data: { user_id: userId } })}
          onClose={() => setResuming(false)} loading={resume.isPending} error={resume.error} />
      )}
    </Stack>
  );
}

const EXPIRING_DAYS = 7;
const EXPIRING_PAGE = 20;

/** Running rentals that end within the week, soonest first (GET /api/rental/expiring). */
function Expiring({ onUser, onRenew }: { onUser: (id: number) => void; onRenew: (r: Renewing) => void }) {
  const { t } = useTranslation();
  const [page, setPage] = useState(1);
  const expiring = useBillingExpiringRentals({ days: EXPIRING_DAYS, ...pageParams(page, EXPIRING_PAGE) });
  return (
    <Card withBorder data-testid="expiring">
      <Title order={3} size="h4" mb="xs">{t('operator.rentals.expiring')}</Title>
      <QueryState query={expiring}>
        {(data) => data.rentals.length === 0 ? <Text size="sm">{t('operator.rentals.noneExpiring')}</Text> : (
          <>
            <ScrollArea type="auto">
              <Table striped miw={560}>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('operator.rentals.rental')}</Table.Th>
                    <Table.Th>{t('operator.rentals.user')}</Table.Th>
                    <Table.Th>{t('operator.rentals.ends')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.rentals.map((row) => (
                    <Table.Tr key={row.rental_id}>
                      <Table.Td>#{row.rental_id}</Table.Td>
                      <Table.Td><Button size="compact-xs" variant="subtle" onClick={() => onUser(row.user_id)}>{row.username ?? `#${row.user_id}`}</Button></Table.Td>
                      <Table.Td>{row.end_date} · {t('operator.rentals.daysLeft', { count: row.days_left })}</Table.Td>
                      <Table.Td><Button size="compact-xs" variant="light" onClick={() => onRenew({ rental_id: row.rental_id, user_id: row.user_id, end: row.end_date })}>{t('operator.rentals.renew')}</Button></Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            <Pager total={data.total} pageSize={EXPIRING_PAGE} page={page} onChange={setPage} />
          </>
        )}
      </QueryState>
    </Card>
  );
}

function RenewModal({ rental, onClose }: { rental: Renewing; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const renew = useBillingRenewRental();
  const start = rental.end > todayUtc() ? rental.end : todayUtc();
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { new_expiry_date: addDays(start, 30) },
    validate: {
      new_expiry_date: (value: string) => (!value ? t('validation.required') : !isDate(value) ? t('distributor.validation.date')
        : value <= rental.end ? t('operator.validation.later', { date: rental.end }) : null),
    },
  });
  const submit = form.onSubmit((values) => {
    renew.mutate({ data: { rental_id: rental.rental_id, new_expiry_date: values.new_expiry_date } }, {
      onSuccess: (reply) => {
        notify('green', reply.message);
        invalidate(getBillingCheckExpiryQueryKey(), getBillingExpiringRentalsQueryKey(), getBillingRentalHistoryQueryKey(rental.user_id));
        onClose();
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <Modal opened onClose={onClose} title={t('operator.rentals.renewTitle', { id: rental.rental_id })} closeButtonProps={{ 'aria-label': t('app.close') }}>
      <form onSubmit={submit} noValidate data-testid="renew-form">
        <Stack>
          {renew.isError && <ErrorAlert error={renew.error} />}
          <Text size="sm">{t('operator.rentals.endsNow', { date: rental.end })}</Text>
          <TextInput type="date" label={t('operator.rentals.newEnd')} withAsterisk data-autofocus
            key={form.key('new_expiry_date')} {...form.getInputProps('new_expiry_date')} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>{t('operator.common.cancel')}</Button>
            <Button type="submit" loading={renew.isPending}>{t('operator.rentals.renew')}</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
