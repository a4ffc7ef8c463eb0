import {
  Alert, Badge, Button, Card, Checkbox, Code, CopyButton, Group, NumberInput, ScrollArea, Stack, Table, Text,
  TextInput, Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getUsersListApiKeysQueryKey, useUsersCreateApiKey, useUsersListApiKeys, useUsersRevokeApiKey,
} from '../../api/generated/berth';
import type { ApiKeyCreated, ApiKeyOut, CreateApiKey } from '../../api/generated/model';
import { useSession } from '../../auth/AuthContext';
import { ConfirmModal } from '../../components/ConfirmModal';
import { ErrorAlert } from '../../components/ErrorText';
import { Pager, pageParams } from '../../components/Pager';
import { QueryState } from '../../components/QueryState';
import { dateTime } from '../../components/format';
import { showFieldErrors } from '../../components/forms';
import { notify } from '../../components/notify';
import { ROLE_SCOPES, type Scope } from './codes';

const PAGE = 10;
const STATUS_COLOR: Record<string, string> = { active: 'green', expired: 'orange', revoked: 'gray', ended: 'red' };
// what the schema allows (CreateApiKey); the API's own ceiling (BERTH_API_KEY_MAX_DAYS) comes
// back in its refusal, shown on the field
const MAX_DAYS = 36500;
// what KeyName allows: 1 to 64 characters, no control characters
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** My account, "API keys": list (paged), create (the key shown once), revoke (confirmed). */
export function ApiKeysCard() {
  const { t } = useTranslation();
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  return (
    <Card withBorder component="section" aria-labelledby="api-keys-title" data-testid="api-keys">
      <Title order={3} size="h4" id="api-keys-title" mb="xs">{t('apiKeys.title')}</Title>
      <Text size="sm" c="dimmed">{t('apiKeys.help')}</Text>
      <Text size="sm" c="dimmed" mb="sm">
        {t('apiKeys.howTo')} <Code>Authorization: Bearer &lt;key&gt;</Code>
      </Text>
      <Stack>
        {created ? <NewKey created={created} onDone={() => setCreated(null)} /> : <CreateKeyForm onCreated={setCreated} />}
        <KeyList />
      </Stack>
    </Card>
  );
}

/** The key, this once: the API keeps only a digest of its secret. */
function NewKey({ created, onDone }: { created: ApiKeyCreated; onDone: () => void }) {
  const { t } = useTranslation();
  return (
    <Card withBorder data-testid="new-key">
      <Stack gap="sm">
        <Title order={4} size="h5">{t('apiKeys.createdTitle', { name: created.name })}</Title>
        <Alert color="orange" role="alert" title={t('apiKeys.onceTitle')}>{t('apiKeys.once')}</Alert>
        <Code block data-testid="new-key-value" style={{ wordBreak: 'break-all', whiteSpace: 'pre-wrap' }}>{created.key}</Code>
        <Group gap="xs">
          <CopyButton value={created.key}>
            {({ copied, copy }) => (
              <Button size="xs" variant="light" color={copied ? 'teal' : 'blue'} onClick={copy} data-testid="copy-key">
                {copied ? t('apiKeys.copied') : t('apiKeys.copy')}
              </Button>
            )}
          </CopyButton>
          <Button size="xs" onClick={onDone} data-testid="key-saved">{t('apiKeys.saved')}</Button>
        </Group>
      </Stack>
    </Card>
  );
}

export function CreateKeyForm({ onCreated }: { onCreated: (key: ApiKeyCreated) => void }) {
  const { t } = useTranslation();
  const session = useSession();
  const queryClient = useQueryClient();
  const create = useUsersCreateApiKey();
  const allowed = ROLE_SCOPES[session?.role ?? 'user'];
  const form = useForm<{ name: string; scopes: string[]; expires_in_days: number | string }>({
    mode: 'uncontrolled',
    initialValues: { name: '', scopes: ['read'], expires_in_days: 90 },
    validate: {
      name: (value) => {
        const name = value.trim();
        if (!name) return t('validation.required');
        if (name.length > 64) return t('validation.tooLong', { max: 64 });
        return CONTROL.test(name) ? t('apiKeys.validation.name') : null;
      },
      scopes: (value) => (value.length === 0 ? t('apiKeys.validation.scopes')
        : value.some((s) => !allowed.includes(s as Scope)) ? t('apiKeys.validation.scopeBeyond') : null),
      expires_in_days: (value) => (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_DAYS
        ? null : t('apiKeys.validation.days', { max: MAX_DAYS })),
    },
  });
  const submit = form.onSubmit((values) => {
    const body: CreateApiKey = {
      name: values.name.trim(),
      scopes: allowed.filter((s) => values.scopes.includes(s)),
      expires_in_days: Number(values.expires_in_days),
    };
    create.mutate({ data: body }, {
      onSuccess: (reply) => {
        form.reset();
        void queryClient.invalidateQueries({ queryKey: getUsersListApiKeysQueryKey().slice(0, 1) });
        onCreated(reply);
      },
      onError: (error) => showFieldErrors(form, error),
    });
  });
  return (
    <form onSubmit={submit} noValidate data-testid="key-form" aria-labelledby="new-key-title">
      <Stack gap="sm">
        <Title order={4} size="h5" id="new-key-title">{t('apiKeys.newTitle')}</Title>
        {create.isError && <ErrorAlert error={create.error} />}
        <TextInput label={t('apiKeys.name')} description={t('apiKeys.nameHelp')} withAsterisk maxLength={200}
          key={form.key('name')} {...form.getInputProps('name')} />
        <Checkbox.Group label={t('apiKeys.scopes')} withAsterisk key={form.key('scopes')}
          {...form.getInputProps('scopes')}>
          <Stack gap={6} mt={6}>
            {allowed.map((scope) => (
              <Checkbox key={scope} value={scope} data-testid={`scope-${scope}`}
                label={t(`apiKeys.scope.${scope}`)} description={t(`apiKeys.scopeHelp.${scope}`)} />
            ))}
          </Stack>
        </Checkbox.Group>
        <NumberInput label={t('apiKeys.days')} description={t('apiKeys.daysHelp')} withAsterisk
          min={1} max={MAX_DAYS} allowDecimal={false} allowNegative={false} clampBehavior="none" maw={240}
          key={form.key('expires_in_days')} {...form.getInputProps('expires_in_days')} />
        <Button type="submit" loading={create.isPending} style={{ alignSelf: 'flex-start' }} data-testid="create-key">
          {t('apiKeys.create')}
        </Button>
      </Stack>
    </form>
  );
}

