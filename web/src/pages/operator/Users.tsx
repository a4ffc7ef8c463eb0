import {
  Badge, Button, Group, Modal, NumberInput, ScrollArea, Select, SimpleGrid, Stack, Table, Text, Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getBillingListAllotmentsQueryKey, getUsersListUsersQueryKey, useBillingChangeAllotment, useBillingListAllotments,
  useBillingListPlans, useUsersListUsers, useUsersUpdateUser,
} from '../../api/generated/berth';
import type { UpdateUser, UserOut } from '../../api/generated/model';
import { useSession } from '../../auth/AuthContext';
import { ConfirmModal } from '../../components/ConfirmModal';
import { ErrorAlert } from '../../components/ErrorText';
import { Pager, pageParams } from '../../components/Pager';
import { QueryState } from '../../components/QueryState';
import { bytes, dateTime } from '../../components/format';
import { showFieldErrors } from '../../components/forms';
import { notify } from '../../components/notify';
import { bytesToGib, gibToBytes, useInvalidate, wholeNumber } from './common';

const PAGE = 25;
const ROLE_COLOR: Record<string, string> = { admin: 'grape', distributor: 'teal', user: 'gray' };

export default function Users() {
  const { t, i18n } = useTranslation();
  const me = useSession();
  const [page, setPage] = useState(1);
  const [editing, setEditing] = useState<UserOut | null>(null);
  const [toggling, setToggling] = useState<UserOut | null>(null);
  const [allotting, setAllotting] = useState<UserOut | null>(null);
  const users = useUsersListUsers(pageParams(page, PAGE));
  return (
    <Stack maw={1300}>
      <Title order={2}>{t('operator.users.title')}</Title>
      <QueryState query={users}>
        {(data) => (
          <>
            <ScrollArea type="auto">
              <Table striped miw={1000} data-testid="users">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('operator.users.columns.user')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.email')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.role')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.traffic')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.state')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.created')}</Table.Th>
                    <Table.Th>{t('operator.users.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.users.map((user) => (
                    <Table.Tr key={user.user_id} data-testid={`user-${user.username}`}>
                      <Table.Td><Text fw={600} size="sm">{user.username}</Text><Text size="xs" c="dimmed">#{user.user_id}</Text></Table.Td>
                      <Table.Td><Text size="sm">{user.email}</Text>
                        {!user.email_verified && <Text size="xs" c="orange">{t('operator.users.unverified')}</Text>}</Table.Td>
                      <Table.Td><Badge color={ROLE_COLOR[user.role]}>{t(`roles.${user.role}`)}</Badge></Table.Td>
                      <Table.Td>{user.traffic_limit == null ? t('operator.users.defaultLimit') : bytes(user.traffic_limit, i18n.language)}</Table.Td>
                      <Table.Td>{user.disabled
                        ? <Badge color="red" data-testid="user-disabled">{t('operator.users.disabled')}</Badge>
                        : <Badge color="green" variant="light">{t('operator.users.enabled')}</Badge>}</Table.Td>
                      <Table.Td><Text size="xs">{dateTime(user.created_at, i18n.language)}</Text></Table.Td>
                      <Table.Td>
                        <Group gap={4} wrap="nowrap" role="group" aria-label={t('operator.users.actionsFor', { name: user.username })}>
                          <Button size="compact-xs" variant="light" onClick={() => setEditing(user)}>{t('operator.users.edit')}</Button>
                          {user.role === 'distributor' && (
                            <Button size="compact-xs" variant="light" onClick={() => setAllotting(user)}>{t('operator.users.allotments')}</Button>
                          )}
                          {user.user_id !== me?.userId && (
                            <Button size="compact-xs" variant="light" color={user.disabled ? 'blue' : 'red'} onClick={() => setToggling(user)}>
                              {user.disabled ? t('operator.users.enable') : t('operator.users.disable')}
                            </Button>
                          )}
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            <Pager total={data.total} pageSize={PAGE} page={page} onChange={setPage} />
          </>
        )}
      </QueryState>
      {editing && <EditUser user={editing} onClose={() => setEditing(null)} />}
      {toggling && <ToggleUser user={toggling} onClose={() => setToggling(null)} />}
      {allotting && <Allotments user={allotting} onClose={() => setAllotting(null)} />}
    </Stack>
  );
}

