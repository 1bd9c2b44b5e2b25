// The page side shared by chromium.js and firefox.js: builds a peer connection, optionally
// applies a remote offer, and returns the local description once ICE gathering is complete
// (or after 3 s). Passed to the driver's page.evaluate, so it must stand alone.
'use strict';

async function inPage(remoteOffer) {
  const pc = new RTCPeerConnection(); // no iceServers: host candidates only
  let how;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    for (const t of stream.getAudioTracks()) pc.addTrack(t, stream);
    how = 'getUserMedia (fake device)';
  } catch (e) {
    how = `addTransceiver (getUserMedia failed: ${e})`;
    if (!remoteOffer) pc.addTransceiver('audio', { direction: 'sendrecv' });
  }
  const gathered = new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === 'complete') resolve('complete'); };
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', (ev) => { if (!ev.candidate) resolve('complete (null candidate)'); });
    setTimeout(() => resolve(`timeout 3 s, state ${pc.iceGatheringState}`), 3000);
  });
  if (remoteOffer) {
    await pc.setRemoteDescription({ type: 'offer', sdp: remoteOffer });
    for (const t of pc.getTransceivers()) if (t.direction === 'recvonly') t.direction = 'sendrecv';
    await pc.setLocalDescription(await pc.createAnswer());
  } else {
    await pc.setLocalDescription(await pc.createOffer());
  }
  const complete = await gathered;
  const sdp = pc.localDescription.sdp;
  pc.close();
  return { sdp, how, complete, ua: navigator.userAgent + ' online=' + navigator.onLine };
}

module.exports = { inPage };
