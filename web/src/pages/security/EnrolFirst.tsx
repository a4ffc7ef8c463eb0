import { Alert, Button, Stack, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate } from 'react-router-dom';
import { usersLogout } from '../../api/generated/berth';
import type { TwoFactorConfirmed } from '../../api/generated/model';
import { useSession } from '../../auth/AuthContext';
import { signIn, signOut } from '../../auth/token';
import { PublicFrame } from '../../components/PublicFrame';
import { RecoveryCodes } from './RecoveryCodes';
import { TwoFactorSetup } from './TwoFactorSetup';

/** What an admin signed in without two-factor sign-in sees while BERTH_REQUIRE_2FA_FOR_ADMINS
 * is on: their token reaches only the /api/2fa routes and logout, so this page is the whole
 * console until they confirm; the confirmation's fresh (full) token opens the rest once they
 * have seen their recovery codes. */
export default function EnrolFirst() {
  const { t } = useTranslation();
  const session = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [confirmed, setConfirmed] = useState<TwoFactorConfirmed | null>(null);

  const leave = async () => {
    try {
      await usersLogout();
    } catch {
      /* already ended, or Berth unreachable: this tab forgets the token anyway */
    }
    signOut();
    queryClient.clear();
    navigate('/login');
  };
  const carryOn = () => {
    if (confirmed?.token) signIn(confirmed.token); // the full token: the console opens
  };

  return (
    <PublicFrame title={t('twoFactor.requiredTitle')}>
      <Stack data-testid="enrol-first">
        <Text size="sm" data-testid="who">
          {t('app.signedInAs', { username: session?.username ?? '', role: t(`roles.${session?.role ?? 'user'}`) })}
        </Text>
        {confirmed ? (
          <>
            <Alert color="green" role="status">{t('twoFactor.requiredDone')}</Alert>
            <RecoveryCodes codes={confirmed.recovery_codes} onDone={carryOn} />
          </>
        ) : (
          <>
            <Alert color="orange">{t('twoFactor.requiredHelp')}</Alert>
            <TwoFactorSetup onConfirmed={setConfirmed} />
          </>
        )}
        {!confirmed && ( // (after confirming, the token this tab held has ended: carry on instead)
          <Button variant="default" size="xs" onClick={leave} style={{ alignSelf: 'flex-start' }} data-testid="sign-out">
            {t('app.signOut')}
          </Button>
        )}
      </Stack>
    </PublicFrame>
  );
}
