#!/usr/bin/env node
// Headless Chromium on the supervisor console (`/console`), driven by the Rust integration
// tests (tests/browser_chromium.rs): signs in (a wrong token first), watches a live call and the
// bot, then searches the history, all through the page itself.
//
//   node tests/browser/console_check.js --url http://10.203.1.1:8080 --token SUPERVISOR_TOKEN \
//        --expect-call CALL_ID --expect-text 5215500000802 \
//        [--expect-bot e2e-bot] [--supervisor qa-lead] \
//        [--history-call CALL_ID --history-text 5215500000801] [--max-secs 40]
//
// --expect-call / --expect-text: the live call, whose row in #calls must include the text (the
//   customer's number or the edge's name); the live API, read with the page's session cookie,
//   must list the call id.
// --expect-bot: an edge #edges must list (default e2e-bot).
// --supervisor: the name #me must show once signed in (not checked when absent).
// --history-call / --history-text: a finished call: searching the history for its id must give
//   exactly one row that includes the text, and the CSV export must have it.
//
// stdout: one JSON line, {"ok": true, ...} or {"error": "..."} (then a non-zero exit);
// diagnostics go to stderr. Any console error, page error, Content-Security-Policy violation or
// request to another origin fails the check. The two 401s the page causes by design (its first
// `/console/api/me` while signed out, and the wrong token's `/console/session`) are expected and
// counted, not failed.
'use strict';

const { chromium } = require('playwright-core');

function parseArgs(argv) {
  const opts = {
    url: null,
    token: null,
    expectCall: null,
    expectText: null,
    expectBot: 'e2e-bot',
    supervisor: null,
    historyCall: null,
    historyText: null,
    maxSecs: 40,
    screenshots: null,
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    switch (a) {
      case '--url': opts.url = next().replace(/\/+$/, ''); break;
      case '--token': opts.token = next(); break;
      case '--expect-call': opts.expectCall = next(); break;
      case '--expect-text': opts.expectText = next(); break;
      case '--expect-bot': opts.expectBot = next(); break;
      case '--supervisor': opts.supervisor = next(); break;
      case '--history-call': opts.historyCall = next(); break;
      case '--history-text': opts.historyText = next(); break;
      case '--max-secs': {
        const n = Number(next());
        if (!Number.isFinite(n) || n <= 0) throw new Error(`bad number for ${a}`);
        opts.maxSecs = n;
        break;
      }
      case '--chromium': opts.chromium = next(); break;
      case '--screenshots': opts.screenshots = next(); break;
      default: throw new Error(`unknown argument: ${a}`);
    }
  }
  for (const [k, flag] of [['url', '--url'], ['token', '--token'], ['expectCall', '--expect-call'],
    ['expectText', '--expect-text']]) {
    if (!opts[k]) throw new Error(`${flag} is required`);
  }
  if ((opts.historyCall === null) !== (opts.historyText === null)) {
    throw new Error('--history-call and --history-text go together');
  }
  return opts;
}

function log(...args) {
  process.stderr.write(`[console_check] ${args.join(' ')}\n`);
}

let browser = null;
let finished = false;

async function finish(code, result) {
  if (finished) return;
  finished = true;
  if (browser) {
    const b = browser;
    browser = null;
    await Promise.race([
      b.close().catch((e) => log('browser.close failed:', e && e.message)),
      new Promise((r) => setTimeout(r, 5000).unref()),
    ]);
  }
  if (code !== 0) log('error:', result.error);
  process.exitCode = code;
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
  setTimeout(() => process.exit(code), 2000).unref();
}

