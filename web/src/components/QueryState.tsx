import { Alert, Loader, Group, Text, Button } from '@mantine/core';
import type { UseQueryResult } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../api/fetcher';
import { useErrorMessage } from './ErrorText';

/** Loading, "service unavailable, retrying" (a 503 or no gateway: the query keeps retrying),
 * a refusal with the API's message, or the data. */
export function QueryState<T>({ query, children }: {
  query: UseQueryResult<T, unknown>;
  children: (data: T) => ReactNode;
}) {
  const { t } = useTranslation();
  const message = useErrorMessage();
  const failing = query.failureReason ?? query.error;
  const unavailable = failing instanceof ApiError && failing.unavailable;

  if (unavailable && (query.isPending || query.isError || query.isFetching)) {
    return (
      <Alert color="yellow" role="status" data-testid="unavailable" title={t('errors.unavailableTitle')}>
        <Group gap="xs"><Loader size="xs" color="yellow" /><Text size="sm">{message(failing)}</Text></Group>
      </Alert>
    );
  }
  if (query.isError) {
    return (
      <Alert color="red" role="alert" title={t('errors.refused')}>
        <Text size="sm">{message(query.error)}</Text>
        <Button mt="sm" size="xs" variant="light" onClick={() => void query.refetch()}>{t('errors.retry')}</Button>
      </Alert>
    );
  }
  if (query.isPending) {
    return <Group gap="xs" role="status"><Loader size="sm" /><Text size="sm">{t('app.loading')}</Text></Group>;
  }
  return <>{children(query.data as T)}</>;
}
