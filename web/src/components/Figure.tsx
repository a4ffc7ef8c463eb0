import { Text } from '@mantine/core';

/** A labelled number on a card (a count, an amount of bytes). */
export function Figure({ label, value, testId }: { label: string; value: number | string; testId?: string }) {
  return (
    <div data-testid={testId}>
      <Text size="xs" c="dimmed">{label}</Text>
      <Text size="xl" fw={700}>{value}</Text>
    </div>
  );
}
