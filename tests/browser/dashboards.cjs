// The dashboards in a real browser: headless Debian Chromium driven by playwright-core, run by
// the e2e test `browser_dashboards` (tests/it/dashboard.rs), which starts the servers and passes
// WATCHER_URL, PIPELINES_URL, PIPELINES_TOKEN, FAILED_BATCH, SHOTS, PLAYWRIGHT_CORE and CHROMIUM.
//
// Watcher page: a source and a batch show; "Run now" double-clicked starts one run, which reaches
// succeeded; "Redeliver" on the failed batch, which then succeeds; screenshot. Runner page: log in
// with the token, start the demo chain, open the run, see its stages succeed; screenshot.
"use strict";

const path = require("path");
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const WATCHER = env("WATCHER_URL");
const PIPELINES = env("PIPELINES_URL");
const TOKEN = env("PIPELINES_TOKEN");
const BATCH = env("FAILED_BATCH");
const SHOTS = env("SHOTS");
const PATIENCE = 90_000;

const step = (text) => console.log(`browser: ${text}`);

async function watcherPage(page) {
  await page.goto(`${WATCHER}/`);
  await page.locator("#sources tr[data-source]", { hasText: "Liz Marley" }).waitFor();
  const batch = page.locator(`tr[data-batch="${BATCH}"]`);
  await batch.waitFor();
  step("the watcher page shows a source and the failed batch");

  const runNow = page.locator("#run-form button[type=submit]");
  await runNow.dblclick();
  const manual = page.locator("#manual tr[data-run]");
  await manual.first().waitFor({ timeout: PATIENCE });
  await page
    .locator("#manual tr[data-run] .run-state .badge.ok", { hasText: "succeeded" })
    .first()
    .waitFor({ timeout: PATIENCE });
  const rows = await manual.count();
  if (rows !== 1) throw new Error(`a double click on "Run now" listed ${rows} runs`);
  step("Run now, double-clicked: one run, succeeded");

  await batch.locator("button", { hasText: /^Redeliver$/ }).click();
  await page.locator("#flash.ok").waitFor();
  await page
    .locator(`tr[data-batch="${BATCH}"] .run-state .badge.ok`, { hasText: "succeeded" })
    .waitFor({ timeout: PATIENCE });
  step("Redeliver: the failed batch ran again and succeeded");
  await page.locator("#manual details.stages").first().evaluate((d) => (d.open = true));
  await page.screenshot({ path: path.join(SHOTS, "dashboard-watcher.png"), fullPage: true });
  return rows;
}

async function runnerPage(page) {
  await page.goto(`${PIPELINES}/`);
  await page.fill('input[name="token"]', TOKEN);
  await page.click('button[type="submit"]');
  await page.locator("#start-form").waitFor();
  step("logged in to the runner page");
  await page.selectOption('select[name="chain"]', "demo");
  await page.click("#start-form button[type=submit]");
  const link = page.locator("#runs tr[data-run] a").first();
  await link.waitFor({ timeout: PATIENCE });
  await link.click();
  await page.locator("#run h2 .badge.ok", { hasText: "succeeded" }).waitFor({ timeout: PATIENCE });
  await page.locator("#run", { hasText: "5/5 stages done" }).waitFor({ timeout: PATIENCE });
  step("the demo chain started from the runner page succeeded");
  await page.screenshot({ path: path.join(SHOTS, "dashboard-pipelines.png"), fullPage: true });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on("dialog", (dialog) => dialog.accept());
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    const rows = await watcherPage(page);
    await runnerPage(page);
    if (errors.length) throw new Error(`the pages logged errors: ${errors.join("; ")}`);
    console.log(JSON.stringify({ manual_runs: rows }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
