import { Alert, Button, Card, CopyButton, Group, SimpleGrid, Stack, Text, Title } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { useSession } from '../../auth/AuthContext';
import { downloadText } from './codes';

/** Recovery codes, shown this once (the API keeps only their digests): copy, download as
 * .txt, and a button that hides them for good. */
export function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  const { t } = useTranslation();
  const session = useSession();
  const username = session?.username ?? 'berth';
  const text = [t('twoFactor.codesFileTitle', { username }), t('twoFactor.codesFileHelp'), '', ...codes, ''].join('\n');
  return (
    <Card withBorder data-testid="recovery-codes" component="section" aria-labelledby="recovery-codes-title">
      <Stack gap="sm">
        <Title order={4} size="h5" id="recovery-codes-title">{t('twoFactor.codesTitle')}</Title>
        <Alert color="orange" role="alert" title={t('twoFactor.codesOnce')}>
          {t('twoFactor.codesWarning')}
        </Alert>
        <SimpleGrid cols={2} spacing="xs" component="ol" style={{ listStyle: 'none', padding: 0, margin: 0 }}>
          {codes.map((code) => (
            <Text component="li" key={code} ff="monospace" size="sm" data-testid="recovery-code">{code}</Text>
          ))}
        </SimpleGrid>
        <Group gap="xs">
          <CopyButton value={codes.join('\n')}>
            {({ copied, copy }) => (
              <Button size="xs" variant="light" color={copied ? 'teal' : 'blue'} onClick={copy} data-testid="copy-codes">
                {copied ? t('twoFactor.copied') : t('twoFactor.copyCodes')}
              </Button>
            )}
          </CopyButton>
          <Button size="xs" variant="light" data-testid="download-codes"
            onClick={() => downloadText(`berth-recovery-codes-${username}.txt`, text)}>
            {t('twoFactor.downloadCodes')}
          </Button>
          <Button size="xs" onClick={onDone} data-testid="codes-saved">{t('twoFactor.codesSaved')}</Button>
        </Group>
      </Stack>
    </Card>
  );
}
