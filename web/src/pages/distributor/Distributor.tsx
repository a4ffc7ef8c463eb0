import {
  Alert, Badge, Button, Card, CopyButton, Group, NumberInput, ScrollArea, Select, SimpleGrid, Stack, Table, Text,
  TextInput, Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getBillingDistributorSalesQueryKey, getBillingListAllotmentsQueryKey, getBillingListSerialsQueryKey,
  useBillingDistributorSales, useBillingListAllotments, useBillingListPlans,
} from '../../api/generated/berth';
import type { AllotmentRow, GenerateSerial, SerialGenerated } from '../../api/generated/model';
import { useSession } from '../../auth/AuthContext';
import { ErrorAlert } from '../../components/ErrorText';
import { Pager, pageParams } from '../../components/Pager';
import { Figure } from '../../components/Figure';
import { QueryState } from '../../components/QueryState';
import { downloadCsv, toCsv } from '../../components/csv';
import { dateTime } from '../../components/format';
import { showFieldErrors } from '../../components/forms';
import { SerialsTable } from './SerialsTable';
import { MAX_BATCH, addDays, generateMany, isDate, todayUtc } from './generate';
import type { TFunction } from 'i18next';

export default function Distributor() {
  const { t } = useTranslation();
  const session = useSession();
  const admin = session?.role === 'admin';
  const [made, setMade] = useState<SerialGenerated[]>([]);
  return (
    <Stack maw={1100}>
      <Title order={2}>{t('distributor.title')}</Title>
      {admin ? <Text size="sm" c="dimmed">{t('distributor.adminNote')}</Text> : <Allotments userId={session!.userId} />}
      <GenerateForm admin={admin} userId={session!.userId} onMade={setMade} />
      {made.length > 0 && <Generated made={made} />}
      <Sales admin={admin} />
      <Card withBorder>
        <Title order={3} size="h4" mb="sm">{t('distributor.serialsTitle')}</Title>
        <SerialsTable />
      </Card>
    </Stack>
  );
}

function left(row: AllotmentRow, t: TFunction) {
  return row.unit === 'serials'
    ? t('distributor.serialsLeft', { count: row.serials_left ?? 0 })
    : t('distributor.daysLeft', { count: row.days_left ?? 0 });
}

function Allotments({ userId }: { userId: number }) {
  const { t, i18n } = useTranslation();
  const allotments = useBillingListAllotments(userId);
  return (
    <Card withBorder data-testid="allotments">
      <Title order={3} size="h4" mb="sm">{t('distributor.allotments')}</Title>
      <QueryState query={allotments}>
        {(data) => data.allotments.length === 0 ? <Text size="sm" data-testid="no-allotments">{t('distributor.noAllotments')}</Text> : (
          <SimpleGrid cols={{ base: 1, sm: 2, md: 3 }}>
            {data.allotments.map((row) => (
              <Card key={row.plan_id} withBorder padding="sm" data-testid={`allotment-${row.plan_id}`}>
                <Text fw={600}>{row.plan_name}</Text>
                <Text size="xl" fw={700} data-testid="allotment-left">{left(row, t)}</Text>
                <Text size="xs" c="dimmed">{t('distributor.updated', { when: dateTime(row.updated_at, i18n.language) })}</Text>
              </Card>
            ))}
          </SimpleGrid>
        )}
      </QueryState>
    </Card>
  );
}

interface GenerateValues {
  type: 'rental' | 'distributor';
  plan_id: string;
  expiry_date: string;
  count: number | string;
  user_id: string;
}

/** The form's checks, before anything is sent (exported for the component tests). */
export function validateGenerate(values: GenerateValues, t: TFunction, today = todayUtc()) {
  const errors: Partial<Record<keyof GenerateValues, string>> = {};
  if (values.type === 'rental' && !values.plan_id) errors.plan_id = t('distributor.validation.plan');
  if (!values.expiry_date) errors.expiry_date = t('validation.required');
  else if (!isDate(values.expiry_date)) errors.expiry_date = t('distributor.validation.date');
  else if (values.expiry_date <= today) errors.expiry_date = t('distributor.validation.future');
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > MAX_BATCH) errors.count = t('distributor.validation.count', { max: MAX_BATCH });
  if (values.user_id && !/^[1-9]\d{0,9}$/.test(values.user_id)) errors.user_id = t('distributor.validation.userId');
  return errors;
}

