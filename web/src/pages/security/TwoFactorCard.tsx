import { Alert, Badge, Button, Card, Group, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getUsersTwoFactorStatusQueryKey, useUsersTwoFactorDisable, useUsersTwoFactorRecoveryCodes,
  useUsersTwoFactorStatus,
} from '../../api/generated/berth';
import type { TwoFactorConfirmed, TwoFactorStatus } from '../../api/generated/model';
import { signIn } from '../../auth/token';
import { ConfirmModal } from '../../components/ConfirmModal';
import { ErrorAlert } from '../../components/ErrorText';
import { QueryState } from '../../components/QueryState';
import { dateTime } from '../../components/format';
import { required, showFieldErrors } from '../../components/forms';
import { notify } from '../../components/notify';
import { RecoveryCodes } from './RecoveryCodes';
import { TwoFactorSetup } from './TwoFactorSetup';
import { normaliseCode, secondFactor } from './codes';

/** My account, "Two-factor sign-in": its status, turning it on (QR code, secret, a code),
 * the recovery codes shown once, new recovery codes, turning it off. */
export function TwoFactorCard() {
  const { t } = useTranslation();
  const status = useUsersTwoFactorStatus();
  const queryClient = useQueryClient();
  const [codes, setCodes] = useState<string[] | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: getUsersTwoFactorStatusQueryKey() });

  const confirmed = (reply: TwoFactorConfirmed) => {
    if (reply.token) signIn(reply.token); // this session goes on with it; the others ended
    setCodes(reply.recovery_codes);
    notify('green', t('twoFactor.turnedOn'));
    void refresh();
  };

  return (
    <Card withBorder component="section" aria-labelledby="two-factor-title" data-testid="two-factor">
      <Group justify="space-between" mb="xs" wrap="wrap">
        <Title order={3} size="h4" id="two-factor-title">{t('twoFactor.title')}</Title>
        {status.data && <StatusBadge status={status.data} />}
      </Group>
      <Text size="sm" c="dimmed" mb="sm">{t('twoFactor.help')}</Text>
      {codes ? <RecoveryCodes codes={codes} onDone={() => setCodes(null)} /> : (
        <QueryState query={status}>
          {(data) => (data.enabled ? <Enabled status={data} onCodes={setCodes} onChange={refresh} /> : (
            <Stack>
              {data.required && <Alert color="orange" data-testid="two-factor-required">{t('twoFactor.requiredHelp')}</Alert>}
              <TwoFactorSetup onConfirmed={confirmed} restarting={data.pending} />
            </Stack>
          ))}
        </QueryState>
      )}
    </Card>
  );
}

function StatusBadge({ status }: { status: TwoFactorStatus }) {
  const { t } = useTranslation();
  if (status.enabled) return <Badge color="green" data-testid="two-factor-status">{t('twoFactor.on')}</Badge>;
  if (status.pending) return <Badge color="yellow" data-testid="two-factor-status">{t('twoFactor.pending')}</Badge>;
  return <Badge color="gray" data-testid="two-factor-status">{t('twoFactor.off')}</Badge>;
}

function Enabled({ status, onCodes, onChange }: {
  status: TwoFactorStatus; onCodes: (codes: string[]) => void; onChange: () => void;
}) {
  const { t, i18n } = useTranslation();
  const left = status.recovery_codes_left;
  return (
    <Stack>
      <Text size="sm" data-testid="two-factor-since">
        {t('twoFactor.since', { when: dateTime(status.enabled_at, i18n.language) })}
      </Text>
      <Text size="sm" c={left <= 3 ? 'orange' : undefined} data-testid="codes-left">
        {t('twoFactor.codesLeft', { count: left })}
      </Text>
      {status.required && <Text size="sm" c="dimmed">{t('twoFactor.requiredOn')}</Text>}
      <NewCodes onCodes={(codes) => { onCodes(codes); onChange(); }} />
      <TurnOff onDone={onChange} />
    </Stack>
  );
}

function NewCodes({ onCodes }: { onCodes: (codes: string[]) => void }) {
  const { t } = useTranslation();
  const regenerate = useUsersTwoFactorRecoveryCodes();
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { code: '' },
    validate: { code: secondFactor(t) },
  });
  const submit = form.onSubmit((values) => {
    regenerate.mutate({ data: { code: normaliseCode(values.code) } }, {
      onSuccess: (reply) => {
        form.reset();
        onCodes(reply.recovery_codes);
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <form onSubmit={submit} noValidate data-testid="new-codes-form" aria-labelledby="new-codes-title">
      <Stack gap="xs">
        <Title order={4} size="h5" id="new-codes-title">{t('twoFactor.newCodesTitle')}</Title>
        <Text size="sm" c="dimmed">{t('twoFactor.newCodesHelp')}</Text>
        {regenerate.isError && <ErrorAlert error={regenerate.error} />}
        <TextInput label={t('twoFactor.codeOrRecovery')} autoComplete="one-time-code" inputMode="numeric"
          maxLength={64} withAsterisk key={form.key('code')} {...form.getInputProps('code')} />
        <Button type="submit" variant="light" loading={regenerate.isPending} style={{ alignSelf: 'flex-start' }}
          data-testid="new-codes">
          {t('twoFactor.newCodesSubmit')}
        </Button>
      </Stack>
    </form>
  );
}

function TurnOff({ onDone }: { onDone: () => void }) {
  const { t } = useTranslation();
  const disable = useUsersTwoFactorDisable();
  const [asking, setAsking] = useState<{ password: string; code: string } | null>(null);
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { password: '', code: '' },
    validate: { password: required(t, 1024), code: secondFactor(t) },
  });
  const submit = form.onSubmit((values) => {
    disable.reset();
    setAsking({ password: values.password, code: normaliseCode(values.code) });
  });
  const turnOff = () => {
    if (!asking) return;
    disable.mutate({ data: asking }, {
      onSuccess: (reply) => {
        signIn(reply.token); // the other sessions ended; this one goes on
        setAsking(null);
        form.reset();
        notify('green', t('twoFactor.turnedOff'));
        onDone();
      },
      onError: (error) => {
        setAsking(null);
        showFieldErrors(form, error);
      },
    });
  };
  return (
    <form onSubmit={submit} noValidate data-testid="disable-form" aria-labelledby="disable-title">
      <Stack gap="xs">
        <Title order={4} size="h5" id="disable-title">{t('twoFactor.disableTitle')}</Title>
        <Text size="sm" c="dimmed">{t('twoFactor.disableHelp')}</Text>
        {disable.isError && <ErrorAlert error={disable.error} />}
        <PasswordInput label={t('twoFactor.password')} autoComplete="current-password" withAsterisk
          key={form.key('password')} {...form.getInputProps('password')} />
        <TextInput label={t('twoFactor.codeOrRecovery')} autoComplete="one-time-code" inputMode="numeric"
          maxLength={64} withAsterisk key={form.key('code')} {...form.getInputProps('code')} />
        <Button type="submit" color="red" variant="light" style={{ alignSelf: 'flex-start' }} data-testid="disable">
          {t('twoFactor.disableSubmit')}
        </Button>
      </Stack>
      {asking && (
        <ConfirmModal title={t('twoFactor.disableConfirmTitle')} text={t('twoFactor.disableConfirm')}
          confirmLabel={t('twoFactor.disableSubmit')} onConfirm={turnOff} loading={disable.isPending}
          onClose={() => setAsking(null)} />
      )}
    </form>
  );
}
