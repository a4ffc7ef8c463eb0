import { Box, Container, Group, Paper, Title } from '@mantine/core';
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { LanguageSwitch } from './LanguageSwitch';

/** The frame of the pages one sees signed out: sign in, sign up, the verification link. */
export function PublicFrame({ title, children }: { title: string; children: ReactNode }) {
  const { t } = useTranslation();
  return (
    <Box component="main" id="main" py="xl" px="sm">
      <Container size={420} p={0}>
        <Group justify="space-between" mb="md" wrap="nowrap">
          <Title order={2} size="h3">{t('app.name')}</Title>
          <LanguageSwitch />
        </Group>
        <Paper withBorder shadow="sm" p="lg" radius="md">
          <Title order={1} size="h2" mb="md">{title}</Title>
          {children}
        </Paper>
      </Container>
    </Box>
  );
}
