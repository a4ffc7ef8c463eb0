import { Button, Group, Modal, Stack, Text } from '@mantine/core';
import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { ErrorAlert } from './ErrorText';

/** "Are you sure?" before a destructive or fleet-wide action: Cancel has the focus, the action
 * runs only on the confirm button, and the API's refusal shows in the dialog. */
export function ConfirmModal({ title, text, confirmLabel, onConfirm, onClose, loading, error, color = 'red', children }: {
  title: string;
  text: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  onClose: () => void;
  loading?: boolean;
  error?: unknown;
  color?: string;
  children?: ReactNode;
}) {
  const { t } = useTranslation();
  return (
    <Modal opened onClose={onClose} title={title} closeButtonProps={{ 'aria-label': t('app.close') }}>
      <Stack data-testid="confirm-dialog">
        <Text size="sm">{text}</Text>
        {children}
        {error ? <ErrorAlert error={error} /> : null}
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose} data-autofocus>{t('operator.common.cancel')}</Button>
          <Button color={color} onClick={onConfirm} loading={loading} data-testid="confirm">{confirmLabel}</Button>
        </Group>
      </Stack>
    </Modal>
  );
}
