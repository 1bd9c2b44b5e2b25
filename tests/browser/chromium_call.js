#!/usr/bin/env node
// Headless Chromium as a real WebRTC caller, driven by a parent process (the
// Rust integration tests) over stdin/stdout.
//
// Run from the repo root, after `(cd tests/browser && npm ci)` (set
// PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1; the Debian browser at /usr/bin/chromium
// is used, none is downloaded):
//
//   node tests/browser/chromium_call.js --tone 440 --digits 1234#
//
// Options: --tone HZ (440), --digits STR (1234#), --listen-ms MS (2500),
//          --max-secs S (60), --chromium PATH (/usr/bin/chromium or $CHROMIUM).
//
// Protocol: one JSON object per line. stdout carries only these lines;
// diagnostics go to stderr.
//   out {"offer": sdp}                 offer after ICE gathering (or 3 s)
//   in  {"answer": sdp}
//   out {"connected": true}            pc.connectionState === 'connected' (15 s)
//   out {"heard_hz": n, "heard_dbfs": n}  dominant received frequency, RMS level
//   out {"stats": {...}}               inbound/outbound audio RTP stats + codecs
//   out {"dtmf_sent": str, "canInsertDTMF": bool}
//   in  {"close": true}  (or stdin EOF; or --max-secs elapsed)
//   out {"closed": true}               exit 0
// Any failure: out {"error": "..."} and a non-zero exit.
//
// No STUN/TURN servers are configured and the page is served by page.route,
// so nothing but 127.0.0.1 is contacted.
'use strict';

const readline = require('readline');
const { chromium } = require('playwright-core');

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const opts = {
    tone: 440,
    digits: '1234#',
    listenMs: 2500,
    maxSecs: 60,
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    const num = (v) => {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new Error(`bad number for ${a}: ${v}`);
      return n;
    };
    switch (a) {
      case '--tone': opts.tone = num(next()); break;
      case '--digits': opts.digits = next(); break;
      case '--listen-ms': opts.listenMs = num(next()); break;
      case '--max-secs': opts.maxSecs = num(next()); break;
      case '--chromium': opts.chromium = next(); break;
      default: throw new Error(`unknown argument: ${a}`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------- output

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function log(...args) {
  process.stderr.write(`[chromium_call] ${args.join(' ')}\n`);
}

// ---------------------------------------------------------------- stdin lines

const stdinLines = [];
let stdinEof = false;
let stdinWaiter = null;

function startStdin() {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    stdinLines.push(line);
    if (stdinWaiter) stdinWaiter();
  });
  rl.on('close', () => {
    stdinEof = true;
    if (stdinWaiter) stdinWaiter();
  });
}

// Resolves with the next non-empty line, or null on EOF.
function nextLine() {
  return new Promise((resolve) => {
    const check = () => {
      if (stdinLines.length) { stdinWaiter = null; resolve(stdinLines.shift()); return true; }
      if (stdinEof) { stdinWaiter = null; resolve(null); return true; }
      return false;
    };
    if (!check()) stdinWaiter = check;
  });
}

// ---------------------------------------------------------------- browser

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
];

let browser = null;
let finishing = false;

async function shutdown(code, errorMessage) {
  if (finishing) return;
  finishing = true;
  if (errorMessage !== undefined) {
    emit({ error: String(errorMessage) });
    log('error:', errorMessage);
  }
  if (browser) {
    const b = browser;
    browser = null;
    // Never hang on close: give it 5 s.
    await Promise.race([
      b.close().catch((e) => log('browser.close failed:', e && e.message)),
      new Promise((r) => setTimeout(r, 5000).unref()),
    ]);
  }
  if (code === 0) emit({ closed: true });
  process.exitCode = code;
  // Let stdout drain, then make sure nothing keeps us alive.
  process.stdout.write('', () => process.exit(code));
  setTimeout(() => process.exit(code), 2000).unref();
}

// ---------------------------------------------------------------- page code
// Each of these runs inside the page via page.evaluate; state lives on window.

