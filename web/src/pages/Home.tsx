import { Alert, Badge, Button, Card, Group, List, Progress, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import {
  getBillingRentalInfoQueryKey, getContainersListContainersQueryKey, useBillingRedeemSerial,
  useBillingRentalInfo,
} from '../api/generated/berth';
import type { PlanRow, RedeemSerial, RentalInfo, RentalUsage } from '../api/generated/model';
import { ErrorAlert } from '../components/ErrorText';
import { QueryState } from '../components/QueryState';
import { bytes, dateTime, daysUntil, mebibytes } from '../components/format';
import { required, showFieldErrors } from '../components/forms';
import { refresh } from '../api/queryClient';

export default function Home() {
  const { t } = useTranslation();
  const rental = useBillingRentalInfo();
  return (
    <Stack maw={960}>
      <Title order={2}>{t('home.title')}</Title>
      <QueryState query={rental}>
        {(info) => (
          <>
            <RentalStatus info={info} />
            {info.plan && <Plan plan={info.plan} used={info.used ?? null} />}
          </>
        )}
      </QueryState>
      <Redeem />
    </Stack>
  );
}

function RentalStatus({ info }: { info: RentalInfo }) {
  const { t, i18n } = useTranslation();
  const status = info.rental_status;
  const left = info.rental_expiry ? daysUntil(info.rental_expiry) : null;
  return (
    <Card withBorder data-testid="rental-status">
      <Group justify="space-between" wrap="wrap">
        <Text fw={600}>{t('home.status')}</Text>
        <Group gap="xs">
          {info.suspended_at && <Badge color="red" data-testid="suspended">{t('home.suspended')}</Badge>}
          <Badge color={status === 'active' ? 'green' : status === 'expired' ? 'orange' : 'gray'} data-testid="rental-badge">
            {status === 'active' ? t('home.statusActive') : status === 'expired' ? t('home.statusExpired') : t('home.statusNone')}
          </Badge>
        </Group>
      </Group>
      {status === 'none' && <Text mt="sm" data-testid="no-rental">{t('home.noRental')}</Text>}
      {status === 'expired' && info.rental_expiry && (
        <Text mt="sm">{t('home.expiredText', { date: info.rental_expiry })}</Text>
      )}
      {status === 'active' && info.rental_expiry && left !== null && (
        <Group mt="sm" gap="lg" wrap="wrap">
          <Text size="xl" fw={700} data-testid="days-left">
            {left > 0 ? t('home.daysLeft', { count: left }) : t('home.lastDay')}
          </Text>
          <Text c="dimmed" data-testid="ends-on">{t('home.endsOn', { date: info.rental_expiry })}</Text>
        </Group>
      )}
      {info.suspended_at && (
        <Alert mt="sm" color="red" role="alert" data-testid="suspension">
          {t('home.suspendedText', { when: dateTime(info.suspended_at, i18n.language), reason: info.suspension_reason ?? '—' })}
        </Alert>
      )}
    </Card>
  );
}

function Usage({ label, used, max, text, testId }: {
  label: string; used: number | null; max: number | null; text: string; testId: string;
}) {
  const percent = used !== null && max ? Math.min(100, (used / max) * 100) : 0;
  return (
    <div data-testid={testId}>
      <Group justify="space-between" gap="xs"><Text size="sm">{label}</Text><Text size="sm" fw={600}>{text}</Text></Group>
      {max !== null && used !== null && (
        <Progress value={percent} color={percent >= 100 ? 'red' : percent >= 80 ? 'orange' : 'blue'} mt={4}
          aria-label={label} />
      )}
    </div>
  );
}

function Plan({ plan, used }: { plan: PlanRow; used: RentalUsage | null }) {
  const { t, i18n } = useTranslation();
  const locale = i18n.language;
  const missing = used?.unavailable?.length ? t('home.notAnswering', { services: used.unavailable.join(', ') }) : null;
  const quota = plan.traffic_quota_bytes;
  const traffic = used?.traffic_bytes ?? null;
  return (
    <Card withBorder data-testid="plan">
      <Group justify="space-between" wrap="wrap" mb="sm">
        <Text fw={600} data-testid="plan-name">{t('home.planName', { name: plan.name })}</Text>
        {quota !== null && (
          <Badge variant="light">{plan.quota_action === 'suspend' ? t('home.quotaSuspend') : t('home.quotaAlert')}</Badge>
        )}
      </Group>
      <Stack gap="sm">
        <Usage testId="usage-containers" label={t('home.containers')} used={used?.containers ?? null} max={plan.max_containers}
          text={used?.containers == null ? (missing ?? '—') : `${used.containers} / ${plan.max_containers}`} />
        <Usage testId="usage-traffic"
          label={used?.traffic_month ? t('home.traffic', { month: used.traffic_month }) : t('home.trafficNoMonth')}
          used={traffic} max={quota}
          text={traffic === null ? (missing ?? '—') : `${bytes(traffic, locale)} / ${quota === null ? t('home.unlimited') : bytes(quota, locale)}`} />
      </Stack>
      <SimpleGrid cols={{ base: 1, xs: 2 }} mt="md" spacing="xs">
        <Text size="sm">{t('home.cpus')}: <b>{plan.cpus}</b></Text>
        <Text size="sm">{t('home.memory')}: <b>{mebibytes(plan.memory_mib, locale)}</b></Text>
        <Text size="sm">{t('home.processes')}: <b>{plan.pids_limit}</b></Text>
        <Text size="sm">{t('home.ports')}: <b>{plan.max_ports}</b></Text>
        <Text size="sm">{t('home.logs')}: <b>{mebibytes(plan.log_max_mib, locale)}</b></Text>
      </SimpleGrid>
      <Text fw={600} size="sm" mt="md">{t('home.images')}</Text>
      {plan.images.length === 0 ? <Text size="sm" c="dimmed">{t('home.noImages')}</Text> : (
        <List size="sm">
          {plan.images.map((image) => (
            <List.Item key={image.image_id}>{image.display_name} <Text span c="dimmed" size="xs">({image.reference})</Text></List.Item>
          ))}
        </List>
      )}
    </Card>
  );
}

function Redeem() {
  const { t } = useTranslation();
  const queryClient = useQueryClient();
  const redeem = useBillingRedeemSerial();
  const form = useForm<RedeemSerial>({
    mode: 'uncontrolled',
    initialValues: { serial_code: '' },
    transformValues: (values) => ({ serial_code: values.serial_code.trim() }),
    validate: { serial_code: (value) => required(t, 64)(value.trim()) },
  });
  const submit = form.onSubmit((values) => {
    redeem.mutate({ data: values }, {
      onSuccess: () => {
        form.reset();
        refresh(queryClient, { queryKey: getBillingRentalInfoQueryKey() });
        refresh(queryClient, { queryKey: getContainersListContainersQueryKey() });
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <Card withBorder>
      <form onSubmit={submit} noValidate data-testid="redeem-form">
        <Stack gap="sm">
          <Text fw={600} component="h3" m={0}>{t('home.redeem')}</Text>
          <Text size="sm" c="dimmed">{t('home.redeemHelp')}</Text>
          {redeem.isError && <ErrorAlert error={redeem.error} />}
          {redeem.isSuccess && (
            <Alert color="green" role="status" data-testid="redeemed">
              {redeem.data.renewed ? t('home.renewed', { date: redeem.data.rental_expiry }) : t('home.redeemed', { date: redeem.data.rental_expiry })}
            </Alert>
          )}
          <Group align="flex-start" wrap="wrap">
            <TextInput label={t('home.serial')} withAsterisk style={{ flex: '1 1 14rem' }} autoComplete="off"
              key={form.key('serial_code')} {...form.getInputProps('serial_code')} />
            <Button type="submit" mt={{ base: 0, xs: 25 }} loading={redeem.isPending}>{t('home.redeemSubmit')}</Button>
          </Group>
        </Stack>
      </form>
    </Card>
  );
}
