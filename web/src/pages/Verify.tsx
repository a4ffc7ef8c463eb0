import { Alert, Button, Stack } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { useUsersVerifyEmail } from '../api/generated/berth';
import { ApiError } from '../api/fetcher';
import { PublicFrame } from '../components/PublicFrame';
import { QueryState } from '../components/QueryState';

/** /verify/<token>: the console's landing page for a verification link (the mailed link,
 * /api/verify_email/<token>, answers a browser with a page of its own). */
export default function Verify() {
  const { t } = useTranslation();
  const { token = '' } = useParams();
  const query = useUsersVerifyEmail(token, { query: { staleTime: Infinity, gcTime: Infinity } });
  const refused = query.error instanceof ApiError && !query.error.unavailable;
  return (
    <PublicFrame title={t('verify.title')}>
      <Stack>
        {refused ? (
          <Alert color="red" role="alert" data-testid="verify-result">{t('verify.bad')}</Alert>
        ) : (
          <QueryState query={query}>
            {() => <Alert color="green" role="status" data-testid="verify-result">{t('verify.ok')}</Alert>}
          </QueryState>
        )}
        <Button component={Link} to="/login" variant="light">{t('verify.signIn')}</Button>
      </Stack>
    </PublicFrame>
  );
}
