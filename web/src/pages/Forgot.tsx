import { Alert, Anchor, Button, Stack, Text, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { useUsersForgotPassword } from '../api/generated/berth';
import type { ForgotPassword } from '../api/generated/model';
import { ErrorAlert } from '../components/ErrorText';
import { PublicFrame } from '../components/PublicFrame';
import { email, showFieldErrors } from '../components/forms';

/** /forgot: ask for a reset link. The API answers the same for known and unknown addresses,
 * and so does this page. */
export default function Forgot() {
  const { t } = useTranslation();
  const forgot = useUsersForgotPassword();
  const form = useForm<ForgotPassword>({
    mode: 'uncontrolled', initialValues: { email: '' }, validate: { email: email(t) },
  });
  const submit = form.onSubmit((values) => {
    forgot.mutate({ data: values }, { onError: (error) => showFieldErrors(form, error) });
  });
  return (
    <PublicFrame title={t('forgot.title')}>
      {forgot.isSuccess ? (
        <Stack>
          <Alert color="green" role="status" data-testid="forgot-sent">{t('forgot.sent')}</Alert>
          <Anchor component={Link} to="/login">{t('forgot.backToSignIn')}</Anchor>
        </Stack>
      ) : (
        <form onSubmit={submit} noValidate data-testid="forgot-form">
          <Stack>
            <Text size="sm">{t('forgot.help')}</Text>
            {forgot.isError && <ErrorAlert error={forgot.error} />}
            <TextInput label={t('fields.email')} type="email" autoComplete="email" withAsterisk
              key={form.key('email')} {...form.getInputProps('email')} />
            <Button type="submit" loading={forgot.isPending}>{t('forgot.submit')}</Button>
            <Anchor component={Link} to="/login" size="sm">{t('forgot.backToSignIn')}</Anchor>
          </Stack>
        </form>
      )}
    </PublicFrame>
  );
}