async function pageSetup({ toneHz }) {
  const w = window;
  w.__log = (...a) => { try { w.nodeLog(a.join(' ')); } catch (_) { /* not exposed yet */ } };

  const ctx = new AudioContext();
  if (ctx.state !== 'running') {
    try { await ctx.resume(); } catch (e) { w.__log('AudioContext.resume failed: ' + e); }
  }
  w.audioCtx = ctx;

  // Outgoing tone: oscillator -> gain -> MediaStreamDestination.
  const osc = ctx.createOscillator();
  osc.type = 'sine';
  osc.frequency.value = toneHz;
  const gain = ctx.createGain();
  gain.gain.value = 0.3;
  const dest = ctx.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  w.toneStream = dest.stream;

  const pc = new RTCPeerConnection();
  w.pc = pc;
  const track = dest.stream.getAudioTracks()[0];
  pc.addTrack(track, dest.stream);

  // Incoming audio: <audio> element (Chromium only pulls remote WebRTC audio
  // into WebAudio while a media element plays it) + analyser.
  w.remoteTracks = 0;
  pc.ontrack = (ev) => {
    w.remoteTracks++;
    const stream = (ev.streams && ev.streams[0]) || new MediaStream([ev.track]);
    w.__log(`ontrack kind=${ev.track.kind} id=${ev.track.id}`);
    if (ev.track.kind !== 'audio' || w.analyser) return;
    const el = document.createElement('audio');
    el.muted = true;
    el.autoplay = true;
    el.srcObject = stream;
    document.body.appendChild(el);
    el.play().catch((e) => w.__log('audio.play failed: ' + e));
    w.remoteAudioEl = el;

    const src = ctx.createMediaStreamSource(stream);
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    an.smoothingTimeConstant = 0;
    // Keep the analyser in the rendered graph (silently).
    const sink = ctx.createGain();
    sink.gain.value = 0;
    src.connect(an).connect(sink).connect(ctx.destination);
    w.remoteSource = src;
    w.analyser = an;
  };
  pc.onconnectionstatechange = () => w.__log('connectionState=' + pc.connectionState);
  pc.oniceconnectionstatechange = () => w.__log('iceConnectionState=' + pc.iceConnectionState);

  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);

  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      const t = setTimeout(resolve, 3000);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
      });
    });
  }
  return { sdp: pc.localDescription.sdp, gathering: pc.iceGatheringState, audioCtxState: ctx.state };
}

async function pageAnswerAndConnect({ sdp, timeoutMs }) {
  const pc = window.pc;
  await pc.setRemoteDescription({ type: 'answer', sdp });
  if (pc.connectionState === 'connected') return { ok: true, state: 'connected' };
  return await new Promise((resolve) => {
    const done = (ok) => {
      clearTimeout(t);
      pc.removeEventListener('connectionstatechange', onChange);
      resolve({ ok, state: pc.connectionState, ice: pc.iceConnectionState });
    };
    const onChange = () => {
      if (pc.connectionState === 'connected') done(true);
      else if (pc.connectionState === 'failed' || pc.connectionState === 'closed') done(false);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    pc.addEventListener('connectionstatechange', onChange);
  });
}

async function pageListen({ listenMs }) {
  await new Promise((r) => setTimeout(r, listenMs));
  const an = window.analyser;
  if (!an) return { error: 'no remote audio track received (ontrack never fired for audio)' };
  const sr = window.audioCtx.sampleRate;
  const n = an.fftSize;
  const x = new Float32Array(n);
  an.getFloatTimeDomainData(x);

  // RMS level (dBFS; full-scale sine = -3 dBFS).
  let sumSq = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) { sumSq += x[i] * x[i]; mean += x[i]; }
  mean /= n;
  const rms = Math.sqrt(sumSq / n);
  const dbfs = rms > 0 ? 20 * Math.log10(rms) : -200;

  // Goertzel scan 100..2000 Hz in 1 Hz steps over the Hann-windowed block.
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = (x[i] - mean) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
  }
  const power = (f) => {
    const coeff = 2 * Math.cos((2 * Math.PI * f) / sr);
    let s1 = 0, s2 = 0;
    for (let i = 0; i < n; i++) {
      const s0 = y[i] + coeff * s1 - s2;
      s2 = s1; s1 = s0;
    }
    return s1 * s1 + s2 * s2 - coeff * s1 * s2;
  };
  let bestF = 0, bestP = -1;
  const p = new Map();
  for (let f = 100; f <= 2000; f++) {
    const v = power(f);
    p.set(f, v);
    if (v > bestP) { bestP = v; bestF = f; }
  }
  // Parabolic refinement on the log power around the peak.
  let heard = bestF;
  if (bestF > 100 && bestF < 2000 && bestP > 0) {
    const a = Math.log(p.get(bestF - 1) + 1e-30);
    const b = Math.log(bestP + 1e-30);
    const c = Math.log(p.get(bestF + 1) + 1e-30);
    const den = a - 2 * b + c;
    if (den < 0) {
      const d = (0.5 * (a - c)) / den;
      if (Math.abs(d) <= 1) heard = bestF + d;
    }
  }
  return {
    heard_hz: Math.round(heard * 10) / 10,
    heard_dbfs: Math.round(dbfs * 10) / 10,
    sampleRate: sr,
    samples: n,
    audioCtxState: window.audioCtx.state,
  };
}