function KeyList() {
  const { t, i18n } = useTranslation();
  const [page, setPage] = useState(1);
  const [revoking, setRevoking] = useState<ApiKeyOut | null>(null);
  const queryClient = useQueryClient();
  const keys = useUsersListApiKeys(pageParams(page, PAGE));
  const revoke = useUsersRevokeApiKey();
  const doRevoke = () => {
    if (!revoking) return;
    revoke.mutate({ keyId: revoking.key_id }, {
      onSuccess: () => {
        notify('green', t('apiKeys.revoked', { name: revoking.name }));
        setRevoking(null);
        void queryClient.invalidateQueries({ queryKey: getUsersListApiKeysQueryKey().slice(0, 1) });
      },
    });
  };
  return (
    <Stack gap="xs">
      <Title order={4} size="h5">{t('apiKeys.listTitle')}</Title>
      <QueryState query={keys}>
        {(data) => (data.keys.length === 0 ? <Text size="sm" data-testid="no-keys">{t('apiKeys.none')}</Text> : (
          <>
            <ScrollArea type="auto">
              <Table striped miw={820} data-testid="key-list">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('apiKeys.columns.name')}</Table.Th>
                    <Table.Th>{t('apiKeys.columns.scopes')}</Table.Th>
                    <Table.Th>{t('apiKeys.columns.status')}</Table.Th>
                    <Table.Th>{t('apiKeys.columns.created')}</Table.Th>
                    <Table.Th>{t('apiKeys.columns.expires')}</Table.Th>
                    <Table.Th>{t('apiKeys.columns.lastUsed')}</Table.Th>
                    <Table.Th>{t('apiKeys.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.keys.map((key) => (
                    <Table.Tr key={key.key_id} data-testid={`key-${key.name}`}>
                      <Table.Td><Text size="sm" fw={600}>{key.name}</Text><Text size="xs" c="dimmed" ff="monospace">{key.prefix}…</Text></Table.Td>
                      <Table.Td><Group gap={4}>{key.scopes.map((s) => <Badge key={s} size="sm" variant="light">{t(`apiKeys.scope.${s}`)}</Badge>)}</Group></Table.Td>
                      <Table.Td><Badge color={STATUS_COLOR[key.status]} data-testid="key-status">{t(`apiKeys.status.${key.status}`)}</Badge></Table.Td>
                      <Table.Td><Text size="xs">{dateTime(key.created_at, i18n.language)}</Text></Table.Td>
                      <Table.Td><Text size="xs">{dateTime(key.expires_at, i18n.language)}</Text></Table.Td>
                      <Table.Td><Text size="xs">{key.last_used_at ? dateTime(key.last_used_at, i18n.language) : t('apiKeys.never')}</Text></Table.Td>
                      <Table.Td>
                        {key.status === 'active' && (
                          <Button size="compact-xs" color="red" variant="light" data-testid="revoke"
                            aria-label={t('apiKeys.revokeOne', { name: key.name })}
                            onClick={() => { revoke.reset(); setRevoking(key); }}>
                            {t('apiKeys.revoke')}
                          </Button>
                        )}
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            <Pager total={data.total} pageSize={PAGE} page={page} onChange={setPage} />
          </>
        ))}
      </QueryState>
      {revoking && (
        <ConfirmModal title={t('apiKeys.revokeTitle', { name: revoking.name })} text={t('apiKeys.revokeText')}
          confirmLabel={t('apiKeys.revoke')} onConfirm={doRevoke} onClose={() => setRevoking(null)}
          loading={revoke.isPending} error={revoke.error} />
      )}
    </Stack>
  );
}
