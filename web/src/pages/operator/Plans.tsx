import {
  Badge, Button, Card, Checkbox, Group, Modal, MultiSelect, NumberInput, ScrollArea, Select, SimpleGrid, Stack, Switch,
  Table, Text, TextInput, Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import {
  getBillingListImagesQueryKey, getBillingListPlansQueryKey, useBillingAddImage, useBillingCreatePlan,
  useBillingDeleteImage, useBillingListImages, useBillingListPlans, useBillingRetirePlan, useBillingUpdateImage,
  useBillingUpdatePlan,
} from '../../api/generated/berth';
import type { CatalogueImageRow, CreatePlan, PlanRow } from '../../api/generated/model';
import { ConfirmModal } from '../../components/ConfirmModal';
import { ErrorAlert } from '../../components/ErrorText';
import { Pager, pageParams } from '../../components/Pager';
import { QueryState } from '../../components/QueryState';
import { bytes, mebibytes } from '../../components/format';
import { showFieldErrors } from '../../components/forms';
import { notify } from '../../components/notify';
import { bytesToGib, gibToBytes, useInvalidate, wholeNumber } from './common';
import type { TFunction } from 'i18next';

const PAGE = 20;
export const PLAN_NAME = /^[\p{L}\p{N}_][\p{L}\p{N}_ .+-]*$/u;
export const IMAGE_REFERENCE = /^[a-z0-9]+([._/:-][a-z0-9]+)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

export default function Plans() {
  const { t } = useTranslation();
  return (
    <Stack maw={1300}>
      <Title order={2}>{t('operator.plans.title')}</Title>
      <PlanList />
      <ImageList />
    </Stack>
  );
}

function PlanList() {
  const { t, i18n } = useTranslation();
  const [page, setPage] = useState(1);
  const [retired, setRetired] = useState(false);
  const [editing, setEditing] = useState<PlanRow | 'new' | null>(null);
  const [retiring, setRetiring] = useState<PlanRow | null>(null);
  const plans = useBillingListPlans({ ...pageParams(page, PAGE), include_retired: retired });
  return (
    <Card withBorder>
      <Group justify="space-between" wrap="wrap" mb="sm">
        <Title order={3} size="h4">{t('operator.plans.plans')}</Title>
        <Group>
          <Switch label={t('operator.plans.showRetired')} checked={retired} onChange={(event) => { setRetired(event.currentTarget.checked); setPage(1); }} />
          <Button onClick={() => setEditing('new')} data-testid="new-plan">{t('operator.plans.create')}</Button>
        </Group>
      </Group>
      <QueryState query={plans}>
        {(data) => data.plans.length === 0 ? <Text size="sm">{t('operator.plans.empty')}</Text> : (
          <>
            <ScrollArea type="auto">
              <Table striped miw={1000} data-testid="plans">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('operator.plans.columns.name')}</Table.Th>
                    <Table.Th>{t('operator.plans.columns.resources')}</Table.Th>
                    <Table.Th>{t('operator.plans.columns.containers')}</Table.Th>
                    <Table.Th>{t('operator.plans.columns.traffic')}</Table.Th>
                    <Table.Th>{t('operator.plans.columns.images')}</Table.Th>
                    <Table.Th>{t('operator.plans.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.plans.map((plan) => (
                    <Table.Tr key={plan.plan_id} data-testid={`plan-${plan.name}`}>
                      <Table.Td>
                        <Text fw={600} size="sm">{plan.name}</Text>
                        <Group gap={4}>
                          {plan.is_default && <Badge size="xs">{t('distributor.default')}</Badge>}
                          {plan.retired && <Badge size="xs" color="gray">{t('operator.plans.retired')}</Badge>}
                        </Group>
                      </Table.Td>
                      <Table.Td><Text size="xs">{t('operator.plans.resources', { cpus: plan.cpus, memory: mebibytes(plan.memory_mib, i18n.language), pids: plan.pids_limit })}</Text></Table.Td>
                      <Table.Td><Text size="xs">{t('operator.plans.containerLimits', { containers: plan.max_containers, ports: plan.max_ports })}</Text></Table.Td>
                      <Table.Td><Text size="xs">{plan.traffic_quota_bytes == null ? t('operator.users.defaultLimit') : bytes(plan.traffic_quota_bytes, i18n.language)} · {t(`operator.plans.action.${plan.quota_action}`)}</Text></Table.Td>
                      <Table.Td><Text size="xs">{plan.images.map((image) => image.display_name).join(', ') || '—'}</Text></Table.Td>
                      <Table.Td>
                        <Group gap={4} wrap="nowrap" role="group" aria-label={t('operator.plans.actionsFor', { name: plan.name })}>
                          <Button size="compact-xs" variant="light" onClick={() => setEditing(plan)}>{t('operator.common.edit')}</Button>
                          {!plan.retired && (
                            <Button size="compact-xs" variant="light" color="red" onClick={() => setRetiring(plan)}>{t('operator.plans.retire')}</Button>
                          )}
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            <Pager total={data.total} pageSize={PAGE} page={page} onChange={setPage} />
          </>
        )}
      </QueryState>
      {editing && <PlanModal plan={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />}
      {retiring && <RetirePlan plan={retiring} onClose={() => setRetiring(null)} />}
    </Card>
  );
}

function RetirePlan({ plan, onClose }: { plan: PlanRow; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const retire = useBillingRetirePlan({
    mutation: { onSuccess: (reply) => { notify('green', reply.message); invalidate(getBillingListPlansQueryKey()); onClose(); } },
  });
  return (
    <ConfirmModal title={t('operator.plans.confirmRetire', { name: plan.name })} text={t('operator.plans.retireText')}
      confirmLabel={t('operator.plans.retire')} onConfirm={() => retire.mutate({ planId: plan.plan_id })} onClose={onClose}
      loading={retire.isPending} error={retire.error} />
  );
}

interface PlanValues {
  name: string;
  cpus: number | string;
  memory_mib: number | string;
  pids_limit: number | string;
  max_containers: number | string;
  max_ports: number | string;
  log_max_mib: number | string;
  traffic_quota_gib: number | string;
  quota_action: string;
  customer_ports: boolean;
  is_default: boolean;
  image_ids: string[];
}

/** The plan form's checks, mirroring CreatePlan (exported for the component tests). */
export function validatePlan(values: PlanValues, t: TFunction) {
  const errors: Partial<Record<keyof PlanValues, string>> = {};
  const name = values.name.trim();
  if (!name) errors.name = t('validation.required');
  else if (name.length > 64 || !PLAN_NAME.test(name)) errors.name = t('operator.validation.planName');
  const cpus = Number(values.cpus);
  if (values.cpus === '' || !(cpus >= 0.01 && cpus <= 256)) errors.cpus = t('operator.validation.cpus');
  const checks: [keyof PlanValues, number, number][] = [
    ['memory_mib', 6, 1_048_576], ['pids_limit', 8, 4_194_304], ['max_containers', 1, 1000], ['max_ports', 0, 64], ['log_max_mib', 1, 10_240],
  ];
  for (const [field, min, max] of checks) {
    const error = wholeNumber(t, min, max)(values[field]);
    if (error) errors[field] = error;
  }
  if (values.traffic_quota_gib !== '' && !(Number(values.traffic_quota_gib) >= 0)) errors.traffic_quota_gib = t('operator.validation.gib');
  return errors;
}

function PlanModal({ plan, onClose }: { plan: PlanRow | null; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const images = useBillingListImages({ limit: 200 });
  const create = useBillingCreatePlan();
  const update = useBillingUpdatePlan();
  const mutation = plan ? update : create;
  const form = useForm<PlanValues>({
    mode: 'uncontrolled',
    initialValues: plan ? {
      name: plan.name, cpus: plan.cpus, memory_mib: plan.memory_mib, pids_limit: plan.pids_limit,
      max_containers: plan.max_containers, max_ports: plan.max_ports, log_max_mib: plan.log_max_mib,
      traffic_quota_gib: bytesToGib(plan.traffic_quota_bytes), quota_action: plan.quota_action,
      customer_ports: plan.customer_ports, is_default: plan.is_default, image_ids: plan.image_ids.map(String),
    } : {
      name: '', cpus: 1, memory_mib: 512, pids_limit: 256, max_containers: 3, max_ports: 2, log_max_mib: 10,
      traffic_quota_gib: '', quota_action: 'alert', customer_ports: false, is_default: false, image_ids: [],
    },
    validate: (values) => validatePlan(values, t),
  });
  const submit = form.onSubmit((values) => {
    const body: CreatePlan = {
      name: values.name.trim(), cpus: Number(values.cpus), memory_mib: Number(values.memory_mib),
      pids_limit: Number(values.pids_limit), max_containers: Number(values.max_containers),
      max_ports: Number(values.max_ports), log_max_mib: Number(values.log_max_mib),
      traffic_quota_bytes: gibToBytes(values.traffic_quota_gib), quota_action: values.quota_action as CreatePlan['quota_action'],
      customer_ports: values.customer_ports, image_ids: values.image_ids.map(Number),
      // an update sends is_default only to move the default here (false is refused: move it elsewhere instead)
      ...(plan && !values.is_default ? {} : { is_default: values.is_default }),
    };
    const options = {
      onSuccess: (reply: { message: string }) => {
        notify('green', reply.message);
        invalidate(getBillingListPlansQueryKey());
        onClose();
      },
      onError: (error: unknown) => showFieldErrors(form, error),
    };
    if (plan) update.mutate({ planId: plan.plan_id, data: body }, options);
    else create.mutate({ data: body }, options);
  });
  return (
    <Modal opened onClose={onClose} size="xl" title={plan ? t('operator.plans.editTitle', { name: plan.name }) : t('operator.plans.createTitle')}
      closeButtonProps={{ 'aria-label': t('app.close') }}>
      <form onSubmit={submit} noValidate data-testid="plan-form">
        <Stack>
          {mutation.isError && <ErrorAlert error={mutation.error} />}
          <TextInput label={t('operator.plans.name')} withAsterisk data-autofocus autoComplete="off" key={form.key('name')} {...form.getInputProps('name')} />
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            <NumberInput label={t('operator.plans.cpus')} withAsterisk min={0.01} max={256} decimalScale={2} key={form.key('cpus')} {...form.getInputProps('cpus')} />
            <NumberInput label={t('operator.plans.memory')} withAsterisk min={6} allowDecimal={false} key={form.key('memory_mib')} {...form.getInputProps('memory_mib')} />
            <NumberInput label={t('operator.plans.pids')} withAsterisk min={8} allowDecimal={false} key={form.key('pids_limit')} {...form.getInputProps('pids_limit')} />
            <NumberInput label={t('operator.plans.maxContainers')} withAsterisk min={1} max={1000} allowDecimal={false} key={form.key('max_containers')} {...form.getInputProps('max_containers')} />
            <NumberInput label={t('operator.plans.maxPorts')} withAsterisk min={0} max={64} allowDecimal={false} key={form.key('max_ports')} {...form.getInputProps('max_ports')} />
            <NumberInput label={t('operator.plans.logs')} withAsterisk min={1} max={10240} allowDecimal={false} key={form.key('log_max_mib')} {...form.getInputProps('log_max_mib')} />
            <NumberInput label={t('operator.plans.quota')} description={t('operator.plans.quotaHelp')} min={0} decimalScale={3} key={form.key('traffic_quota_gib')} {...form.getInputProps('traffic_quota_gib')} />
            <Select label={t('operator.plans.quotaAction')} allowDeselect={false}
              data={[{ value: 'alert', label: t('operator.plans.action.alert') }, { value: 'suspend', label: t('operator.plans.action.suspend') }]}
              key={form.key('quota_action')} {...form.getInputProps('quota_action')} />
          </SimpleGrid>
          <MultiSelect label={t('operator.plans.images')} searchable
            data={(images.data?.images ?? []).map((image) => ({ value: String(image.image_id), label: `${image.display_name} (${image.reference})` }))}
            key={form.key('image_ids')} {...form.getInputProps('image_ids')} />
          <Group>
            <Checkbox label={t('operator.plans.customerPorts')} key={form.key('customer_ports')} {...form.getInputProps('customer_ports', { type: 'checkbox' })} />
            <Checkbox label={t('operator.plans.isDefault')} disabled={plan?.is_default} key={form.key('is_default')} {...form.getInputProps('is_default', { type: 'checkbox' })} />
          </Group>
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>{t('operator.common.cancel')}</Button>
            <Button type="submit" loading={mutation.isPending} data-testid="plan-save">{t('operator.common.save')}</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function ImageList() {
  const { t } = useTranslation();
  const [page, setPage] = useState(1);
  const [editing, setEditing] = useState<CatalogueImageRow | 'new' | null>(null);
  const [removing, setRemoving] = useState<CatalogueImageRow | null>(null);
  const images = useBillingListImages(pageParams(page, PAGE));
  return (
    <Card withBorder>
      <Group justify="space-between" wrap="wrap" mb="sm">
        <Title order={3} size="h4">{t('operator.plans.catalogue')}</Title>
        <Button variant="light" onClick={() => setEditing('new')} data-testid="new-image">{t('operator.plans.addImage')}</Button>
      </Group>
      <QueryState query={images}>
        {(data) => data.images.length === 0 ? <Text size="sm">{t('operator.plans.noImages')}</Text> : (
          <>
            <ScrollArea type="auto">
              <Table striped miw={700} data-testid="images">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('operator.plans.displayName')}</Table.Th>
                    <Table.Th>{t('operator.plans.reference')}</Table.Th>
                    <Table.Th>{t('operator.plans.command')}</Table.Th>
                    <Table.Th>{t('operator.plans.port')}</Table.Th>
                    <Table.Th>{t('operator.plans.columns.actions')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {data.images.map((image) => (
                    <Table.Tr key={image.image_id}>
                      <Table.Td>{image.display_name}</Table.Td>
                      <Table.Td><Text ff="monospace" size="xs">{image.reference}</Text></Table.Td>
                      <Table.Td><Text ff="monospace" size="xs">{image.default_command ?? '—'}</Text></Table.Td>
                      <Table.Td>{image.container_port ?? '—'}</Table.Td>
                      <Table.Td>
                        <Group gap={4} wrap="nowrap" role="group" aria-label={t('operator.plans.actionsFor', { name: image.display_name })}>
                          <Button size="compact-xs" variant="light" onClick={() => setEditing(image)}>{t('operator.common.edit')}</Button>
                          <Button size="compact-xs" variant="light" color="red" onClick={() => setRemoving(image)}>{t('operator.plans.removeImage')}</Button>
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </ScrollArea>
            <Pager total={data.total} pageSize={PAGE} page={page} onChange={setPage} />
          </>
        )}
      </QueryState>
      {editing && <ImageModal image={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />}
      {removing && <RemoveImage image={removing} onClose={() => setRemoving(null)} />}
    </Card>
  );
}

function RemoveImage({ image, onClose }: { image: CatalogueImageRow; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const remove = useBillingDeleteImage({
    mutation: {
      onSuccess: () => {
        notify('green', t('operator.plans.imageRemoved', { name: image.display_name }));
        invalidate(getBillingListImagesQueryKey(), getBillingListPlansQueryKey());
        onClose();
      },
    },
  });
  return (
    <ConfirmModal title={t('operator.plans.confirmRemoveImage', { name: image.display_name })} text={t('operator.plans.removeImageText')}
      confirmLabel={t('operator.plans.removeImage')} onConfirm={() => remove.mutate({ imageId: image.image_id })} onClose={onClose}
      loading={remove.isPending} error={remove.error} />
  );
}

function ImageModal({ image, onClose }: { image: CatalogueImageRow | null; onClose: () => void }) {
  const { t } = useTranslation();
  const invalidate = useInvalidate();
  const add = useBillingAddImage();
  const update = useBillingUpdateImage();
  const mutation = image ? update : add;
  const form = useForm<{ reference: string; display_name: string; default_command: string; container_port: number | string }>({
    mode: 'uncontrolled',
    initialValues: {
      reference: image?.reference ?? '', display_name: image?.display_name ?? '',
      default_command: image?.default_command ?? '', container_port: image?.container_port ?? '',
    },
    validate: {
      reference: (value) => (!value.trim() ? t('validation.required') : IMAGE_REFERENCE.test(value.trim()) && value.length <= 255 ? null : t('operator.validation.reference')),
      display_name: (value) => (!value.trim() ? t('validation.required') : value.length > 64 ? t('validation.tooLong', { max: 64 }) : null),
      default_command: (value) => (value.length > 1024 ? t('validation.tooLong', { max: 1024 }) : null),
      container_port: wholeNumber(t, 1, 65535, true),
    },
  });
  const submit = form.onSubmit((values) => {
    const data = {
      reference: values.reference.trim(), display_name: values.display_name.trim(),
      default_command: values.default_command.trim() || null,
      container_port: values.container_port === '' ? null : Number(values.container_port),
    };
    const options = {
      onSuccess: (reply: { message: string }) => {
        notify('green', reply.message);
        invalidate(getBillingListImagesQueryKey(), getBillingListPlansQueryKey());
        onClose();
      },
      onError: (error: unknown) => showFieldErrors(form, error),
    };
    if (image) update.mutate({ imageId: image.image_id, data }, options);
    else add.mutate({ data }, options);
  });
  return (
    <Modal opened onClose={onClose} title={image ? t('operator.plans.editImage', { name: image.display_name }) : t('operator.plans.addImage')}
      closeButtonProps={{ 'aria-label': t('app.close') }}>
      <form onSubmit={submit} noValidate data-testid="image-form">
        <Stack>
          {mutation.isError && <ErrorAlert error={mutation.error} />}
          <TextInput label={t('operator.plans.reference')} description={t('operator.plans.referenceHelp')} withAsterisk data-autofocus autoComplete="off"
            key={form.key('reference')} {...form.getInputProps('reference')} />
          <TextInput label={t('operator.plans.displayName')} withAsterisk autoComplete="off" key={form.key('display_name')} {...form.getInputProps('display_name')} />
          <TextInput label={t('operator.plans.command')} autoComplete="off" key={form.key('default_command')} {...form.getInputProps('default_command')} />
          <NumberInput label={t('operator.plans.port')} min={1} max={65535} allowDecimal={false} key={form.key('container_port')} {...form.getInputProps('container_port')} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>{t('operator.common.cancel')}</Button>
            <Button type="submit" loading={mutation.isPending}>{t('operator.common.save')}</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
