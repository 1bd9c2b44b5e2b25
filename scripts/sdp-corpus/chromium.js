// Records Chromium's audio-only offer, and its answer to the hand-written WhatsApp offer.
// Debian's /usr/bin/chromium, headless, driven by Playwright (playwright-core, no browser
// download). run.sh starts this inside a network namespace that has only loopback, so no
// packet can leave the machine (the answer's ICE agent would otherwise check the offer's
// documentation-address candidates).
//
// Usage: node chromium.js OUTDIR
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const { inPage } = require('./page');

const out = process.argv[2] || path.join(__dirname, '..', '..', 'tests', 'sdp');
const offerIn = path.join(out, 'whatsapp-wideband-offer.sdp');


(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      // no mDNS (multicast) host-name candidates
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      // the namespace has only loopback; Chromium skips loopback interfaces unless told
      '--allow-loopback-in-peer-connection',
    ],
  });
  let rc = 0;
  try {
    const page = await browser.newPage();
    // getUserMedia needs a secure context; http://127.0.0.1 is one. Playwright answers the
    // request itself (page.route), so not even a loopback socket is opened for the page.
    await page.route('http://127.0.0.1/**', (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>sdp</title>' }));
    await page.goto('http://127.0.0.1/sdp-corpus.html');
    const offer = await page.evaluate(inPage, null);
    fs.writeFileSync(path.join(out, 'chromium-offer.sdp'), offer.sdp);
    console.log(`chromium: offer via ${offer.how}, ICE gathering ${offer.complete}`);
    console.log(`chromium: ${offer.ua}`);

    if (fs.existsSync(offerIn)) {
      try {
        const answer = await page.evaluate(inPage, fs.readFileSync(offerIn, 'utf8'));
        fs.writeFileSync(path.join(out, 'chromium-answer.sdp'), answer.sdp);
        console.log(`chromium: answer to ${path.basename(offerIn)} via ${answer.how}, ICE gathering ${answer.complete}`);
      } catch (e) {
        console.error(`chromium: answer to ${path.basename(offerIn)} failed: ${e.message}`);
        rc = 1;
      }
    } else {
      console.error(`chromium: ${offerIn} missing, no answer recorded`);
      rc = 1;
    }
  } finally {
    await browser.close();
  }
  process.exit(rc);
})().catch((e) => { console.error(e); process.exit(1); });