async function pageStats() {
  const report = await window.pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  const codecOf = (s) => {
    const c = s.codecId && byId.get(s.codecId);
    return c ? { mimeType: c.mimeType, payloadType: c.payloadType, clockRate: c.clockRate,
                 channels: c.channels, sdpFmtpLine: c.sdpFmtpLine } : null;
  };
  const out = { inbound: null, outbound: null, candidatePair: null };
  report.forEach((s) => {
    const kind = s.kind || s.mediaType;
    if (s.type === 'inbound-rtp' && kind === 'audio') {
      out.inbound = {
        ssrc: s.ssrc, packetsReceived: s.packetsReceived, bytesReceived: s.bytesReceived,
        packetsLost: s.packetsLost, jitter: s.jitter, totalSamplesReceived: s.totalSamplesReceived,
        audioLevel: s.audioLevel, codec: codecOf(s),
        mimeType: (codecOf(s) || {}).mimeType, payloadType: (codecOf(s) || {}).payloadType,
      };
    } else if (s.type === 'outbound-rtp' && kind === 'audio') {
      out.outbound = {
        ssrc: s.ssrc, packetsSent: s.packetsSent, bytesSent: s.bytesSent, codec: codecOf(s),
        mimeType: (codecOf(s) || {}).mimeType, payloadType: (codecOf(s) || {}).payloadType,
      };
    } else if (s.type === 'transport' && s.selectedCandidatePairId) {
      const cp = byId.get(s.selectedCandidatePairId) || {};
      const l = byId.get(cp.localCandidateId) || {};
      const r = byId.get(cp.remoteCandidateId) || {};
      // (Chromium hides the address of peer-reflexive remote candidates.)
      out.candidatePair = {
        local: `${l.address || l.ip || '?'}:${l.port}/${l.protocol} ${l.candidateType}`,
        remote: `${r.address || r.ip || '?'}:${r.port}/${r.protocol} ${r.candidateType}`,
      };
    }
  });
  return out;
}

async function pageDtmf({ digits, timeoutMs }) {
  const s = window.pc.getSenders()[0];
  if (!s || !s.dtmf) return { sent: false, canInsertDTMF: false, reason: 'sender.dtmf is null' };
  const dtmf = s.dtmf;
  if (!dtmf.canInsertDTMF) return { sent: false, canInsertDTMF: false, reason: 'canInsertDTMF is false' };
  const tones = [];
  const finished = new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    dtmf.addEventListener('tonechange', (ev) => {
      tones.push(ev.tone);
      if (ev.tone === '') { clearTimeout(t); resolve(true); }
    });
  });
  dtmf.insertDTMF(digits, 120, 80);
  const ok = await finished;
  return { sent: ok, canInsertDTMF: true, tones, reason: ok ? undefined : 'timeout waiting for final tonechange' };
}

function pageClose() {
  try { if (window.pc) window.pc.close(); } catch (_) { /* ignore */ }
  try { if (window.audioCtx) window.audioCtx.close(); } catch (_) { /* ignore */ }
  return true;
}

