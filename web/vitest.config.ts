import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// Component and unit tests (`npm test`, `make web-test`), in jsdom.
export default defineConfig({
  plugins: [react()],
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    css: false,
  },
});