function ToggleUser({ user, onClose }: { user: UserOut; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const update = useUsersUpdateUser({
    mutation: {
      onSuccess: () => {
        notify('green', t(user.disabled ? 'operator.users.enabledDone' : 'operator.users.disabledDone', { name: user.username }));
        invalidate(getUsersListUsersQueryKey());
        onClose();
      },
    },
  });
  const disabling = !user.disabled;
  return (
    <ConfirmModal title={t(disabling ? 'operator.users.confirmDisable' : 'operator.users.confirmEnable', { name: user.username })}
      text={t(disabling ? 'operator.users.disableText' : 'operator.users.enableText')}
      confirmLabel={disabling ? t('operator.users.disable') : t('operator.users.enable')} color={disabling ? 'red' : 'blue'}
      onConfirm={() => update.mutate({ userId: user.user_id, data: { disabled: disabling } })} onClose={onClose}
      loading={update.isPending} error={update.error} />
  );
}

function EditUser({ user, onClose }: { user: UserOut; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const update = useUsersUpdateUser();
  const form = useForm<{ role: string; traffic_limit: number | string }>({
    mode: 'uncontrolled',
    initialValues: { role: user.role, traffic_limit: bytesToGib(user.traffic_limit) },
    validate: {
      traffic_limit: (value) => (value === '' || (Number(value) >= 0 && Number(value) <= 4_000_000_000) ? null : t('operator.validation.gib')),
    },
  });
  const submit = form.onSubmit((values) => {
    const data: UpdateUser = {};
    if (values.role !== user.role) data.role = values.role as UpdateUser['role'];
    const limit = gibToBytes(values.traffic_limit);
    if (limit !== user.traffic_limit) data.traffic_limit = limit;
    if (Object.keys(data).length === 0) { onClose(); return; }
    update.mutate({ userId: user.user_id, data }, {
      onSuccess: () => {
        notify('green', t('operator.users.saved', { name: user.username }));
        invalidate(getUsersListUsersQueryKey());
        onClose();
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <Modal opened onClose={onClose} title={t('operator.users.editTitle', { name: user.username })} closeButtonProps={{ 'aria-label': t('app.close') }}>
      <form onSubmit={submit} noValidate data-testid="user-form">
        <Stack>
          {update.isError && <ErrorAlert error={update.error} />}
          <Select label={t('operator.users.columns.role')} allowDeselect={false} withAsterisk
            data={(['user', 'distributor', 'admin'] as const).map((role) => ({ value: role, label: t(`roles.${role}`) }))}
            key={form.key('role')} {...form.getInputProps('role')} />
          <Text size="xs" c="dimmed">{t('operator.users.roleHelp')}</Text>
          <NumberInput label={t('operator.users.trafficLimit')} description={t('operator.users.trafficLimitHelp')} min={0} decimalScale={3}
            key={form.key('traffic_limit')} {...form.getInputProps('traffic_limit')} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>{t('operator.common.cancel')}</Button>
            <Button type="submit" loading={update.isPending} data-testid="user-save">{t('operator.common.save')}</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function Allotments({ user, onClose }: { user: UserOut; onClose: () => void }) {
  const { t, i18n } = useTranslation();
  const invalidate = useInvalidate();
  const allotments = useBillingListAllotments(user.user_id);
  const plans = useBillingListPlans({ limit: 200 });
  const change = useBillingChangeAllotment();
  const form = useForm<{ plan_id: string; unit: string; amount: number | string }>({
    mode: 'uncontrolled',
    initialValues: { plan_id: '', unit: 'serials', amount: '' },
    validate: {
      plan_id: (value) => (value ? null : t('distributor.validation.plan')),
      amount: (value) => (Number(value) === 0 ? t('operator.validation.nonZero') : wholeNumber(t, -1_000_000, 1_000_000)(value)),
    },
  });
  const submit = form.onSubmit((values) => {
    change.mutate({ userId: user.user_id, data: { plan_id: Number(values.plan_id), [values.unit]: Number(values.amount) } }, {
      onSuccess: (reply) => {
        notify('green', reply.message);
        invalidate(getBillingListAllotmentsQueryKey(user.user_id));
        form.reset();
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <Modal opened onClose={onClose} size="lg" title={t('operator.users.allotmentsTitle', { name: user.username })} closeButtonProps={{ 'aria-label': t('app.close') }}>
      <Stack>
        <QueryState query={allotments}>
          {(data) => data.allotments.length === 0 ? <Text size="sm">{t('operator.users.noAllotments')}</Text> : (
            <Table data-testid="allotments-table">
              <Table.Tbody>
                {data.allotments.map((row) => (
                  <Table.Tr key={row.plan_id}>
                    <Table.Td>{row.plan_name}</Table.Td>
                    <Table.Td>{row.unit === 'serials' ? t('distributor.serialsLeft', { count: row.serials_left ?? 0 }) : t('distributor.daysLeft', { count: row.days_left ?? 0 })}</Table.Td>
                    <Table.Td><Text size="xs">{dateTime(row.updated_at, i18n.language)}</Text></Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
        </QueryState>
        <form onSubmit={submit} noValidate data-testid="allotment-form">
          <Stack gap="sm">
            {change.isError && <ErrorAlert error={change.error} />}
            <SimpleGrid cols={{ base: 1, sm: 3 }}>
              <Select label={t('distributor.plan')} withAsterisk data={(plans.data?.plans ?? []).map((plan) => ({ value: String(plan.plan_id), label: plan.name }))}
                key={form.key('plan_id')} {...form.getInputProps('plan_id')} />
              <Select label={t('operator.users.unit')} allowDeselect={false}
                data={[{ value: 'serials', label: t('operator.users.unitSerials') }, { value: 'days', label: t('operator.users.unitDays') }]}
                key={form.key('unit')} {...form.getInputProps('unit')} />
              <NumberInput label={t('operator.users.amount')} description={t('operator.users.amountHelp')} withAsterisk allowDecimal={false}
                key={form.key('amount')} {...form.getInputProps('amount')} />
            </SimpleGrid>
            <Group justify="flex-end">
              <Button type="submit" loading={change.isPending}>{t('operator.users.grant')}</Button>
            </Group>
          </Stack>
        </form>
      </Stack>
    </Modal>
  );
}
