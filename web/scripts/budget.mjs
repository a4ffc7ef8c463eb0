// The JavaScript budget (issue 17): what a customer's browser loads before the first screen,
// gzipped, must stay within 250 KB; the rest is split by route. Run after `vite build` (npm run
// build does); prints the figures and fails the build past the budget.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET_KB = 250;
const manifest = JSON.parse(readFileSync('dist/.vite/manifest.json', 'utf8'));

function closure(key, seen = new Set()) {
  if (seen.has(key)) return seen;
  seen.add(key);
  for (const next of manifest[key].imports ?? []) closure(next, seen);
  return seen;
}

const kb = (files) => [...files].reduce(
  (sum, key) => sum + gzipSync(readFileSync(`dist/${manifest[key].file}`)).length, 0) / 1024;

const [entry] = Object.keys(manifest).filter((key) => manifest[key].isEntry);
const initial = closure(entry);
const routes = Object.keys(manifest).filter((key) => key.startsWith('src/pages/') && !key.includes('.test.'));
console.log(`initial JavaScript: ${kb(initial).toFixed(1)} KB gzipped (budget ${BUDGET_KB} KB)`);
for (const route of routes.sort()) {
  const extra = new Set([...closure(route)].filter((key) => !initial.has(key)));
  console.log(`  + ${route.replace('src/pages/', '').replace('.tsx', '')}: ${kb(extra).toFixed(1)} KB`);
}
if (kb(initial) > BUDGET_KB) {
  console.error(`over budget: the initial JavaScript is ${kb(initial).toFixed(1)} KB gzipped`);
  process.exit(1);
}
