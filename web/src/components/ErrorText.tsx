import { Alert } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../api/fetcher';

/** What a person reads for a failed request: the API's own sentence when it refused, and
 * "service unavailable" when the service is down (a query retries by itself: "retrying";
 * an action does not: "try again"). */
export function useErrorMessage(retrying = true) {
  const { t } = useTranslation();
  return (error: unknown): string => {
    if (error instanceof ApiError) {
      if (error.unavailable && !retrying) return t('errors.unavailableLater');
      if (error.status === 0) return t('errors.network');
      if (error.unavailable) return t('errors.unavailable');
      const said = error.message || t('errors.generic', { status: error.status });
      const wait = retryAfter(error);
      if (wait === null) return said;
      return `${said} ${wait > 90 ? t('errors.waitMinutes', { count: Math.ceil(wait / 60) })
        : t('errors.waitSeconds', { count: wait })}`;
    }
    return t('errors.generic', { status: '?' });
  };
}

/** The seconds a 429 asks to wait (its ``retry_after`` detail; the header says the same). */
export function retryAfter(error: ApiError): number | null {
  if (error.status !== 429) return null;
  const detail = error.details.find((d) => d.field === 'retry_after');
  const seconds = detail ? Number(detail.message) : NaN;
  return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : null;
}

/** A failed action (a form sent, a button pressed): not retried by itself. */
export function ErrorAlert({ error }: { error: unknown }) {
  const { t } = useTranslation();
  const message = useErrorMessage(false);
  if (!error) return null;
  const unavailable = error instanceof ApiError && error.unavailable;
  return (
    <Alert color={unavailable ? 'yellow' : 'red'} role="alert" data-testid="form-error"
      title={unavailable ? t('errors.unavailableTitle') : t('errors.refused')}>
      {message(error)}
    </Alert>
  );
}
