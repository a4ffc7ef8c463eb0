import { Anchor, Card, Stack, Text, Title } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { SerialsTable } from '../distributor/SerialsTable';

/** Every serial, with revoke, reinstate and delete; generating them is on the distributor page. */
export default function Serials() {
  const { t } = useTranslation();
  return (
    <Stack maw={1300}>
      <Title order={2}>{t('operator.serials.title')}</Title>
      <Text size="sm">{t('operator.serials.help')} <Anchor component={Link} to="/distributor">{t('operator.serials.generate')}</Anchor></Text>
      <Card withBorder><SerialsTable manage /></Card>
    </Stack>
  );
}
