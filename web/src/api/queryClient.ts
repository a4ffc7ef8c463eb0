import { QueryClient, type QueryFilters } from '@tanstack/react-query';
import { ApiError } from './fetcher';

/** A query whose service is down (503, or the gateway unreachable) keeps retrying, with a
 * visible "service unavailable, retrying" state (QueryState); a refusal (4xx) does not. */
export function shouldRetry(failureCount: number, error: unknown): boolean {
  if (error instanceof ApiError) return error.unavailable;
  return failureCount < 2;
}

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      retry: shouldRetry,
      retryDelay: (attempt) => Math.min(1000 * 2 ** attempt, 10_000),
      refetchOnWindowFocus: false,
      staleTime: 5_000,
    },
    mutations: { retry: false },
  },
});

/** Mark the queries ``filters`` selects stale and refetch those on screen, without aborting a
 * fetch already on its way (it may have started before the change the event reports: once it
 * ends, they are fetched again). */
export function refresh(client: QueryClient, filters: QueryFilters = {}): void {
  // cancelRefetch: false: of several refreshes waiting for the same fetch to end, the first
  // starts the next fetch and the others join it
  if (client.isFetching(filters) === 0) {
    void client.invalidateQueries(filters, { cancelRefetch: false });
    return;
  }
  const cache = client.getQueryCache();
  const unsubscribe = cache.subscribe(() => {
    if (client.isFetching(filters) === 0) {
      unsubscribe();
      void client.invalidateQueries(filters, { cancelRefetch: false });
    }
  });
}
