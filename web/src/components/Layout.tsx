import { AppShell, Burger, Button, Group, NavLink, ScrollArea, Text, Title } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { Suspense } from 'react';
import { useTranslation } from 'react-i18next';
import { NavLink as RouterLink, Outlet, useNavigate } from 'react-router-dom';
import { useQueryClient } from '@tanstack/react-query';
import { useSession } from '../auth/AuthContext';
import { usersLogout } from '../api/generated/berth';
import { signOut } from '../auth/token';
import { LanguageSwitch } from './LanguageSwitch';
import { Loading } from './Loading';
import { LiveBadge } from './LiveBadge';
import { useLiveEvents } from '../live/useLiveEvents';

export function Layout() {
  const { t } = useTranslation();
  const session = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [opened, { toggle, close }] = useDisclosure(false);
  useLiveEvents(); // the live stream of this tab (refreshes queries, feeds traffic charts)

  const links = [
    { to: '/', label: t('nav.home'), end: true },
    { to: '/containers', label: t('nav.containers') },
    { to: '/traffic', label: t('nav.traffic') },
    { to: '/account', label: t('nav.account') },
    ...(session?.role === 'distributor' || session?.role === 'admin'
      ? [{ to: '/distributor', label: t('nav.distributor') }] : []),
  ];
  // the operator area's screens (pages/operator), listed under their own heading
  const operatorLinks = session?.role === 'admin' ? [
    { to: '/operator', label: t('operator.nav.dashboard'), end: true },
    { to: '/operator/servers', label: t('operator.nav.servers') },
    { to: '/operator/containers', label: t('operator.nav.containers') },
    { to: '/operator/users', label: t('operator.nav.users') },
    { to: '/operator/plans', label: t('operator.nav.plans') },
    { to: '/operator/serials', label: t('operator.nav.serials') },
    { to: '/operator/rentals', label: t('operator.nav.rentals') },
    { to: '/operator/alerts', label: t('operator.nav.alerts') },
    { to: '/operator/audit', label: t('operator.nav.audit') },
    { to: '/operator/traffic', label: t('operator.nav.traffic') },
  ] : [];

  const logout = async () => {
    try {
      await usersLogout(); // the session ends at the gateway too, not only in this tab
    } catch {
      /* already ended, or Berth unreachable: this tab forgets the token anyway */
    }
    signOut();
    queryClient.clear();
    navigate('/login');
  };

  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding="md">
      <a href="#main" className="skip-link">{t('app.skip')}</a>
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label={t('app.menu')} />
            <Title order={1} size="h3">{t('app.name')}</Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <LiveBadge />
            <LanguageSwitch />
            {session && (
              <Button variant="default" size="xs" onClick={logout} data-testid="sign-out">
                {t('app.signOut')}
              </Button>
            )}
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="sm" aria-label={t('app.name')}>
        {session && (
          <Text size="xs" c="dimmed" mb="sm" data-testid="who">
            {t('app.signedInAs', { username: session.username, role: t(`roles.${session.role}`) })}
          </Text>
        )}
        <AppShell.Section grow component={ScrollArea} type="auto">
          <nav>
            {links.map((link) => (
              <NavLink key={link.to} component={RouterLink} to={link.to} end={link.end}
                label={link.label} onClick={close} />
            ))}
            {operatorLinks.length > 0 && (
              <>
                <Text size="xs" fw={700} c="dimmed" tt="uppercase" mt="md" mb={4} px="sm" id="nav-operator">{t('nav.operator')}</Text>
                <div role="group" aria-labelledby="nav-operator">
                  {operatorLinks.map((link) => (
                    <NavLink key={link.to} component={RouterLink} to={link.to} end={link.end}
                      label={link.label} onClick={close} />
                  ))}
                </div>
              </>
            )}
          </nav>
        </AppShell.Section>
      </AppShell.Navbar>
      <AppShell.Main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading />}>
          <Outlet />
        </Suspense>
      </AppShell.Main>
    </AppShell>
  );
}
