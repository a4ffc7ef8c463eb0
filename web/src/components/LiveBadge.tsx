import { Badge, Tooltip } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { useLiveStatus } from '../live/status';

/** The live stream's state in the header: green when events arrive live. */
export function LiveBadge() {
  const { t } = useTranslation();
  const status = useLiveStatus();
  if (status === 'off') return null;
  const text = status === 'live' ? t('live.live') : status === 'connecting' ? t('live.connecting') : t('live.reconnecting');
  return (
    <Tooltip label={t('live.status', { state: text })}>
      <Badge color={status === 'live' ? 'green' : 'yellow'} variant="dot" data-testid="live-status"
        data-state={status} aria-label={t('live.status', { state: text })} visibleFrom="xs">
        {status === 'live' ? t('live.live') : '…'}
      </Badge>
    </Tooltip>
  );
}