const fail = (e) => finish(1, { error: String((e && e.message) || e) });

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const base = opts.url;
  const origin = new URL(base).origin;
  let step = 'launch';
  setTimeout(() => fail(`overall timeout (--max-secs ${opts.maxSecs}) at step ${step}`),
    opts.maxSecs * 1000).unref();
  const keepAlive = setInterval(() => {}, 1 << 30);

  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    timeout: 30000,
  });
  const version = browser.version();
  log('chromium', version);
  browser.on('disconnected', () => fail('the browser disconnected'));
  const context = await browser.newContext();
  const page = await context.newPage();

  // What the page says or does wrong.
  const problems = [];
  let signedIn = false;
  const expected401 = [];
  page.on('console', (m) => {
    const type = m.type();
    const text = m.text();
    const where = (m.location() && m.location().url) || '';
    log(`console.${type}: ${text}${where ? ` (${where})` : ''}`);
    if (type === 'error' && !signedIn && /status of 401/.test(text)
        && (where === `${base}/console/api/me` || where === `${base}/console/session`)) {
      expected401.push(where.slice(base.length));
      return;
    }
    if (type === 'error' || /Content.Security.Policy|Refused to/i.test(text)) {
      problems.push(`console.${type}: ${text}${where ? ` (${where})` : ''}`);
    }
  });
  page.on('pageerror', (e) => {
    log('page error:', e && e.message);
    problems.push(`page error: ${e && e.message}`);
  });
  page.on('crash', () => fail('the page crashed'));
  // Whatever CSP blocks, reported by the page itself too (init scripts are not subject to it).
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'}`
        + ` at ${e.sourceFile || '?'}:${e.lineNumber || '?'}`);
    });
  });
  // Only the bridge is ever asked for anything.
  const elsewhere = [];
  await context.route((u) => u.origin !== origin, (route) => {
    elsewhere.push(route.request().url());
    return route.abort();
  });
  const httpErrors = [];
  page.on('response', (r) => {
    if (r.status() >= 400) httpErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });

  const waitFor = (what, fn, arg, ms) => page.waitForFunction(fn, arg, { timeout: ms, polling: 100 })
    .catch((e) => { throw new Error(`${what}: ${e.message.split('\n')[0]}`); });

  step = 'open';
  const resp = await page.goto(`${base}/console`, { waitUntil: 'load', timeout: 10000 });
  if (!resp || resp.status() !== 200) throw new Error(`GET /console: ${resp && resp.status()}`);
  const csp = resp.headers()['content-security-policy'] || '';
  if (!csp.includes("script-src 'self'")) throw new Error(`no strict CSP on /console: ${csp}`);
  await page.waitForSelector('#token', { state: 'visible', timeout: 5000 })
    .catch(() => { throw new Error('the sign-in form never showed'); });

  step = 'wrong token';
  await page.fill('#token', 'not-a-supervisor-token');
  await page.click('#signin-form button[type=submit]');
  await waitFor('no error shown for a wrong token',
    () => document.getElementById('signin-error').textContent.trim() !== '', null, 5000);
  const wrongTokenError = (await page.textContent('#signin-error')).trim();
  if (await page.isVisible('#app')) throw new Error('the app showed after a wrong token');
  if ((await page.inputValue('#token')) !== '') throw new Error('the token field kept the wrong token');

  step = 'sign in';
  await page.fill('#token', opts.token);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#app', { state: 'visible', timeout: 5000 })
    .catch(async () => {
      const err = await page.textContent('#signin-error').catch(() => '?');
      throw new Error(`signing in did not open the app (#signin-error: ${JSON.stringify(err)})`);
    });
  signedIn = true;
  if (await page.isVisible('#signin')) throw new Error('the sign-in form is still shown');
  if ((await page.textContent('#signin-error')).trim() !== '') {
    throw new Error('the wrong token\'s error is still shown after signing in');
  }
  const me = (await page.textContent('#me')).trim();
  if (opts.supervisor !== null && me !== opts.supervisor) {
    throw new Error(`#me shows ${JSON.stringify(me)}, not ${JSON.stringify(opts.supervisor)}`);
  }

  step = 'live call';
  await waitFor(`no row in #calls includes ${JSON.stringify(opts.expectText)} within 10 s`,
    (t) => [...document.querySelectorAll('#calls tr')].some((tr) => tr.textContent.includes(t)),
    opts.expectText, 10000);
  const callRow = await page.evaluate((t) => [...document.querySelectorAll('#calls tr')]
    .map((tr) => [...tr.cells].map((c) => c.textContent))
    .find((cells) => cells.join(' ').includes(t)), opts.expectText);
  if (await page.isVisible('#no-calls')) throw new Error('"No calls right now." shows beside a call');
  // The call id is not on the page: the live API, with the page's own cookie, has it.
  const live = await page.evaluate(async () => {
    const r = await fetch('/console/api/live', { credentials: 'same-origin' });
    return { status: r.status, body: r.ok ? await r.json() : await r.text() };
  });
  if (live.status !== 200) throw new Error(`/console/api/live from the page: ${live.status} ${live.body}`);
  const call = live.body.calls.find((c) => c.call_id === opts.expectCall);
  if (!call) throw new Error(`the live view has no call ${opts.expectCall}: ${JSON.stringify(live.body)}`);
  if (!callRow.join(' ').includes(call.customer)) {
    throw new Error(`the row ${JSON.stringify(callRow)} is not call ${opts.expectCall}'s (${call.customer})`);
  }

  step = 'edges';
  await waitFor(`#edges does not list ${JSON.stringify(opts.expectBot)}`,
    (name) => [...document.querySelectorAll('#edges tr')]
      .some((tr) => tr.cells[0] && tr.cells[0].textContent === name),
    opts.expectBot, 5000);
  const botRow = await page.evaluate((name) => [...document.querySelectorAll('#edges tr')]
    .map((tr) => [...tr.cells].map((c) => c.textContent))
    .find((cells) => cells[0] === name), opts.expectBot);

  if (opts.screenshots) {
    await page.screenshot({ path: `${opts.screenshots}/console-live.png`, fullPage: true });
  }

  step = 'history';
  await page.click('#tab-history');
  await page.waitForSelector('#history', { state: 'visible', timeout: 2000 })
    .catch(() => { throw new Error('#tab-history did not show the history'); });
  if (await page.isVisible('#live')) throw new Error('the live view still shows on the history tab');
  await waitFor('#rows has no row within 10 s',
    () => document.querySelectorAll('#rows tr').length > 0, null, 10000);
  const historyRows = await page.$$eval('#rows tr', (trs) => trs.length);
  const pageInfo = (await page.textContent('#page')).trim();

  let found = null;
  let csvHasIt = null;
  if (opts.historyCall !== null) {
    step = 'history search';
    await page.fill('#filters input[name=q]', opts.historyCall);
    await page.click('#filters button[type=submit]');
    await waitFor(`searching for ${opts.historyCall} did not give one row with ${JSON.stringify(opts.historyText)}`,
      (t) => {
        const trs = document.querySelectorAll('#rows tr');
        return trs.length === 1 && trs[0].textContent.includes(t)
          && /\b1 calls?\b/.test(document.getElementById('page').textContent);
      }, opts.historyText, 10000);
    found = await page.$eval('#rows tr', (tr) => [...tr.cells].map((c) => c.textContent));
    const href = await page.getAttribute('#csv', 'href');
    if (!href || !href.includes(`q=${encodeURIComponent(opts.historyCall)}`) || !href.includes('format=csv')) {
      throw new Error(`the CSV link does not carry the search: ${href}`);
    }
    const csv = await page.evaluate(async (h) => {
      const r = await fetch(h, { credentials: 'same-origin' });
      return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
    }, href);
    if (csv.status !== 200) throw new Error(`CSV export: ${csv.status}`);
    const lines = csv.text.trim().split(/\r?\n/);
    csvHasIt = lines.length === 2 && lines[1].startsWith(`${opts.historyCall},`);
    if (!csvHasIt) throw new Error(`CSV export of the search: ${JSON.stringify(csv.text.slice(0, 400))}`);
  }

  // The finished call's page: both waveforms drawn, the recording plays and seeks, the
  // timeline has pre_accept and accept.
  let callPage = null;
  if (opts.historyCall !== null) {
    step = 'call page';
    await page.click(`a.call-link[data-call="${opts.historyCall}"]`);
    await page.waitForSelector('#call', { state: 'visible', timeout: 5000 })
      .catch(() => { throw new Error('the call link did not open the call page'); });
    await waitFor('the waveform stayed blank', () => {
      const cv = document.getElementById('wave');
      const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
      // Coloured (non-white) pixels in each half: both channels drawn.
      const coloured = (y0, y1) => {
        let n = 0;
        for (let y = y0; y < y1; y++) for (let x = 0; x < cv.width; x += 3) {
          const i = (y * cv.width + x) * 4;
          if (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200) n++;
        }
        return n;
      };
      return coloured(0, cv.height / 2 - 2) > 50 && coloured(cv.height / 2 + 2, cv.height) > 50;
    }, null, 10000);
    const audio = await page.evaluate(() => new Promise((resolve, reject) => {
      const a = document.getElementById('player');
      const seek = () => {
        if (!(a.duration > 0)) return reject(new Error(`audio duration ${a.duration}`));
        const to = a.duration / 2;
        a.addEventListener('seeked', () => resolve({ duration: a.duration, at: a.currentTime }), { once: true });
        a.currentTime = to;
      };
      if (a.readyState >= 1) seek(); else a.addEventListener('loadedmetadata', seek, { once: true });
      a.addEventListener('error', () => reject(new Error(`audio error ${a.error && a.error.code}`)), { once: true });
      setTimeout(() => reject(new Error('the recording never loaded')), 10000);
    }));
    // It plays: muted, as headless has no user gesture for sound.
    const played = await page.evaluate(async () => {
      const a = document.getElementById('player');
      a.muted = true;
      await a.play();
      const from = a.currentTime;
      await new Promise((r) => setTimeout(r, 600));
      a.pause();
      return a.currentTime - from;
    });
    if (!(played > 0.1)) throw new Error(`the recording did not play (advanced ${played} s)`);
    const timeline = await page.$$eval('#timeline li', (lis) => lis.map((l) => l.textContent));
    for (const want of ['pre_accept', '· accept', 'media connected']) {
      if (!timeline.some((t) => t.includes(want))) throw new Error(`timeline lacks ${want}: ${JSON.stringify(timeline)}`);
    }
    callPage = { audio, played_s: played, timeline };
    if (opts.screenshots) {
      await page.screenshot({ path: `${opts.screenshots}/console-call.png`, fullPage: true });
    }
  }

  step = 'sign out';
  await page.click('#logout');
  await page.waitForSelector('#signin', { state: 'visible', timeout: 5000 })
    .catch(() => { throw new Error('signing out did not show the sign-in form'); });
  // Whatever signing out sets off (the event stream closing) has a moment to complain.
  await page.waitForTimeout(300);

  step = 'verdict';
  const csp2 = await page.evaluate(() => window.__cspViolations);
  for (const v of csp2) problems.push(`CSP violation: ${v}`);
  for (const u of elsewhere) problems.push(`request to another origin: ${u}`);
  const unexpectedHttp = httpErrors.filter((e) =>
    !e.endsWith(` GET ${base}/console/api/me`) && !e.endsWith(` POST ${base}/console/session`));
  for (const e of unexpectedHttp) problems.push(`HTTP ${e}`);
  if (problems.length) throw new Error(`the page had problems: ${problems.join(' | ')}`);
  clearInterval(keepAlive);
  await finish(0, {
    ok: true,
    wrong_token_error: wrongTokenError,
    me,
    call_row: callRow,
    bot_row: botRow,
    history_rows: historyRows,
    history_page: pageInfo,
    history_found: found,
    csv: csvHasIt,
    call_page: callPage,
    expected_401: expected401,
    chromium: version,
  });
}

process.on('unhandledRejection', fail);
process.on('uncaughtException', fail);
process.on('SIGTERM', () => finish(143, { error: 'terminated (SIGTERM)' }));
process.stdout.on('error', () => { finished = true; process.exit(1); });

main().catch(fail);
