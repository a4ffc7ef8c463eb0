import { Alert, Anchor, Button, Checkbox, PasswordInput, Stack, Text, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useLocation, useNavigate } from 'react-router-dom';
import { ApiError } from '../api/fetcher';
import { useUsersLogin, useUsersLoginSecondFactor } from '../api/generated/berth';
import type { Login as LoginBody, LoginReply } from '../api/generated/model';
import { signIn } from '../auth/token';
import { ErrorAlert } from '../components/ErrorText';
import { PublicFrame } from '../components/PublicFrame';
import { required, showFieldErrors } from '../components/forms';
import { normaliseCode, secondFactor } from './security/codes';

// the one 401 of POST /api/login/2fa that leaves the challenge usable (services/users/
// two_factor.py INVALID_CODE); any other 401 there means the challenge has expired or was
// superseded (a password change...): back to the password
const WRONG_CODE = 'Invalid two-factor code';

interface Challenge {
  challenge: string;
  username: string;
}

/** Sign in: the password, then, for an account with two-factor sign-in on, a code (or a
 * recovery code) against the challenge the password earned. */
export default function Login() {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const location = useLocation();
  const login = useUsersLogin();
  const [challenge, setChallenge] = useState<Challenge | null>(null);
  const [ended, setEnded] = useState<string | null>(null);
  const form = useForm<LoginBody>({
    mode: 'uncontrolled',
    initialValues: { username: '', password: '' },
    validate: { username: required(t, 64), password: required(t, 1024) },
  });
  const from = (location.state as { from?: string } | null)?.from ?? '/';

  const signedIn = (reply: LoginReply) => {
    // an admin who must enrol first gets a token too: the console then shows only enrolment
    if (reply.token && signIn(reply.token)) navigate(from, { replace: true });
  };

  const submit = form.onSubmit((values) => {
    setEnded(null);
    login.mutate({ data: values }, {
      onSuccess: (reply) => {
        if (reply.two_factor_required && reply.challenge) {
          form.setFieldValue('password', '');
          setChallenge({ challenge: reply.challenge, username: values.username });
        } else {
          signedIn(reply);
        }
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });

  if (challenge) {
    return (
      <SecondStep challenge={challenge} onSignedIn={signedIn}
        onEnded={(message) => { login.reset(); setChallenge(null); setEnded(message); }} />
    );
  }
  return (
    <PublicFrame title={t('login.title')}>
      <form onSubmit={submit} noValidate data-testid="login-form">
        <Stack>
          {ended && <Alert color="orange" role="alert" data-testid="challenge-ended">{ended}</Alert>}
          {login.isError && <ErrorAlert error={login.error} />}
          <TextInput label={t('fields.username')} autoComplete="username" withAsterisk
            key={form.key('username')} {...form.getInputProps('username')} />
          <PasswordInput label={t('fields.password')} autoComplete="current-password" withAsterisk
            key={form.key('password')} {...form.getInputProps('password')} />
          <Button type="submit" loading={login.isPending}>{t('login.submit')}</Button>
          <Anchor component={Link} to="/forgot" size="sm">{t('login.forgot')}</Anchor>
          <Text size="sm">
            {t('login.noAccount')} <Anchor component={Link} to="/signup">{t('login.signUp')}</Anchor>
          </Text>
        </Stack>
      </form>
    </PublicFrame>
  );
}

function SecondStep({ challenge, onSignedIn, onEnded }: {
  challenge: Challenge; onSignedIn: (reply: LoginReply) => void; onEnded: (message: string) => void;
}) {
  const { t } = useTranslation();
  const step = useUsersLoginSecondFactor();
  // one input for both; a recovery code has letters, so a phone gets a full keyboard for it
  const [recovery, setRecovery] = useState(false);
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: { code: '' },
    validate: { code: secondFactor(t) },
  });
  const submit = form.onSubmit((values) => {
    step.mutate({ data: { challenge: challenge.challenge, code: normaliseCode(values.code) } }, {
      onSuccess: onSignedIn,
      onError: (error) => {
        if (error instanceof ApiError && error.status === 401 && error.message !== WRONG_CODE) {
          onEnded(`${t('login.challengeEnded')} (${error.message})`);
          return;
        }
        form.setFieldValue('code', '');
        showFieldErrors(form, error);
      },
    });
  });
  return (
    <PublicFrame title={t('login.secondTitle')}>
      <form onSubmit={submit} noValidate data-testid="code-form">
        <Stack>
          <Text size="sm">{t('login.secondHelp', { username: challenge.username })}</Text>
          {step.isError && <ErrorAlert error={step.error} />}
          <TextInput label={recovery ? t('login.recoveryCode') : t('login.code')}
            description={t('login.codeHelp')} withAsterisk data-autofocus autoFocus
            autoComplete={recovery ? 'off' : 'one-time-code'} inputMode={recovery ? 'text' : 'numeric'}
            autoCapitalize="none" spellCheck={false} maxLength={64}
            key={form.key('code')} {...form.getInputProps('code')} />
          <Checkbox label={t('login.useRecovery')} checked={recovery} data-testid="use-recovery"
            onChange={(event) => setRecovery(event.currentTarget.checked)} />
          <Button type="submit" loading={step.isPending} data-testid="code-submit">{t('login.verify')}</Button>
          <Anchor component="button" type="button" size="sm" onClick={() => onEnded('')} data-testid="back-to-password"
            style={{ alignSelf: 'flex-start' }}>
            {t('login.backToPassword')}
          </Anchor>
        </Stack>
      </form>
    </PublicFrame>
  );
}