function GenerateForm({ admin, userId, onMade }: { admin: boolean; userId: number; onMade: (made: SerialGenerated[]) => void }) {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const allotments = useBillingListAllotments(userId, { query: { enabled: !admin } });
  const plans = useBillingListPlans({ limit: 200 }, { query: { enabled: admin } });
  const choices = admin
    ? (plans.data?.plans ?? []).map((plan) => ({ value: String(plan.plan_id), label: plan.is_default ? `${plan.name} (${t('distributor.default')})` : plan.name }))
    : (allotments.data?.allotments ?? []).map((row) => ({ value: String(row.plan_id), label: `${row.plan_name} — ${left(row, t)}` }));
  const form = useForm<GenerateValues>({
    mode: 'controlled',
    initialValues: { type: 'rental', plan_id: '', expiry_date: addDays(todayUtc(), 30), count: 1, user_id: '' },
    validate: (values) => validateGenerate(values, t),
  });
  const chosen = allotments.data?.allotments.find((row) => String(row.plan_id) === form.values.plan_id);

  const submit = form.onSubmit(async (values) => {
    const body: GenerateSerial = {
      type: values.type,
      expiry_date: values.expiry_date,
      ...(values.type === 'rental' ? { plan_id: Number(values.plan_id) } : {}),
      ...(values.user_id ? { user_id: Number(values.user_id) } : {}),
    };
    setRunning(true);
    setError(null);
    const batch = await generateMany(body, Number(values.count), onMade);
    setRunning(false);
    onMade(batch.made);
    if (batch.error) {
      setError(batch.error);
      showFieldErrors(form, batch.error);
    }
    void queryClient.invalidateQueries({ queryKey: getBillingListAllotmentsQueryKey(userId) });
    void queryClient.invalidateQueries({ queryKey: getBillingListSerialsQueryKey() });
    void queryClient.invalidateQueries({ queryKey: getBillingDistributorSalesQueryKey() });
  });

  return (
    <Card withBorder>
      <form onSubmit={submit} noValidate data-testid="generate-form">
        <Stack gap="sm">
          <Title order={3} size="h4">{t('distributor.generate')}</Title>
          <Text size="sm" c="dimmed">{admin ? t('distributor.generateHelpAdmin') : t('distributor.generateHelp')}</Text>
          {error ? <ErrorAlert error={error} /> : null}
          {!admin && allotments.isSuccess && allotments.data.allotments.length === 0 && (
            <Alert color="gray">{t('distributor.noAllotments')}</Alert>
          )}
          <SimpleGrid cols={{ base: 1, sm: 2, md: admin ? 5 : 3 }}>
            {admin && (
              <Select label={t('distributor.type')} allowDeselect={false} withAsterisk
                data={[{ value: 'rental', label: t('distributor.typeRental') }, { value: 'distributor', label: t('distributor.typeDistributor') }]}
                {...form.getInputProps('type')} />
            )}
            <Select label={t('distributor.plan')} withAsterisk={form.values.type === 'rental'} data={choices}
              disabled={form.values.type !== 'rental'} placeholder={t('distributor.choosePlan')}
              nothingFoundMessage={t('distributor.noPlans')} {...form.getInputProps('plan_id')} />
            <TextInput type="date" label={t('distributor.expiry')} withAsterisk min={addDays(todayUtc(), 1)}
              description={t('distributor.expiryHelp')} {...form.getInputProps('expiry_date')} />
            <NumberInput label={t('distributor.count')} withAsterisk min={1} max={MAX_BATCH} allowDecimal={false}
              {...form.getInputProps('count')} />
            {admin && (
              <TextInput label={t('distributor.assignee')} description={t('distributor.assigneeHelp')} inputMode="numeric"
                autoComplete="off" {...form.getInputProps('user_id')} />
            )}
          </SimpleGrid>
          {chosen?.unit === 'days' && isDate(form.values.expiry_date) && (
            <Text size="sm" c="dimmed">{t('distributor.costDays', {
              days: Math.max(0, Math.round((Date.parse(form.values.expiry_date) - Date.parse(todayUtc())) / 86_400_000)),
            })}</Text>
          )}
          <Group>
            <Button type="submit" loading={running} data-testid="generate">{t('distributor.generateSubmit')}</Button>
          </Group>
        </Stack>
      </form>
    </Card>
  );
}

/** The CSV of freshly generated codes (exported for the component tests). */
export function generatedCsv(made: SerialGenerated[], expiry: Record<number, string> = {}): string {
  return toCsv(['serial_id', 'serial_code', 'plan_id', 'expiry_date'],
    made.map((row) => [row.serial_id, row.serial_code, row.plan_id ?? '', expiry[row.serial_id] ?? '']));
}

