import { Button, Card, Group, ScrollArea, SimpleGrid, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { trafficTrafficStats, useTrafficOverlimitTraffic } from '../../api/generated/berth';
import { Figure } from '../../components/Figure';
import { QueryState } from '../../components/QueryState';
import { bytes } from '../../components/format';
import { addDays, isDate, todayUtc } from '../distributor/generate';

/** The traffic overview: the heaviest users over whole days, and who is over their quota this
 * month. */
export default function Traffic() {
  const { t, i18n } = useTranslation();
  const today = todayUtc();
  const [range, setRange] = useState({ start_date: addDays(today, -6), end_date: today });
  const stats = useQuery({
    queryKey: ['/api/traffic/stats', range.start_date, range.end_date],
    queryFn: ({ signal }) => trafficTrafficStats(range, signal),
  });
  const over = useTrafficOverlimitTraffic();
  const form = useForm({
    mode: 'uncontrolled',
    initialValues: range,
    validate: {
      start_date: (value: string) => (!value ? t('validation.required') : isDate(value) ? null : t('distributor.validation.date')),
      end_date: (value: string, values: typeof range) => (!value ? t('validation.required') : !isDate(value) ? t('distributor.validation.date')
        : value < values.start_date ? t('operator.validation.afterSince') : null),
    },
  });
  const locale = i18n.language;
  return (
    <Stack maw={1200}>
      <Title order={2}>{t('operator.traffic.title')}</Title>
      <Card withBorder>
        <Title order={3} size="h4" mb="sm">{t('operator.traffic.top')}</Title>
        <form noValidate onSubmit={form.onSubmit((values) => setRange(values))} data-testid="traffic-range">
          <Group align="flex-start" wrap="wrap">
            <TextInput type="date" label={t('operator.traffic.from')} key={form.key('start_date')} {...form.getInputProps('start_date')} />
            <TextInput type="date" label={t('operator.traffic.to')} key={form.key('end_date')} {...form.getInputProps('end_date')} />
            <Button type="submit" mt={25} variant="light">{t('operator.traffic.show')}</Button>
          </Group>
        </form>
        <QueryState query={stats}>
          {(data) => (
            <Stack mt="md">
              <SimpleGrid cols={{ base: 1, xs: 3 }}>
                <Figure label={t('operator.traffic.in')} value={bytes(data.total_in, locale)} />
                <Figure label={t('operator.traffic.out')} value={bytes(data.total_out, locale)} />
                <Figure label={t('operator.traffic.users')} value={data.user_count} />
              </SimpleGrid>
              {data.users.length === 0 ? <Text size="sm">{t('operator.traffic.noTraffic')}</Text> : (
                <ScrollArea type="auto">
                  <Table striped miw={520} data-testid="top-users">
                    <Table.Thead>
                      <Table.Tr>
                        <Table.Th>{t('operator.traffic.user')}</Table.Th>
                        <Table.Th>{t('operator.traffic.in')}</Table.Th>
                        <Table.Th>{t('operator.traffic.out')}</Table.Th>
                        <Table.Th>{t('operator.traffic.total')}</Table.Th>
                      </Table.Tr>
                    </Table.Thead>
                    <Table.Tbody>
                      {data.users.map((row) => (
                        <Table.Tr key={row.user_id}>
                          <Table.Td>#{row.user_id}</Table.Td>
                          <Table.Td>{bytes(row.traffic_in, locale)}</Table.Td>
                          <Table.Td>{bytes(row.traffic_out, locale)}</Table.Td>
                          <Table.Td><b>{bytes(row.total, locale)}</b></Table.Td>
                        </Table.Tr>
                      ))}
                    </Table.Tbody>
                  </Table>
                </ScrollArea>
              )}
            </Stack>
          )}
        </QueryState>
      </Card>
      <Card withBorder>
        <QueryState query={over}>
          {(data) => (
            <Stack>
              <Title order={3} size="h4">{t('operator.traffic.overLimit', { month: data.month })}</Title>
              <Text size="sm" c="dimmed">{data.default_limit == null ? t('operator.traffic.noDefault') : t('operator.traffic.defaultLimit', { limit: bytes(data.default_limit, locale) })}</Text>
              {data.overlimit_users.length === 0 ? <Text size="sm" data-testid="none-over">{t('operator.traffic.noneOver')}</Text> : (
                <ScrollArea type="auto">
                  <Table striped miw={520} data-testid="over-limit">
                    <Table.Thead>
                      <Table.Tr>
                        <Table.Th>{t('operator.traffic.user')}</Table.Th>
                        <Table.Th>{t('operator.traffic.total')}</Table.Th>
                        <Table.Th>{t('operator.traffic.limit')}</Table.Th>
                      </Table.Tr>
                    </Table.Thead>
                    <Table.Tbody>
                      {data.overlimit_users.map((row) => (
                        <Table.Tr key={row.user_id}>
                          <Table.Td>#{row.user_id}</Table.Td>
                          <Table.Td>{bytes(row.total, locale)}</Table.Td>
                          <Table.Td>{bytes(row.limit, locale)}</Table.Td>
                        </Table.Tr>
                      ))}
                    </Table.Tbody>
                  </Table>
                </ScrollArea>
              )}
            </Stack>
          )}
        </QueryState>
      </Card>
    </Stack>
  );
}