// ---------------------------------------------------------------- main

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const deadline = Date.now() + opts.maxSecs * 1000;
  let phase = 'start';

  // Overall safety net: in the final wait this is a normal close; anywhere
  // else it is an error.
  setTimeout(() => {
    if (phase === 'wait-close' || phase === 'closing') {
      log(`--max-secs ${opts.maxSecs} elapsed while waiting for close; closing`);
      shutdown(0);
    } else {
      shutdown(2, `overall timeout (--max-secs ${opts.maxSecs}) in phase ${phase}`);
    }
  }, opts.maxSecs * 1000).unref();
  // The timer above is unref'd; this keeps the loop alive until shutdown.
  const keepAlive = setInterval(() => {}, 1 << 30);

  startStdin();

  phase = 'launch';
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
  log('chromium', browser.version());
  browser.on('disconnected', () => {
    if (!finishing) shutdown(3, 'browser disconnected unexpectedly');
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => log(`page console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log('page error:', e && e.message));
  page.on('crash', () => shutdown(3, 'page crashed'));
  await page.exposeFunction('nodeLog', (s) => log('page:', s));
  // Only 127.0.0.1 is ever requested; anything else is refused.
  await context.route((url) => !url.href.startsWith('http://127.0.0.1/'), (route) => route.abort());
  await page.route('http://127.0.0.1/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>call</title><body></body>' }));
  await page.goto('http://127.0.0.1/call.html');
  const secure = await page.evaluate(() => window.isSecureContext);
  if (!secure) log('warning: page is not a secure context');

  phase = 'offer';
  const setup = await withTimeout(page.evaluate(pageSetup, { toneHz: opts.tone }), 20000, 'creating offer');
  log(`offer ready (iceGatheringState=${setup.gathering}, AudioContext=${setup.audioCtxState})`);
  const candLines = setup.sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
  if (!candLines.some((l) => / 127\.0\.0\.1 /.test(l))) {
    log('warning: offer has no 127.0.0.1 candidate (is --allow-loopback-in-peer-connection honoured?)');
  }
  log(`offer candidates: ${candLines.length}`);
  emit({ offer: setup.sdp });

  phase = 'answer';
  const line = await nextLine();
  if (line === null) return shutdown(1, 'stdin closed before an answer was received');
  let msg;
  try { msg = JSON.parse(line); } catch (e) { return shutdown(1, `bad JSON on stdin: ${e.message}`); }
  if (!msg || typeof msg.answer !== 'string') return shutdown(1, 'expected {"answer": "<sdp>"} on stdin');

  phase = 'connect';
  const conn = await withTimeout(
    page.evaluate(pageAnswerAndConnect, { sdp: msg.answer, timeoutMs: 15000 }), 20000, 'connecting');
  if (!conn.ok) {
    return shutdown(1, `not connected: connectionState=${conn.state} iceConnectionState=${conn.ice}`);
  }
  emit({ connected: true });

  phase = 'listen';
  const heard = await withTimeout(page.evaluate(pageListen, { listenMs: opts.listenMs }),
    opts.listenMs + 15000, 'listening');
  if (heard.error) return shutdown(1, heard.error);
  log(`analysed ${heard.samples} samples at ${heard.sampleRate} Hz (AudioContext=${heard.audioCtxState})`);
  emit({ heard_hz: heard.heard_hz, heard_dbfs: heard.heard_dbfs });

  phase = 'stats';
  const stats = await withTimeout(page.evaluate(pageStats), 10000, 'getStats');
  emit({ stats });

  phase = 'dtmf';
  const d = await withTimeout(page.evaluate(pageDtmf, { digits: opts.digits, timeoutMs: 10000 }),
    15000, 'DTMF');
  if (!d.sent) log(`DTMF not sent: ${d.reason}`);
  else log(`DTMF tones: ${JSON.stringify(d.tones)}`);
  emit(d.sent ? { dtmf_sent: opts.digits, canInsertDTMF: d.canInsertDTMF }
              : { dtmf_sent: null, canInsertDTMF: d.canInsertDTMF, dtmf_error: d.reason });

  phase = 'wait-close';
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) { log('--max-secs elapsed; closing'); break; }
    const l = await Promise.race([nextLine(), new Promise((r) => setTimeout(() => r(undefined), remaining))]);
    if (l === undefined) { log('--max-secs elapsed; closing'); break; }
    if (l === null) { log('stdin EOF; closing'); break; }
    let m;
    try { m = JSON.parse(l); } catch (_) { log('ignoring non-JSON stdin line'); continue; }
    if (m && m.close) break;
    log('ignoring stdin line:', l.slice(0, 200));
  }
  phase = 'closing';
  await withTimeout(page.evaluate(pageClose), 5000, 'closing pc').catch((e) => log(e.message));
  clearInterval(keepAlive);
  await shutdown(0);
}

process.on('unhandledRejection', (e) => shutdown(1, (e && e.message) || String(e)));
process.on('uncaughtException', (e) => shutdown(1, (e && e.message) || String(e)));
process.on('SIGTERM', () => shutdown(143, 'terminated (SIGTERM)'));
process.on('SIGINT', () => shutdown(130, 'interrupted (SIGINT)'));
// The parent going away must not leave us hanging on a broken pipe.
process.stdout.on('error', () => { finishing = true; process.exit(1); });

main().catch((e) => shutdown(1, (e && e.message) || String(e)));
