import { Alert, Button, PasswordInput, Stack, Text } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { useUsersPasswordResetLink, useUsersResetPassword } from '../api/generated/berth';
import { ApiError } from '../api/fetcher';
import { ErrorAlert } from '../components/ErrorText';
import { PublicFrame } from '../components/PublicFrame';
import { QueryState } from '../components/QueryState';
import { dateTime } from '../components/format';
import { newPassword, showFieldErrors } from '../components/forms';

/** /reset/<token>: the console's page for a mailed password reset link. It checks the link
 * first (GET /api/password/reset/<token>), then sets the password (POST /api/password/reset),
 * which ends every session of the account. */
export default function Reset() {
  const { t, i18n } = useTranslation();
  const { token = '' } = useParams();
  const link = useUsersPasswordResetLink(token, { query: { staleTime: Infinity, retry: false } });
  const reset = useUsersResetPassword();
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { new_password: '', again: '' },
    validate: {
      new_password: newPassword(t),
      again: (value, values) => (value !== values.new_password ? t('validation.passwordMismatch') : null),
    },
  });
  const submit = form.onSubmit((values) => {
    reset.mutate({ data: { token, new_password: values.new_password } },
      { onError: (error) => showFieldErrors(form, error) });
  });
  const dead = link.error instanceof ApiError && !link.error.unavailable;
  return (
    <PublicFrame title={t('reset.title')}>
      {reset.isSuccess ? (
        <Stack>
          <Alert color="green" role="status" data-testid="reset-done">{t('reset.done')}</Alert>
          <Button component={Link} to="/login">{t('reset.signIn')}</Button>
        </Stack>
      ) : dead ? (
        <Stack>
          <Alert color="red" role="alert" data-testid="reset-dead">{t('reset.dead')}</Alert>
          <Button component={Link} to="/forgot" variant="light">{t('reset.askAgain')}</Button>
        </Stack>
      ) : (
        <QueryState query={link}>
          {(state) => (
            <form onSubmit={submit} noValidate data-testid="reset-form">
              <Stack>
                <Text size="sm" data-testid="reset-for">
                  {t('reset.for', { username: state.username, until: dateTime(state.expires_at, i18n.language) })}
                </Text>
                {reset.isError && <ErrorAlert error={reset.error} />}
                <PasswordInput label={t('reset.newPassword')} autoComplete="new-password" withAsterisk
                  key={form.key('new_password')} {...form.getInputProps('new_password')} />
                <PasswordInput label={t('fields.passwordAgain')} autoComplete="new-password" withAsterisk
                  key={form.key('again')} {...form.getInputProps('again')} />
                <Text size="xs" c="dimmed">{t('reset.endsSessions')}</Text>
                <Button type="submit" loading={reset.isPending}>{t('reset.submit')}</Button>
              </Stack>
            </form>
          )}
        </QueryState>
      )}
    </PublicFrame>
  );
}
