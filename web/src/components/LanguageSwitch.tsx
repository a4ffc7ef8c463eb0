import { SegmentedControl } from '@mantine/core';
import { useTranslation } from 'react-i18next';
import { LANGUAGES, setLanguage, type Language } from '../i18n';

export function LanguageSwitch() {
  const { t, i18n } = useTranslation();
  return (
    <SegmentedControl size="xs" aria-label={t('app.language')} data-testid="language"
      value={i18n.language === 'zh' ? 'zh' : 'en'}
      onChange={(value) => setLanguage(value as Language)}
      data={LANGUAGES.map((l) => ({ value: l.value, label: <span lang={l.value === 'zh' ? 'zh-CN' : 'en'}>{l.label}</span> }))} />
  );
}
