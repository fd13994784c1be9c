// browser-steps.js -- drive Debian's chromium through playwright-core for
// the browser tests (t/53N-remote-browser*.t): read a JSON list of steps
// from the file named by argv[2], run them in order on one page, and print
// one JSON line per step: {"step": N, "ok": true|false, "error": "...",
// "value": ...}.  Stops at the first failed step; exits 0 when every step
// passed, 1 when one failed, 2 when the browser could not be started.
//
// A step is an object with "do" and its arguments:
//   {"do": "viewport", "width": 390, "height": 844}  a phone's screen
//   {"do": "scheme", "value": "dark"|"light"}        prefers-color-scheme
//   {"do": "goto", "url": "http://127.0.0.1:P/#s=SECRET"}
//   {"do": "click", "text": "Logs"}                  a button or link by
//                                                    its visible name
//   {"do": "click", "selector": "#id"}
//   {"do": "fill", "selector": "textarea", "value": "..."}
//   {"do": "wait_text", "text": "...", "timeout": ms}  visible on the page
//   {"do": "wait_gone", "text": "...", "timeout": ms}
//   {"do": "text", "selector": "body"}              value: its inner text
//   {"do": "storage", "key": "k"}                    value: localStorage[k]
//   {"do": "url"}                                    value: the page's URL
//   {"do": "screenshot", "path": "/abs/file.png"}
//   {"do": "reload"}
// Every wait is bounded (default 10 s, scaled by KAPD_TEST_TIMEOUT_SCALE).
// No network but what the steps name: the test runs in its own network
// namespace with loopback only.
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

function loadPlaywright() {
    try {
        return require('playwright-core');
    } catch (e) {
        // installed globally by name (contrib/install-deps --test)
        const root = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
        return require(path.join(root, 'playwright-core'));
    }
}

const scale = Number(process.env.KAPD_TEST_TIMEOUT_SCALE || 1) || 1;
const ms = (t) => Math.round((t || 10000) * scale);

async function run() {
    const steps = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
    const { chromium } = loadPlaywright();
    let browser;
    try {
        browser = await chromium.launch({
            executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
            // root in a test namespace: chromium's own sandbox needs a
            // user namespace of its own, which the test's does not give
            // /dev/shm is 64 MB in a container (contrib/fresh-check):
            // chromium's shared memory goes to /tmp instead
            args: ['--no-sandbox', '--disable-gpu', '--no-first-run',
                   '--disable-dev-shm-usage',
                   '--disable-background-networking', '--disable-sync',
                   '--disable-component-update', '--disable-default-apps'],
            timeout: ms(60000),
        });
    } catch (e) {
        console.log(JSON.stringify({ step: 0, ok: false, error: 'launch: ' + e.message }));
        return 2;
    }
    const context = await browser.newContext({ viewport: { width: 390, height: 844 },
                                               deviceScaleFactor: 2, isMobile: true,
                                               hasTouch: true });
    const page = await context.newPage();
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(String(e.message || e)));
    let rc = 0;
    for (let i = 0; i < steps.length; i++) {
        const s = steps[i];
        let value;
        try {
            switch (s.do) {
            case 'viewport':
                await page.setViewportSize({ width: s.width, height: s.height });
                break;
            case 'scheme':
                await page.emulateMedia({ colorScheme: s.value });
                break;
            case 'goto':
                await page.goto(s.url, { timeout: ms(s.timeout) });
                break;
            case 'click':
                if (s.selector)
                    await page.click(s.selector, { timeout: ms(s.timeout) });
                else
                    await page.getByRole('button', { name: s.text, exact: !!s.exact })
                        .first().click({ timeout: ms(s.timeout) });
                break;
            case 'fill':
                await page.fill(s.selector, s.value, { timeout: ms(s.timeout) });
                break;
            case 'wait_text':
                await page.getByText(s.text, { exact: !!s.exact }).first()
                    .waitFor({ state: 'visible', timeout: ms(s.timeout) });
                break;
            case 'wait_gone':
                await page.getByText(s.text, { exact: !!s.exact }).first()
                    .waitFor({ state: 'hidden', timeout: ms(s.timeout) });
                break;
            case 'text':
                value = await page.innerText(s.selector || 'body', { timeout: ms(s.timeout) });
                break;
            case 'storage':
                value = await page.evaluate((k) => localStorage.getItem(k), s.key);
                break;
            case 'url':
                value = page.url();
                break;
            case 'screenshot':
                await page.screenshot({ path: s.path, fullPage: !!s.full });
                break;
            case 'reload':
                await page.reload({ timeout: ms(s.timeout) });
                break;
            default:
                throw new Error('unknown step ' + s.do);
            }
            console.log(JSON.stringify({ step: i + 1, ok: true, do: s.do, value }));
        } catch (e) {
            console.log(JSON.stringify({ step: i + 1, ok: false, do: s.do,
                                         error: String(e.message || e).split('\n')[0] }));
            rc = 1;
            break;
        }
    }
    console.log(JSON.stringify({ step: 'end', ok: rc === 0, page_errors: consoleErrors }));
    await browser.close();
    return rc;
}

run().then((rc) => process.exit(rc), (e) => {
    console.log(JSON.stringify({ step: 0, ok: false, error: String(e && e.message || e) }));
    process.exit(2);
});
