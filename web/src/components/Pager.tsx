import { Group, Pagination, Text } from '@mantine/core';
import { useTranslation } from 'react-i18next';

/** Pages of a long list: shown only when there is more than one. */
export function Pager({ total, pageSize, page, onChange }: {
  total: number; pageSize: number; page: number; onChange: (page: number) => void;
}) {
  const { t } = useTranslation();
  const pages = Math.ceil(total / pageSize);
  if (pages <= 1) return null;
  return (
    <Group justify="space-between" wrap="wrap" gap="xs">
      <Pagination total={pages} value={page} onChange={onChange} size="sm" aria-label={t('operator.common.page')}
        getControlProps={(control) => ({ 'aria-label': t(`operator.common.pageControl.${control}`) })}
        getItemProps={(item) => ({ 'aria-label': t('operator.common.pageN', { page: item }) })} />
      <Text size="xs" c="dimmed">{t('operator.common.total', { count: total })}</Text>
    </Group>
  );
}

/** limit/offset for page ``page`` (1-based). */
export function pageParams(page: number, pageSize: number) {
  return { limit: pageSize, offset: (page - 1) * pageSize };
}
