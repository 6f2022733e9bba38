// The tach-ls extension in a real VS Code (code-server) driven through headless Chromium.
//
//   node e2e.mjs CONFIG.json
//
// CONFIG: {"url", "folder", "artifacts", "toolsDir", "chromium", "coverage": bool, "report",
//          "scenario": "main" | "debug" | "not-installed"}.
// Each step waits for what it needs (bounded), records what it saw into the report
// (JSON, written even when a step fails) and keeps a screenshot in `artifacts`;
// tests/e2e/test_vscode.py asserts on the report. Nothing here sleeps to wait.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { chromium } = createRequire(join(config.toolsDir, 'package.json'))('playwright-core');

const WAIT = 60_000;
const report = { steps: {}, screenshots: [], console: [] };
const save = () => writeFileSync(config.report, JSON.stringify(report, null, 1));

const browser = await chromium.launch({
  executablePath: config.chromium,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.setDefaultTimeout(WAIT);
page.on('console', (m) => {
  if (m.type() === 'error' && report.console.length < 50) {
    report.console.push(m.text().slice(0, 300));
  }
});

async function shot(name) {
  const path = join(config.artifacts, name);
  await page.screenshot({ path });
  report.screenshots.push(name);
}

async function step(name, fn) {
  const started = Date.now();
  try {
    report.steps[name] = { ...(await fn()), ms: Date.now() - started };
  } catch (error) {
    report.steps[name] = { error: String(error?.stack ?? error), ms: Date.now() - started };
    await shot(`error-${name}.png`).catch(() => undefined);
    throw error;
  } finally {
    save();
  }
}

// -- helpers on the workbench ---------------------------------------------------------------------

async function quickOpen(name) {
  await page.keyboard.press('Control+P');
  await page.waitForSelector('.quick-input-widget input');
  await page.keyboard.type(name);
  // Wait for the result row before Enter, or the file may silently not open.
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${name}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`.tab.active[aria-label*="${name}"]`);
}

async function command(title) {
  await page.keyboard.press('F1');
  await page.waitForSelector('.quick-input-widget input');
  await page.keyboard.type(title);
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${title}"]`);
  await page.keyboard.press('Enter');
}

/** Per 1-based line of the visible editor: its glyph-margin icon classes and its inline test messages. */
function editorLines() {
  return page.evaluate(() => {
    const editor = document.querySelector('.editor-group-container.active .monaco-editor') ?? document.querySelector('.monaco-editor');
    const byTop = new Map();
    for (const num of editor.querySelectorAll('.margin-view-overlays .line-numbers')) {
      byTop.set(num.parentElement.style.top, Number(num.textContent.trim()));
    }
    const lines = {};
    const at = (top) => {
      const line = byTop.get(top);
      if (line === undefined) return undefined;
      lines[line] ??= { glyphs: [], messages: [], coverage: [] };
      return lines[line];
    };
    for (const glyph of editor.querySelectorAll('.glyph-margin-widgets .cgmr')) {
      const icon = [...glyph.classList].find((c) => c.startsWith('codicon-testing-'));
      if (icon) at(glyph.style.top)?.glyphs.push(icon.replace('codicon-testing-', '').replace('-icon', ''));
      for (const debug of [...glyph.classList].filter((c) => c.startsWith('codicon-debug-'))) {
        at(glyph.style.top)?.glyphs.push(debug.replace('codicon-', ''));
      }
    }
    // A failure's message is a content widget placed at its line (e.g. `3 != 4`).
    for (const widget of editor.querySelectorAll('.contentWidgets .test-error-content-widget')) {
      at(widget.style.top)?.messages.push((widget.textContent ?? '').trim());
    }
    for (const num of editor.querySelectorAll('.margin-view-overlays .coverage-deco-gutter')) {
      const kind = num.classList.contains('coverage-deco-hit') ? 'hit' : num.classList.contains('coverage-deco-miss') ? 'miss' : 'other';
      at(num.parentElement.style.top)?.coverage.push(kind);
    }
    return lines;
  });
}

/** Wait until a 1-based line of the active editor shows `want`: {glyph}, {glyphLike: regexp source}, {failedMessage} or {coverage}. */
async function waitForLine(line, want, what) {
  await page
    .waitForFunction(
      ([line, want]) => {
        const editor = document.querySelector('.editor-group-container.active .monaco-editor');
        const num = editor && [...editor.querySelectorAll('.margin-view-overlays .line-numbers')].find((n) => n.textContent.trim() === String(line));
        if (!num) return false;
        const top = num.parentElement.style.top;
        if (want.glyph) {
          return [...editor.querySelectorAll('.glyph-margin-widgets .cgmr')].some((g) => g.style.top === top && g.classList.contains(want.glyph));
        }
        if (want.glyphLike) {
          const like = new RegExp(want.glyphLike);
          return [...editor.querySelectorAll('.glyph-margin-widgets .cgmr')].some((g) => g.style.top === top && [...g.classList].some((c) => like.test(c)));
        }
        if (want.failedMessage) {
          return [...editor.querySelectorAll('.contentWidgets .test-error-content-widget')].some((w) => w.style.top === top);
        }
        return num.classList.contains('coverage-deco-gutter');
      },
      [line, want],
      { timeout: WAIT, polling: 100 },
    )
    .catch((error) => {
      throw new Error(`line ${line} never showed ${what}: ${error.message}`);
    });
}

async function clickGlyph(line) {
  const handle = await page.evaluateHandle((line) => {
    const editor = document.querySelector('.editor-group-container.active .monaco-editor');
    const num = [...editor.querySelectorAll('.margin-view-overlays .line-numbers')].find((n) => n.textContent.trim() === String(line));
    return [...editor.querySelectorAll('.glyph-margin-widgets .cgmr')].find((g) => g.style.top === num?.parentElement.style.top) ?? null;
  }, line);
  const glyph = handle.asElement();
  if (!glyph) throw new Error(`no gutter icon on line ${line}`);
  await glyph.click();
}

/**
 * Click one of the Test Explorer's title actions. They show on hover: on the view's own header when
 * the Testing container has two views (Test Coverage appears after a run with coverage), else on the
 * container's title bar, where VS Code moves a lone view's actions (its header is hidden then).
 */
async function testingAction(label) {
  const header = page.locator('.pane-header:has-text("Test Explorer")');
  await ((await header.isVisible()) ? header : page.locator('.part.sidebar .composite.title')).hover();
  await page.click(`a[aria-label="${label}"]`);
}

async function explorerRows() {
  return page.$$eval('.test-explorer .monaco-list-row', (rows) =>
    rows.map((r) => ({ label: r.getAttribute('aria-label') ?? '', level: Number(r.getAttribute('aria-level')) })),
  );
}

// -- the scenario --------------------------------------------------------------------------------------

async function notInstalled() {
  await step('not_installed', async () => {
    await page.goto(`${config.url}?folder=${encodeURIComponent(config.folder)}`);
    await page.waitForSelector('.monaco-workbench');
    const toast = page.locator('.notification-toast', { hasText: 'tach-ls could not start' });
    await toast.waitFor();
    await page.waitForSelector('.statusbar-item[aria-label*="did not start"]');
    await shot('05-server-not-installed.png');
    return {
      message: await toast.locator('.notification-list-item-message').textContent(),
      actions: await toast.locator('.monaco-button').allTextContents(),
      toasts: await page.locator('.notification-toast .notification-list-item-message').allTextContents(),
      status: await page.getAttribute('.statusbar-item[aria-label*="did not start"]', 'aria-label'),
    };
  });
}

async function open() {
  await step('open', async () => {
    await page.goto(`${config.url}?folder=${encodeURIComponent(config.folder)}`);
    await page.waitForSelector('.monaco-workbench');
    // The status bar item says the server is up and the warm engine ready.
    const item = page.locator('.statusbar-item[aria-label*="tach-ls"]').first();
    await page.waitForSelector('.statusbar-item[aria-label*="ready"][aria-label*="tach-ls"]');
    return { status: await item.getAttribute('aria-label') };
  });
}

async function goToLine(line) {
  await page.click('.editor-group-container.active .monaco-editor .view-lines');
  await page.keyboard.press('Control+G');
  await page.waitForSelector('.quick-input-widget input');
  await page.keyboard.type(String(line));
  await page.keyboard.press('Enter');
}

/**
 * The Debug profile without the Python Debugger extension (this profile has only tach-ls):
 * a breakpoint in test_add_wrong, "Debug Test at Cursor", the test pauses there (VS Code
 * speaking DAP to debugpy in the worker through the tach-ls-attach type), Continue, and
 * the test's failure shows at its assertion like any run's.
 */
async function debugScenario() {
  await open();
  await step('debug', async () => {
    await quickOpen('test_calc.py');
    await page.waitForSelector('.editor-group-container.active .monaco-editor .cgmr.testing-run-glyph');
    await goToLine(12); // `    assert result == 5`
    await page.keyboard.press('F9');
    await waitForLine(12, { glyphLike: '^codicon-debug-breakpoint' }, 'a breakpoint');
    const started = Date.now();
    await command('Debug Test at Cursor');
    await waitForLine(12, { glyphLike: 'stackframe' }, 'the paused frame');
    const pausedMs = Date.now() - started;
    await page.waitForSelector('.debug-toolbar');
    // The Call Stack view fills in after the pause is shown: wait for the test's frame (bounded).
    await page
      .waitForFunction(
        () => [...document.querySelectorAll('.debug-call-stack .monaco-list-row')].some((r) => (r.getAttribute('aria-label') ?? '').includes('test_add_wrong')),
        null,
        { timeout: 20000 },
      )
      .catch(() => undefined);
    const callStack = await page.$$eval('.debug-call-stack .monaco-list-row', (rows) => rows.map((r) => r.getAttribute('aria-label') ?? ''));
    await shot('06-debug-paused.png');
    const paused = await editorLines();
    await page.click('.debug-toolbar .codicon-debug-continue');
    await waitForLine(10, { glyph: 'codicon-testing-failed-icon' }, 'a failed icon');
    await waitForLine(12, { failedMessage: true }, 'the failure message');
    await page.waitForSelector('.debug-toolbar', { state: 'hidden' });
    await shot('07-debug-result.png');
    return { callStack, paused, after: await editorLines(), pausedMs };
  });
}

async function main() {
  await open();

  await step('explorer', async () => {
    await page.click('.activitybar a[aria-label="Testing"]');
    await page.waitForSelector('.test-explorer .monaco-list-row');
    for (let i = 0; i < 30; i++) {
      const collapsed = await page.$('.test-explorer .monaco-list-row[aria-expanded="false"] .monaco-tl-twistie');
      if (!collapsed) break;
      const before = (await explorerRows()).length;
      await collapsed.click();
      await page.waitForFunction((n) => document.querySelectorAll('.test-explorer .monaco-list-row').length > n, before);
    }
    await shot('01-test-explorer.png');
    return { rows: await explorerRows() };
  });

  await step('gutter_run', async () => {
    await quickOpen('test_calc.py');
    await page.waitForSelector('.editor-group-container.active .monaco-editor .cgmr.testing-run-glyph');
    const before = await editorLines();
    const clicked = Date.now();
    await clickGlyph(6); // `def test_add():`
    await waitForLine(6, { glyph: 'codicon-testing-passed-icon' }, 'a passed icon');
    const clickToPassMs = Date.now() - clicked;
    await page.waitForSelector('.test-explorer .monaco-list-row[aria-label^="test_add "][aria-label*="Passed"]');
    await shot('02-gutter-run-passed.png');
    const row = await page.getAttribute('.test-explorer .monaco-list-row[aria-label^="test_add "]', 'aria-label');
    return { before, after: await editorLines(), explorerRow: row, clickToPassMs };
  });

  await step('continuous_failure', async () => {
    await testingAction('Start Continuous Run');
    await page.waitForSelector('a[aria-label="Stop Continuous Run"]');
    // Break test_add: line 7 `    assert add(1, 2) == 3` -> `== 4`, then save.
    await goToLine(7);
    await page.keyboard.press('End');
    await page.keyboard.press('Backspace');
    await page.keyboard.type('4');
    const saved = Date.now();
    await page.keyboard.press('Control+S');
    await waitForLine(6, { glyph: 'codicon-testing-failed-icon' }, 'a failed icon');
    await waitForLine(7, { failedMessage: true }, 'the failure message');
    const saveToFailureMs = Date.now() - saved;
    await shot('03-continuous-run-failure.png');
    const lines = await editorLines();
    const results = await page.$$eval('.test-output-peek-tree .monaco-list-row, .test-results .monaco-list-row', (rows) =>
      rows.map((r) => r.getAttribute('aria-label') ?? r.textContent ?? ''),
    );
    await testingAction('Stop Continuous Run');
    await page.waitForSelector('a[aria-label="Start Continuous Run"]');
    return { lines, results, saveToFailureMs };
  });

  if (config.coverage) {
    await step('coverage', async () => {
      await page.click('.editor-group-container.active .monaco-editor .view-lines');
      await command('Run Tests with Coverage in Current File');
      await page.waitForSelector('.pane-header[aria-label="Test Coverage Section"]');
      await page.waitForSelector('.test-coverage-list .monaco-list-row[aria-label*="__init__.py"], .monaco-list-row[aria-label*="__init__.py"]');
      const view = await page.$$eval('.monaco-list-row[aria-label*="__init__.py"]', (rows) => rows.map((r) => r.getAttribute('aria-label')));
      await quickOpen('__init__.py');
      await waitForLine(2, { coverage: true }, 'a coverage mark');
      await shot('04-coverage.png');
      return { view, lines: await editorLines() };
    });
  }
}

try {
  await ({ 'not-installed': notInstalled, debug: debugScenario }[config.scenario] ?? main)();
  report.ok = true;
} catch (error) {
  report.ok = false;
  report.error = String(error?.stack ?? error);
} finally {
  save();
  await browser.close();
}
process.exit(report.ok ? 0 : 1);
