import { Button, Card, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useTranslation } from 'react-i18next';
import { useUsersChangeOwnEmail, useUsersChangePassword } from '../api/generated/berth';
import type { ChangeEmail } from '../api/generated/model';
import { signIn } from '../auth/token';
import { ErrorAlert } from '../components/ErrorText';
import { notify } from '../components/notify';
import { email, newPassword, required, showFieldErrors } from '../components/forms';
import { ApiKeysCard } from './security/ApiKeysCard';
import { TwoFactorCard } from './security/TwoFactorCard';

/** /account: the signed-in person's own account — password, e-mail address, two-factor
 * sign-in and API keys. */
export default function Account() {
  const { t } = useTranslation();
  return (
    <Stack maw={960}>
      <Title order={2}>{t('account.title')}</Title>
      <ChangePasswordCard />
      <ChangeEmailCard />
      <TwoFactorCard />
      <ApiKeysCard />
    </Stack>
  );
}

function ChangePasswordCard() {
  const { t } = useTranslation();
  const change = useUsersChangePassword();
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { current_password: '', new_password: '', again: '' },
    validate: {
      current_password: required(t, 1024),
      new_password: newPassword(t),
      again: (value, values) => (value !== values.new_password ? t('validation.passwordMismatch') : null),
    },
  });
  const submit = form.onSubmit(({ current_password, new_password }) => {
    change.mutate({ data: { current_password, new_password } }, {
      onSuccess: (reply) => {
        signIn(reply.token); // the old token ended with the change; this session goes on
        form.reset();
        notify('green', t('account.passwordChanged'));
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <Card withBorder component="section" aria-labelledby="password-title">
      <Title order={3} size="h4" id="password-title" mb="xs">{t('account.passwordTitle')}</Title>
      <Text size="sm" c="dimmed" mb="sm">{t('account.passwordHelp')}</Text>
      <form onSubmit={submit} noValidate data-testid="password-form">
        <Stack>
          {change.isError && <ErrorAlert error={change.error} />}
          <PasswordInput label={t('account.currentPassword')} autoComplete="current-password" withAsterisk
            key={form.key('current_password')} {...form.getInputProps('current_password')} />
          <PasswordInput label={t('account.newPassword')} autoComplete="new-password" withAsterisk
            key={form.key('new_password')} {...form.getInputProps('new_password')} />
          <PasswordInput label={t('fields.passwordAgain')} autoComplete="new-password" withAsterisk
            key={form.key('again')} {...form.getInputProps('again')} />
          <Button type="submit" loading={change.isPending} style={{ alignSelf: 'flex-start' }}>
            {t('account.passwordSubmit')}
          </Button>
        </Stack>
      </form>
    </Card>
  );
}

function ChangeEmailCard() {
  const { t } = useTranslation();
  const change = useUsersChangeOwnEmail();
  const form = useForm<ChangeEmail>({
    mode: 'uncontrolled',
    initialValues: { email: '', password: '' },
    validate: { email: email(t), password: required(t, 1024) },
  });
  const submit = form.onSubmit((values) => {
    change.mutate({ data: values }, {
      onSuccess: () => {
        form.reset();
        notify('green', t('account.emailChanged', { email: values.email }));
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <Card withBorder component="section" aria-labelledby="email-title">
      <Title order={3} size="h4" id="email-title" mb="xs">{t('account.emailTitle')}</Title>
      <Text size="sm" c="dimmed" mb="sm">{t('account.emailHelp')}</Text>
      <form onSubmit={submit} noValidate data-testid="email-form">
        <Stack>
          {change.isError && <ErrorAlert error={change.error} />}
          <TextInput label={t('account.newEmail')} type="email" autoComplete="email" withAsterisk
            key={form.key('email')} {...form.getInputProps('email')} />
          <PasswordInput label={t('fields.password')} autoComplete="current-password" withAsterisk
            key={form.key('password')} {...form.getInputProps('password')} />
          <Button type="submit" loading={change.isPending} style={{ alignSelf: 'flex-start' }}>
            {t('account.emailSubmit')}
          </Button>
        </Stack>
      </form>
    </Card>
  );
}