function Generated({ made }: { made: SerialGenerated[] }) {
  const { t } = useTranslation();
  const codes = made.map((row) => row.serial_code).join('\n');
  return (
    <Card withBorder data-testid="generated">
      <Group justify="space-between" wrap="wrap" mb="sm">
        <Title order={3} size="h4">{t('distributor.generated', { count: made.length })}</Title>
        <Group gap="xs">
          <CopyButton value={codes}>
            {({ copied, copy }) => (
              <Button size="xs" variant="light" color={copied ? 'teal' : 'blue'} onClick={copy} data-testid="copy-all">
                {copied ? t('distributor.copied') : t('distributor.copyAll')}
              </Button>
            )}
          </CopyButton>
          <Button size="xs" variant="light" data-testid="csv"
            onClick={() => downloadCsv(`berth-serials-${todayUtc()}.csv`, generatedCsv(made))}>
            {t('distributor.csv')}
          </Button>
        </Group>
      </Group>
      <Stack gap={4}>
        {made.map((row) => (
          <Group key={row.serial_id} gap="xs" wrap="nowrap">
            <Text ff="monospace" size="sm" data-testid="generated-code" style={{ wordBreak: 'break-all' }}>{row.serial_code}</Text>
            <CopyButton value={row.serial_code}>
              {({ copied, copy }) => (
                <Button size="compact-xs" variant="subtle" onClick={copy}
                  aria-label={t('distributor.copyOne', { code: row.serial_code })}>
                  {copied ? t('distributor.copied') : t('distributor.copy')}
                </Button>
              )}
            </CopyButton>
          </Group>
        ))}
      </Stack>
    </Card>
  );
}

const SALES_PAGE = 20;
const RENTAL_COLOR: Record<string, string> = { active: 'green', expired: 'orange', cancelled: 'gray' };

function Sales({ admin }: { admin: boolean }) {
  const { t, i18n } = useTranslation();
  const [page, setPage] = useState(1);
  const [distributor, setDistributor] = useState<string>('');
  const valid = distributor === '' || /^[1-9]\d{0,9}$/.test(distributor);
  const sales = useBillingDistributorSales({
    ...pageParams(page, SALES_PAGE),
    ...(admin && distributor && valid ? { distributor_id: Number(distributor) } : {}),
  });
  return (
    <Card withBorder data-testid="sales">
      <Group justify="space-between" wrap="wrap" mb="sm" align="flex-end">
        <Title order={3} size="h4">{t('distributor.sales')}</Title>
        {admin && (
          <TextInput size="xs" label={t('distributor.filterDistributor')} value={distributor} inputMode="numeric"
            error={valid ? null : t('distributor.validation.userId')}
            onChange={(event) => { setDistributor(event.currentTarget.value.trim()); setPage(1); }} />
        )}
      </Group>
      <QueryState query={sales}>
        {(data) => (
          <Stack gap="sm">
            <SimpleGrid cols={{ base: 2, sm: 4 }} data-testid="sales-summary">
              <Figure label={t('distributor.issued')} value={data.summary.issued} />
              <Figure label={t('distributor.redeemed')} value={data.summary.redeemed} />
              <Figure label={t('distributor.customers')} value={data.summary.customers} />
              <Figure label={t('distributor.activeRentals')} value={data.summary.active_rentals} />
            </SimpleGrid>
            {data.sales.length === 0 ? <Text size="sm" data-testid="no-sales">{t('distributor.noSales')}</Text> : (
              <ScrollArea type="auto">
                <Table striped miw={760} data-testid="sales-table">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>{t('distributor.columns.code')}</Table.Th>
                      <Table.Th>{t('distributor.columns.plan')}</Table.Th>
                      <Table.Th>{t('distributor.columns.customer')}</Table.Th>
                      <Table.Th>{t('distributor.columns.redeemedAt')}</Table.Th>
                      <Table.Th>{t('distributor.columns.rental')}</Table.Th>
                      {admin && <Table.Th>{t('distributor.columns.distributor')}</Table.Th>}
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {data.sales.map((sale) => (
                      <Table.Tr key={sale.serial_id}>
                        <Table.Td><Text ff="monospace" size="xs">{sale.serial_code}</Text></Table.Td>
                        <Table.Td>{sale.plan_name ?? '—'}</Table.Td>
                        <Table.Td data-testid="sale-customer">
                          {sale.customer.username ?? t('distributor.goneUser')}
                          {sale.customer.user_id != null && <Text span size="xs" c="dimmed"> #{sale.customer.user_id}</Text>}
                        </Table.Td>
                        <Table.Td>{dateTime(sale.used_at, i18n.language)}</Table.Td>
                        <Table.Td>
                          {sale.rental ? (
                            <Group gap={4} wrap="nowrap">
                              <Badge color={RENTAL_COLOR[sale.rental.status] ?? 'gray'}>{t(`distributor.rentalStatus.${sale.rental.status}`)}</Badge>
                              <Text size="xs">{t('distributor.until', { date: sale.rental.end_date })}</Text>
                            </Group>
                          ) : t('distributor.rentalGone')}
                        </Table.Td>
                        {admin && <Table.Td>#{sale.distributor_id}</Table.Td>}
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </ScrollArea>
            )}
            <Pager total={data.total} pageSize={SALES_PAGE} page={page} onChange={setPage} />
          </Stack>
        )}
      </QueryState>
    </Card>
  );
}
