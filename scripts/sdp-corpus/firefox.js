// Records Firefox ESR's audio-only offer, and its answer to the hand-written WhatsApp offer.
// Debian's /usr/bin/firefox-esr, headless, driven over WebDriver BiDi (Firefox's own remote
// agent; no geckodriver) by puppeteer-core (no browser download). run.sh starts this inside
// a network namespace that has only loopback, so no packet can leave the machine.
//
// Usage: node firefox.js OUTDIR
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const puppeteer = require('puppeteer-core');
const { inPage } = require('./page');

const out = process.argv[2] || path.join(__dirname, '..', '..', 'tests', 'sdp');
const offerIn = path.join(out, 'whatsapp-wideband-offer.sdp');


(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sdp-corpus-ff-'));
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: '/usr/bin/firefox-esr',
    headless: true,
    userDataDir: profile,
    extraPrefsFirefox: {
      // fake audio device, no permission prompt
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      // host candidates only, no mDNS host names, loopback allowed (the namespace has no other)
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      'media.peerconnection.ice.loopback': true,
      'media.peerconnection.ice.force_interface': 'lo',
      'media.peerconnection.ice.default_address_only': false,
      'media.peerconnection.ice.no_host': false,
      'media.peerconnection.ice.proxy_only': false,
      // nothing of Firefox's own services
      'network.dns.disableIPv6': false,
      // the namespace has no route out: keep Firefox from deciding it is offline (no gathering)
      'network.manage-offline-status': false,
      'network.offline-mirrors-connectivity': false,
      'app.update.enabled': false,
      'browser.safebrowsing.malware.enabled': false,
      'browser.safebrowsing.phishing.enabled': false,
      'datareporting.healthreport.uploadEnabled': false,
      'toolkit.telemetry.enabled': false,
      'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false,
    },
  });
  let rc = 0;
  try {
    const page = await browser.newPage();
    // a secure context without a server: getUserMedia needs one, http://127.0.0.1 is one
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      if (req.url().startsWith('http://127.0.0.1/')) {
        req.respond({ status: 200, contentType: 'text/html', body: '<!doctype html><title>sdp</title>' });
      } else {
        req.abort();
      }
    });
    await page.goto('http://127.0.0.1/sdp-corpus.html');
    const offer = await page.evaluate(inPage, null);
    fs.writeFileSync(path.join(out, 'firefox-esr-offer.sdp'), offer.sdp);
    console.log(`firefox: offer via ${offer.how}, ICE gathering ${offer.complete}`);
    console.log(`firefox: ${offer.ua} (${await browser.version()})`);
    try {
      const answer = await page.evaluate(inPage, fs.readFileSync(offerIn, 'utf8'));
      fs.writeFileSync(path.join(out, 'firefox-esr-answer.sdp'), answer.sdp);
      console.log(`firefox: answer to ${path.basename(offerIn)} via ${answer.how}, ICE gathering ${answer.complete}`);
    } catch (e) {
      console.error(`firefox: answer to ${path.basename(offerIn)} failed: ${e.message}`);
      rc = 1;
    }
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.exit(rc);
})().catch((e) => { console.error(e); process.exit(1); });
