import { Anchor, Stack, Text } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';

export default function NotFound() {
  const { t } = useTranslation();
  return (
    <Stack>
      <Text>{t('app.notFound')}</Text>
      <Anchor component={Link} to="/">{t('app.backHome')}</Anchor>
    </Stack>
  );
}
