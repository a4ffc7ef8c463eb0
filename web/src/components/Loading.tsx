import { Group, Loader, Text } from '@mantine/core';
import { useTranslation } from 'react-i18next';

export function Loading() {
  const { t } = useTranslation();
  return <Group gap="xs" p="md" role="status"><Loader size="sm" /><Text size="sm">{t('app.loading')}</Text></Group>;
}
