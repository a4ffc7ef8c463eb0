import { notifications } from '@mantine/notifications';
import i18n from '../i18n';

/** A notification whose close button says what it does (Mantine leaves it unlabelled). */
export function notify(color: 'green' | 'red' | 'orange', message: string): void {
  notifications.show({ color, message, closeButtonProps: { 'aria-label': i18n.t('app.close') } });
}
