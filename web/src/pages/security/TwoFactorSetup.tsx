import { Button, Code, CopyButton, Group, Image, PasswordInput, Stack, Text, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useTranslation } from 'react-i18next';
import { useUsersTwoFactorConfirm, useUsersTwoFactorEnrol } from '../../api/generated/berth';
import type { TwoFactorConfirmed, TwoFactorEnrolment } from '../../api/generated/model';
import { ErrorAlert } from '../../components/ErrorText';
import { required, showFieldErrors } from '../../components/forms';
import { normaliseCode, totpCode } from './codes';

/** Turning two-factor sign-in on: the password starts it (POST /api/2fa/enrol), the QR code
 * and the secret go into an authenticator app, a code from it confirms (POST
 * /api/2fa/confirm). ``onConfirmed`` gets the reply: the recovery codes and a fresh token. */
export function TwoFactorSetup({ onConfirmed, restarting = false }: {
  onConfirmed: (reply: TwoFactorConfirmed) => void;
  restarting?: boolean;
}) {
  const { t } = useTranslation();
  const enrol = useUsersTwoFactorEnrol();
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { password: '' },
    validate: { password: required(t, 1024) },
  });
  const submit = form.onSubmit((values) => {
    enrol.mutate({ data: values }, {
      onSuccess: () => form.reset(),
      onError: (error) => showFieldErrors(form, error),
    });
  });

  if (enrol.data) return <ConfirmStep enrolment={enrol.data} onConfirmed={onConfirmed} />;
  return (
    <form onSubmit={submit} noValidate data-testid="enrol-form">
      <Stack>
        <Text size="sm">{restarting ? t('twoFactor.restart') : t('twoFactor.enrolHelp')}</Text>
        {enrol.isError && <ErrorAlert error={enrol.error} />}
        <PasswordInput label={t('twoFactor.password')} autoComplete="current-password" withAsterisk
          key={form.key('password')} {...form.getInputProps('password')} />
        <Button type="submit" loading={enrol.isPending} style={{ alignSelf: 'flex-start' }} data-testid="enrol">
          {t('twoFactor.enrolSubmit')}
        </Button>
      </Stack>
    </form>
  );
}

function ConfirmStep({ enrolment, onConfirmed }: {
  enrolment: TwoFactorEnrolment; onConfirmed: (reply: TwoFactorConfirmed) => void;
}) {
  const { t } = useTranslation();
  const confirm = useUsersTwoFactorConfirm();
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { code: '' },
    validate: { code: totpCode(t) },
  });
  const submit = form.onSubmit((values) => {
    confirm.mutate({ data: { code: normaliseCode(values.code) } }, {
      onSuccess: onConfirmed,
      onError: (error) => showFieldErrors(form, error),
    });
  });
  // the secret in groups of four, easier to type
  const grouped = enrolment.secret.replace(/(.{4})/g, '$1 ').trim();
  return (
    <Stack data-testid="enrolment">
      <Text size="sm">{t('twoFactor.scan')}</Text>
      <Image src={enrolment.qr_svg} alt={t('twoFactor.qrAlt')} w={200} h={200} fit="contain"
        style={{ background: 'white' }} data-testid="qr" />
      <div>
        <Text size="sm" id="secret-label">{t('twoFactor.secretLabel')}</Text>
        <Group gap="xs" wrap="wrap">
          <Code data-testid="secret" aria-labelledby="secret-label" style={{ wordBreak: 'break-all', fontSize: 'var(--mantine-font-size-sm)' }}>
            {grouped}
          </Code>
          <CopyButton value={enrolment.secret}>
            {({ copied, copy }) => (
              <Button size="compact-xs" variant="light" color={copied ? 'teal' : 'blue'} onClick={copy} data-testid="copy-secret">
                {copied ? t('twoFactor.copied') : t('twoFactor.copySecret')}
              </Button>
            )}
          </CopyButton>
        </Group>
      </div>
      <form onSubmit={submit} noValidate data-testid="confirm-form">
        <Stack>
          {confirm.isError && <ErrorAlert error={confirm.error} />}
          <TextInput label={t('twoFactor.code')} description={t('twoFactor.confirmHelp')} withAsterisk
            autoComplete="one-time-code" inputMode="numeric" maxLength={64}
            key={form.key('code')} {...form.getInputProps('code')} />
          <Button type="submit" loading={confirm.isPending} style={{ alignSelf: 'flex-start' }} data-testid="confirm-code">
            {t('twoFactor.confirmSubmit')}
          </Button>
        </Stack>
      </form>
    </Stack>
  );
}
