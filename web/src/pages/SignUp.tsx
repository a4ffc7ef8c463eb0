import { Alert, Anchor, Button, PasswordInput, Stack, Text, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { useUsersAddUser } from '../api/generated/berth';
import type { AddUser } from '../api/generated/model';
import { ErrorAlert } from '../components/ErrorText';
import { PublicFrame } from '../components/PublicFrame';
import { email, newPassword, showFieldErrors, username } from '../components/forms';

type Values = AddUser & { again: string };

export default function SignUp() {
  const { t } = useTranslation();
  const addUser = useUsersAddUser();
  const form = useForm<Values>({
    mode: 'uncontrolled',
    initialValues: { username: '', email: '', password: '', again: '' },
    validate: {
      username: username(t),
      email: email(t),
      password: newPassword(t),
      again: (value, values) => (value !== values.password ? t('validation.passwordMismatch') : null),
    },
  });

  const submit = form.onSubmit(({ again: _again, ...body }) => {
    addUser.mutate({ data: body }, { onError: (error) => showFieldErrors(form, error) });
  });

  if (addUser.isSuccess) {
    return (
      <PublicFrame title={t('signup.title')}>
        <Stack>
          <Alert color="green" role="status" data-testid="signed-up">
            {t('signup.done', { email: addUser.variables?.data.email })}
          </Alert>
          <Button component={Link} to="/login">{t('signup.signIn')}</Button>
        </Stack>
      </PublicFrame>
    );
  }

  return (
    <PublicFrame title={t('signup.title')}>
      <form onSubmit={submit} noValidate data-testid="signup-form">
        <Stack>
          {addUser.isError && <ErrorAlert error={addUser.error} />}
          <TextInput label={t('fields.username')} autoComplete="username" withAsterisk
            key={form.key('username')} {...form.getInputProps('username')} />
          <TextInput label={t('fields.email')} type="email" autoComplete="email" withAsterisk
            key={form.key('email')} {...form.getInputProps('email')} />
          <PasswordInput label={t('fields.password')} autoComplete="new-password" withAsterisk
            key={form.key('password')} {...form.getInputProps('password')} />
          <PasswordInput label={t('fields.passwordAgain')} autoComplete="new-password" withAsterisk
            key={form.key('again')} {...form.getInputProps('again')} />
          <Button type="submit" loading={addUser.isPending}>{t('signup.submit')}</Button>
          <Text size="sm">
            {t('signup.haveAccount')} <Anchor component={Link} to="/login">{t('signup.signIn')}</Anchor>
          </Text>
        </Stack>
      </form>
    </PublicFrame>
  );
}
