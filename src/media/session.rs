//! One call's WebRTC peer connection (webrtc 0.21), wrapped into what a call needs:
//! offer / answer / apply-answer returning complete SDP, Opus packets out, RTP audio and DTMF in,
//! connection state, stats, and a close that frees the sockets and tasks.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc, watch};
use tracing::{Instrument, debug, info, warn};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT,
};
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState, RTCIceServer,
    RTCPeerConnectionState, RTCSdpType, RTCSessionDescription, Registry, SettingEngineBuilder,
    StatsSelector, register_default_interceptors,
};

use super::config::MediaConfig;
use super::dtmf::DtmfReceiver;
use super::negotiate::{self, AudioCodec, Choice};
use super::packetizer::Packetizer;
use super::remote_sdp::{RemoteAudio, SdpError, check_remote_sdp, sanitize_local_sdp};
use super::rtp_stats::RecvStats;
pub use crate::media_stats::{MediaStats, RecvSummary};

pub use super::negotiate::{DTMF_PT, OPUS_PT};
const NO_PT: u16 = u16::MAX;
/// Bounded queues: a slow consumer loses the oldest audio, it never stalls the network side.
const AUDIO_QUEUE: usize = 256;
const EVENT_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Sdp(#[from] SdpError),
    #[error("WebRTC {step} failed: {source}")]
    WebRtc {
        step: &'static str,
        #[source]
        source: webrtc::error::Error,
    },
    #[error("no free UDP port in {0}..={1} on {2}")]
    NoPort(u16, u16, IpAddr),
    #[error("media not negotiated yet: apply the remote SDP first")]
    NotNegotiated,
    #[error("DTMF: {0}")]
    Dtmf(&'static str),
    #[error("media session is closed")]
    Closed,
}

impl MediaError {
    /// The peer's SDP itself is unusable (no codec we speak, no fingerprint, ...): no other edge
    /// could answer it either.
    pub fn offer_refused(&self) -> bool {
        matches!(self, MediaError::Sdp(_))
    }
}

fn step(step: &'static str) -> impl FnOnce(webrtc::error::Error) -> MediaError {
    move |source| MediaError::WebRtc { step, source }
}

/// Time between ICE connectivity checks while connecting.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Checks sent on a candidate pair before it is given up (28 × 50 ms = webrtc's default 1.4 s).
const ICE_CHECKS_PER_PAIR: u16 = 28;

/// A remote offer checked (with errors that name what is wrong) and parsed for the stack: the
/// pure half of answering, done before a set-up takes its turn.
pub(crate) struct ParsedOffer {
    remote: RemoteAudio,
    /// The offer as the peer sent it, to audit our answer against.
    offer: String,
    desc: RTCSessionDescription,
    /// Candidate attributes kept out of `desc` until [`MediaSession::release_candidates`].
    held: Vec<String>,
}

impl ParsedOffer {
    pub(crate) fn parse(offer: &str) -> Result<Self, MediaError> {
        Self::with_held(offer, offer.to_owned(), Vec::new())
    }

    /// As [`Self::parse`], with the peer's candidates held back. Our ICE agent has nothing to
    /// check until they are released, so no connectivity checks (nor the DTLS handshake that
    /// follows them) take CPU from the set-ups still waiting in a burst. Against WhatsApp's
    /// ICE-lite servers nothing else happens meanwhile: they only ever answer our checks.
    pub(crate) fn parse_holding_candidates(offer: &str) -> Result<Self, MediaError> {
        let mut held = Vec::new();
        let mut rest = String::with_capacity(offer.len());
        for line in offer.split_inclusive('\n') {
            let attr = line.trim_end();
            if let Some(candidate) = attr.strip_prefix("a=") {
                if candidate.starts_with("candidate:") {
                    held.push(candidate.to_owned());
                    continue;
                }
                if candidate == "end-of-candidates" {
                    continue;
                }
            }
            rest.push_str(line);
        }
        Self::with_held(offer, rest, held)
    }

    /// `offer` checked whole; `sdp` (the offer, or the offer without `held`) for the stack.
    /// The stack is shown only the formats wacall chose (`negotiate::for_stack`).
    fn with_held(offer: &str, sdp: String, held: Vec<String>) -> Result<Self, MediaError> {
        let remote = check_remote_sdp(offer)?;
        let sdp = negotiate::for_stack(&sdp, &remote.choice);
        let desc = RTCSessionDescription::offer(sdp).map_err(step("reading the remote offer"))?;
        Ok(ParsedOffer {
            remote,
            offer: offer.to_owned(),
            desc,
            held,
        })
    }
}

/// Connection state as a call cares about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl From<RTCPeerConnectionState> for ConnState {
    fn from(s: RTCPeerConnectionState) -> Self {
        match s {
            RTCPeerConnectionState::Connecting => ConnState::Connecting,
            RTCPeerConnectionState::Connected => ConnState::Connected,
            RTCPeerConnectionState::Disconnected => ConnState::Disconnected,
            RTCPeerConnectionState::Failed => ConnState::Failed,
            RTCPeerConnectionState::Closed => ConnState::Closed,
            _ => ConnState::New,
        }
    }
}

/// One received audio packet, with its arrival time in ms since the session started.
#[derive(Debug, Clone)]
pub struct RtpAudio {
    /// The sender's stream: a change mid-call (a peer restarting its sender) starts a new
    /// sequence and clock, so the receiver resets its jitter buffer and decoder.
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Bytes,
    pub arrival_ms: u64,
}

/// Things the call logic hears from the media side.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    State(ConnState),
    Dtmf(char),
}

/// State shared between the session and the WebRTC driver's callbacks.
struct Shared {
    started: Instant,
    audio_pt: AtomicU16,
    dtmf_pt: AtomicU16,
    unknown_pt: AtomicU64,
    recv: StdMutex<RecvStats>,
    dropped: AtomicU64,
    sent_packets: AtomicU64,
    sent_bytes: AtomicU64,
    /// When ICE and DTLS first came up (unix ms; 0 = not yet): a point of the call's timeline.
    connected_at: AtomicU64,
}

struct Handler {
    shared: Arc<Shared>,
    gathered: watch::Sender<bool>,
    state: watch::Sender<ConnState>,
    audio_tx: mpsc::Sender<RtpAudio>,
    events_tx: mpsc::Sender<MediaEvent>,
    span: tracing::Span,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = ConnState::from(state);
        debug!(parent: &self.span, ?state, "peer connection state");
        if state == ConnState::Connected {
            let now = chrono::Utc::now().timestamp_millis().max(1) as u64;
            let _ = self.shared.connected_at.compare_exchange(
                0,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        let _ = self.state.send(state);
        let _ = self.events_tx.try_send(MediaEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let shared = self.shared.clone();
        let audio_tx = self.audio_tx.clone();
        let events_tx = self.events_tx.clone();
        tokio::spawn(
            async move {
                let mut dtmf = DtmfReceiver::default();
                while let Some(event) = track.poll().await {
                    match event {
                        TrackRemoteEvent::OnRtpPacket(packet) => {
                            let h = &packet.header;
                            let arrival_ms = shared.started.elapsed().as_millis() as u64;
                            let pt = u16::from(h.payload_type);
                            if pt == shared.dtmf_pt.load(Ordering::Relaxed) {
                                if let Some(d) = dtmf.on_packet(h.timestamp, &packet.payload) {
                                    let _ = events_tx.try_send(MediaEvent::Dtmf(d));
                                }
                                continue;
                            }
                            if pt != shared.audio_pt.load(Ordering::Relaxed) {
                                // Comfort noise, RED, an un-negotiated DTMF rate: a decoder fed
                                // these conceals errors 50 times a second.
                                if shared.unknown_pt.fetch_add(1, Ordering::Relaxed) == 0 {
                                    warn!(payload_type = pt, "RTP with a payload type not negotiated; dropping such packets");
                                }
                                continue;
                            }
                            if let Ok(mut recv) = shared.recv.lock() {
                                recv.on_packet(
                                    h.sequence_number,
                                    h.timestamp,
                                    (arrival_ms * 48) as i64,
                                    packet.payload.len(),
                                );
                            }
                            let audio = RtpAudio {
                                ssrc: h.ssrc,
                                seq: h.sequence_number,
                                timestamp: h.timestamp,
                                payload: packet.payload.clone(),
                                arrival_ms,
                            };
                            if audio_tx.try_send(audio).is_err() {
                                shared.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        TrackRemoteEvent::OnEnded => break,
                        _ => {}
                    }
                }
                debug!("remote track ended");
            }
            .instrument(self.span.clone()),
        );
    }
}

/// One call's media. Cheap to share behind an `Arc`.
pub struct MediaSession {
    pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    shared: Arc<Shared>,
    gathered: watch::Receiver<bool>,
    state: watch::Receiver<ConnState>,
    audio_rx: StdMutex<Option<mpsc::Receiver<RtpAudio>>>,
    events_rx: StdMutex<Option<mpsc::Receiver<MediaEvent>>>,
    packetizer: Mutex<Option<Packetizer>>,
    remote: StdMutex<Option<RemoteAudio>>,
    /// The peer's candidates held back by [`ParsedOffer::parse_holding_candidates`].
    held: StdMutex<Vec<String>>,
    /// The codec lines our SDP carries (`negotiate::shape_local`): the peer's choice when
    /// answering, ours when offering.
    local_choice: StdMutex<Option<Choice>>,
    /// The offer we sent on the wire (an answer must pick from it), or the peer's offer we
    /// answered (our answer is audited against it).
    counterpart: StdMutex<Option<String>>,
    gather_timeout: Duration,
    lite: bool,
    span: tracing::Span,
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![],
    }
}

fn opus_codec() -> RTCRtpCodec {
    codec(MIME_TYPE_OPUS, 48_000, 2, negotiate::STACK_OPUS_FMTP)
}

/// Picks a free port in the configured range for `ip` (the stack binds it right after; a
/// collision in between makes `build` fail and we try the next port).
fn candidate_ports(ip: IpAddr, range: Option<(u16, u16)>) -> Vec<SocketAddr> {
    let Some((lo, hi)) = range else {
        return vec![SocketAddr::new(ip, 0)];
    };
    let span = u32::from(hi.saturating_sub(lo)) + 1;
    let start = rand::random::<u32>() % span;
    (0..span)
        .map(|i| lo + ((start + i) % span) as u16)
        .filter(|p| UdpSocket::bind(SocketAddr::new(ip, *p)).is_ok())
        .take(4)
        .map(|p| SocketAddr::new(ip, p))
        .collect()
}

/// Opus at WhatsApp's PT 111 and telephone-event at 126, plus the default interceptors (RTCP
/// reports, NACK) that give the stats their remote-side figures.
fn media_engine() -> Result<(MediaEngine, Registry), MediaError> {
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .map_err(step("registering Opus"))?;
    // Without this the answer silently drops WhatsApp's 126 and keypad presses never arrive.
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codec(MIME_TYPE_TELEPHONE_EVENT, 8_000, 1, "0-15"),
                payload_type: DTMF_PT,
            },
            RtpCodecKind::Audio,
        )
        .map_err(step("registering telephone-event"))?;
    // G.711, for peers without Opus. Our offers list Opus and telephone-event only
    // (`negotiate::our_offer_choice`); answers carry G.711 only when the offer had no Opus.
    for (mime, pt) in [(MIME_TYPE_PCMU, 0), (MIME_TYPE_PCMA, 8)] {
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec(mime, 8_000, 1, ""),
                    payload_type: pt,
                },
                RtpCodecKind::Audio,
            )
            .map_err(step("registering G.711"))?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)
        .map_err(step("registering interceptors"))?;
    Ok((media_engine, registry))
}

/// WhatsApp's lite peer names its audio section `audio`. webrtc 0.21 only makes numeric mids (its
/// mid generator is not wired up) and refuses a munged local SDP, so the simulated user renames
/// the mid on the wire only: a business answer that copes only with numeric mids then fails in
/// the sandbox as it would against WhatsApp.
fn rename_mid(sdp: &str, from: &str, to: &str) -> String {
    sdp.replace(&format!("a=mid:{from}\r\n"), &format!("a=mid:{to}\r\n"))
        .replace(
            &format!("a=group:BUNDLE {from}\r\n"),
            &format!("a=group:BUNDLE {to}\r\n"),
        )
}

/// One DTLS certificate per process, renewed daily. Generating a key pair and signing a
/// certificate for every call is the largest single cost of setting a call up; browsers reuse one
/// certificate per origin in the same way, and the fingerprint still travels in every SDP.
fn process_certificate() -> Option<RTCCertificate> {
    const RENEW: Duration = Duration::from_secs(24 * 3600);
    static CERT: StdMutex<Option<(Instant, RTCCertificate)>> = StdMutex::new(None);
    let mut slot = CERT.lock().ok()?;
    if let Some((made, cert)) = slot.as_ref()
        && made.elapsed() < RENEW
    {
        return Some(cert.clone());
    }
    let made = rtc::crypto::default_provider().ok().and_then(|provider| {
        RTCCertificate::generate(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            CertificateParams::new(vec!["wacall".to_owned()]).ok()?,
        )
        .ok()
    });
    match made {
        Some(cert) => {
            *slot = Some((Instant::now(), cert.clone()));
            Some(cert)
        }
        None => {
            // The stack then generates one per call, as it does by default.
            warn!("cannot generate the process DTLS certificate; one per call instead");
            None
        }
    }
}

impl MediaSession {
    /// Builds the peer connection with one Opus track (sendrecv) and telephone-event.
    pub async fn new(cfg: &MediaConfig, call_id: &str) -> Result<Arc<Self>, MediaError> {
        let media = Self::unassigned(cfg).await?;
        media.assign(call_id);
        Ok(media)
    }

    /// A session not yet given to a call (see `media::pool`): its span gets the call id later.
    pub(crate) async fn unassigned(cfg: &MediaConfig) -> Result<Arc<Self>, MediaError> {
        let span = tracing::info_span!("media", call_id = tracing::field::Empty);
        let loopback = cfg.bind.iter().any(IpAddr::is_loopback);
        let mut settings = SettingEngineBuilder::new()
            // WhatsApp documents `a=setup:active` from the business when it answers an offer.
            .with_answering_dtls_role(RTCDtlsRole::Client)
            .with_lite(cfg.ice_lite)
            // mDNS would multicast on the LAN and WhatsApp cannot resolve `.local` candidates.
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(loopback)
            .with_ice_timeouts(
                Some(cfg.ice_failed_timeout / 2),
                Some(cfg.ice_failed_timeout),
                Some(Duration::from_secs(2)),
            )
            // Checks go out a tick apart and the controlling side nominates on the tick after
            // its first success, so at the default 200 ms a call's media connected 400 ms after
            // its answer (measured by the load test), later than the bot's default accept at
            // 300 ms. RFC 8445's pacing is 50 ms; a pair is still given up after 1.4 s.
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_CHECKS_PER_PAIR));
        if !cfg.public_ips.is_empty() {
            settings = settings.with_nat_1to1_ips(
                cfg.public_ips.clone(),
                rtc::peer_connection::transport::RTCIceCandidateType::Host,
            );
        }
        let settings = settings.build();
        let ice_servers = cfg
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect();
        let mut configuration = RTCConfigurationBuilder::new().with_ice_servers(ice_servers);
        if let Some(cert) = process_certificate() {
            configuration = configuration.with_certificates(vec![cert]);
        }
        let configuration = configuration.build();

        let shared = Arc::new(Shared {
            started: Instant::now(),
            audio_pt: AtomicU16::new(NO_PT),
            dtmf_pt: AtomicU16::new(NO_PT),
            unknown_pt: AtomicU64::new(0),
            recv: StdMutex::new(RecvStats::default()),
            dropped: AtomicU64::new(0),
            sent_packets: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            connected_at: AtomicU64::new(0),
        });
        let (gathered_tx, gathered) = watch::channel(false);
        let (state_tx, state) = watch::channel(ConnState::New);
        let (audio_tx, audio_rx) = mpsc::channel(AUDIO_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let handler = Arc::new(Handler {
            shared: shared.clone(),
            gathered: gathered_tx,
            state: state_tx,
            audio_tx,
            events_tx,
            span: span.clone(),
        });

        // One attempt per candidate address set; with a port range a race with another process
        // for the same port just moves on to the next port.
        let mut attempts: Vec<Vec<SocketAddr>> = Vec::new();
        let per_ip: Vec<Vec<SocketAddr>> = cfg
            .bind
            .iter()
            .map(|ip| candidate_ports(*ip, cfg.port_range))
            .collect();
        for i in 0..per_ip.iter().map(Vec::len).max().unwrap_or(0) {
            attempts.push(per_ip.iter().filter_map(|v| v.get(i).copied()).collect());
        }
        if attempts.is_empty() {
            let ip = cfg
                .bind
                .first()
                .copied()
                .unwrap_or(IpAddr::from([0, 0, 0, 0]));
            let (lo, hi) = cfg.port_range.unwrap_or((0, 0));
            return Err(MediaError::NoPort(lo, hi, ip));
        }
        let mut last_err = None;
        let mut pc = None;
        for addrs in attempts {
            // The interceptor registry is consumed by a build, so each attempt gets a fresh pair.
            let (media_engine, registry) = media_engine()?;
            let built = PeerConnectionBuilder::new()
                .with_configuration(configuration.clone())
                .with_media_engine(media_engine)
                .with_setting_engine(settings.clone())
                .with_interceptor_registry(registry)
                .with_handler(handler.clone())
                .with_udp_addrs(addrs)
                .build()
                .await;
            match built {
                Ok(p) => {
                    pc = Some(p);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let pc: Arc<dyn PeerConnection> = match (pc, last_err) {
            (Some(pc), _) => Arc::new(pc),
            (None, Some(e)) => return Err(step("binding media sockets")(e)),
            (None, None) => return Err(MediaError::Closed),
        };

        let ssrc: u32 = rand::random();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("wacall-{ssrc:08x}"),
            "audio".to_owned(),
            "wacall audio".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                // Left empty on purpose: a codec here would restrict the m-line to Opus alone and
                // drop telephone-event from our offers. Payload types are checked per packet.
                codec: RTCRtpCodec::default(),
                ..Default::default()
            }],
        )));
        pc.add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(step("adding the audio track"))?;
        Ok(Arc::new(MediaSession {
            pc,
            track,
            ssrc,
            shared,
            gathered,
            state,
            audio_rx: StdMutex::new(Some(audio_rx)),
            events_rx: StdMutex::new(Some(events_rx)),
            packetizer: Mutex::new(None),
            remote: StdMutex::new(None),
            held: StdMutex::new(Vec::new()),
            local_choice: StdMutex::new(None),
            counterpart: StdMutex::new(None),
            gather_timeout: cfg.gather_timeout,
            lite: cfg.ice_lite,
            span,
        }))
    }

    /// Names the call this session serves (in its log span).
    pub(crate) fn assign(&self, call_id: &str) {
        self.span.record("call_id", call_id);
        info!(parent: &self.span, "media session created");
    }

    /// Waits (bounded) for ICE gathering and returns our complete local SDP.
    pub(crate) async fn local_sdp_after_gathering(&self) -> Result<String, MediaError> {
        let mut gathered = self.gathered.clone();
        let waited = tokio::time::timeout(self.gather_timeout, gathered.wait_for(|g| *g))
            .await
            .map(|r| r.is_ok());
        if waited.is_err() {
            warn!(parent: &self.span, timeout = ?self.gather_timeout, "ICE gathering incomplete; sending the candidates we have");
        }
        let desc = self
            .pc
            .local_description()
            .await
            .ok_or(MediaError::Closed)?;
        let sdp = sanitize_local_sdp(&desc.sdp);
        let choice = self.local_choice.lock().ok().and_then(|c| c.clone());
        let Some(choice) = choice else {
            return Ok(sdp);
        };
        let sdp = negotiate::shape_local(&sdp, &choice);
        // Answering: check what we send against the peer's offer, by the same rules the corpus
        // test applies. A broken answer would mean a silent call: say so loudly.
        if desc.sdp_type == RTCSdpType::Answer
            && let Some(offer) = self.counterpart.lock().ok().and_then(|c| c.clone())
        {
            let problems = negotiate::audit_answer(&offer, &sdp);
            if !problems.is_empty() {
                warn!(parent: &self.span, ?problems, "our answer breaks the negotiation rules");
            }
        }
        Ok(sdp)
    }

    /// A new session that answers `offer`: the whole inbound set-up. A session whose answer
    /// fails is closed here, so no caller leaks its socket.
    pub async fn answering(
        cfg: &MediaConfig,
        call_id: &str,
        offer: &str,
    ) -> Result<(Arc<Self>, String), MediaError> {
        MediaSession::new(cfg, call_id)
            .await?
            .answering_with(offer)
            .await
    }

    /// Answers `offer` on this (new) session, closing it if that fails.
    async fn answering_with(
        self: Arc<Self>,
        offer: &str,
    ) -> Result<(Arc<Self>, String), MediaError> {
        let answer = self.close_on_error(self.answer(offer).await).await?;
        Ok((self, answer))
    }

    /// `result`, with this session closed first when it is an error: a set-up that fails part
    /// way leaks no socket.
    pub(crate) async fn close_on_error<T>(
        &self,
        result: Result<T, MediaError>,
    ) -> Result<T, MediaError> {
        if result.is_err() {
            self.close().await;
        }
        result
    }

    /// A new session with its offer: the whole outbound set-up (closed again on failure).
    pub async fn offering(
        cfg: &MediaConfig,
        call_id: &str,
    ) -> Result<(Arc<Self>, String), MediaError> {
        let media = MediaSession::new(cfg, call_id).await?;
        let offer = media.close_on_error(media.create_offer().await).await?;
        Ok((media, offer))
    }

    /// Builds an offer (business-initiated call) with ICE gathered: Opus at 111 and
    /// telephone-event/8000 at 126 (`negotiate::our_offer_choice`).
    pub async fn create_offer(&self) -> Result<String, MediaError> {
        if let Ok(mut c) = self.local_choice.lock() {
            *c = Some(negotiate::our_offer_choice());
        }
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(step("creating the offer"))?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(step("applying our offer"))?;
        let sdp = self.local_sdp_after_gathering().await?;
        let sdp = if self.lite {
            rename_mid(&sdp, "0", "audio")
        } else {
            sdp
        };
        if let Ok(mut c) = self.counterpart.lock() {
            *c = Some(sdp.clone());
        }
        Ok(sdp)
    }

    /// Answers a remote offer (user-initiated call) with ICE gathered.
    pub async fn answer(&self, remote_offer: &str) -> Result<String, MediaError> {
        self.apply_offer(ParsedOffer::parse(remote_offer)?).await?;
        self.local_sdp_after_gathering().await
    }

    /// Applies a parsed offer and our answer to it: the only part of answering that must run in
    /// arrival order (see `media::pool`). Our answer SDP comes from
    /// [`Self::local_sdp_after_gathering`] after.
    pub(crate) async fn apply_offer(&self, offer: ParsedOffer) -> Result<(), MediaError> {
        self.pc
            .set_remote_description(offer.desc)
            .await
            .map_err(step("applying the remote offer"))?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(step("creating the answer"))?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(step("applying our answer"))?;
        if let Ok(mut held) = self.held.lock() {
            *held = offer.held;
        }
        if let Ok(mut c) = self.local_choice.lock() {
            *c = Some(offer.remote.choice.clone());
        }
        if let Ok(mut c) = self.counterpart.lock() {
            *c = Some(offer.offer);
        }
        self.negotiated(offer.remote).await;
        Ok(())
    }

    /// Gives ICE the candidates held back from the offer, so connectivity checks start now.
    pub(crate) async fn release_candidates(&self) {
        let held = match self.held.lock() {
            Ok(mut h) => std::mem::take(&mut *h),
            Err(_) => return,
        };
        if held.is_empty() {
            return;
        }
        let mid = self.remote_audio().and_then(|r| r.mid);
        for candidate in held {
            let init = RTCIceCandidateInit {
                candidate,
                sdp_mid: mid.clone(),
                sdp_mline_index: Some(0),
                ..Default::default()
            };
            if let Err(e) = self.pc.add_ice_candidate(init).await {
                warn!(parent: &self.span, error = %e, "cannot add a remote candidate");
            }
        }
        // Adding a UDP candidate does not wake the connection's driver, which would then start
        // checking only at its next tick (up to one check interval later). Re-applying the
        // unchanged configuration is an event the driver wakes for.
        let cfg = self.pc.get_configuration().await;
        if let Err(e) = self.pc.set_configuration(cfg).await {
            debug!(parent: &self.span, error = %e, "cannot wake the ICE agent; it checks at its next tick");
        }
        debug!(parent: &self.span, "connectivity checks released");
    }

    /// Records that the offer the peer got is `wire_offer` (the sandbox's simulated user sends
    /// another stack's codec section, `negotiate::impose_codecs`): its answer must pick from it.
    pub fn offered_as(&self, wire_offer: String) {
        if let Ok(mut c) = self.counterpart.lock() {
            *c = Some(wire_offer);
        }
    }

    /// Applies the remote answer to our offer.
    pub async fn apply_answer(&self, remote_answer: &str) -> Result<RemoteAudio, MediaError> {
        let mut remote = check_remote_sdp(remote_answer)?;
        // The answer may list more than we offered (Meta's sample lists `111 9 0 8 110 126`);
        // we take from it only what our offer had.
        if let Some(offer) = self.counterpart.lock().ok().and_then(|c| c.clone()) {
            remote.choice = Choice::from_answer(remote_answer, &offer).map_err(SdpError::from)?;
        }
        let remote_answer = &negotiate::for_stack(remote_answer, &remote.choice);
        let renamed;
        let remote_answer = if self.lite {
            renamed = rename_mid(remote_answer, "audio", "0");
            renamed.as_str()
        } else {
            remote_answer
        };
        let desc = RTCSessionDescription::answer(remote_answer.to_owned())
            .map_err(step("reading the remote answer"))?;
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(step("applying the remote answer"))?;
        self.negotiated(remote.clone()).await;
        Ok(remote)
    }

    async fn negotiated(&self, remote: RemoteAudio) {
        info!(parent: &self.span, codec = %remote.codec(), audio_pt = remote.audio_pt(), dtmf_pt = ?remote.dtmf_pt(), ice_lite = remote.ice_lite, fmtp = %remote.audio_fmtp(), "remote audio negotiated");
        if let Some(conflict) = remote.choice.ptime_conflict() {
            warn!(parent: &self.span, %conflict, "we send 20 ms packets regardless");
        }
        self.shared
            .audio_pt
            .store(u16::from(remote.audio_pt()), Ordering::Relaxed);
        self.shared
            .dtmf_pt
            .store(remote.dtmf_pt().map_or(NO_PT, u16::from), Ordering::Relaxed);
        *self.packetizer.lock().await = Some(Packetizer::new(
            remote.codec().ts_per_packet(),
            remote.audio_pt(),
            remote.dtmf_pt().map(|pt| (pt, remote.choice.dtmf_clock())),
        ));
        if let Ok(mut r) = self.remote.lock() {
            *r = Some(remote);
        }
    }

    /// The call's audio codec, once negotiated.
    pub fn audio_codec(&self) -> Option<AudioCodec> {
        self.remote
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(RemoteAudio::codec))
    }

    /// What the remote SDP told us (codec parameters to honour), once negotiated.
    pub fn remote_audio(&self) -> Option<RemoteAudio> {
        self.remote.lock().ok().and_then(|r| r.clone())
    }

    /// Sends one 20 ms slot: the Opus `payload`, or a queued DTMF packet in its place.
    pub async fn send_opus(&self, payload: Bytes) -> Result<(), MediaError> {
        let out = {
            let mut p = self.packetizer.lock().await;
            p.as_mut().ok_or(MediaError::NotNegotiated)?.next(payload)
        };
        let len = out.payload.len();
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: out.marker,
                payload_type: out.payload_type,
                sequence_number: out.sequence,
                timestamp: out.timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: out.payload,
        };
        self.track
            .write_rtp(packet)
            .await
            .map_err(step("sending RTP"))?;
        self.shared.sent_packets.fetch_add(1, Ordering::Relaxed);
        self.shared
            .sent_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Queues a DTMF key press (RFC 4733); it goes out in the next `send_opus` slots.
    pub async fn send_dtmf(&self, digit: char) -> Result<(), MediaError> {
        let mut p = self.packetizer.lock().await;
        p.as_mut()
            .ok_or(MediaError::NotNegotiated)?
            .queue_dtmf(digit)
            .map_err(MediaError::Dtmf)
    }

    /// The received audio packets. Can be taken once.
    pub fn take_audio(&self) -> Option<mpsc::Receiver<RtpAudio>> {
        self.audio_rx.lock().ok()?.take()
    }

    /// State changes and DTMF. Can be taken once.
    pub fn take_events(&self) -> Option<mpsc::Receiver<MediaEvent>> {
        self.events_rx.lock().ok()?.take()
    }

    pub fn state(&self) -> ConnState {
        *self.state.borrow()
    }

    /// Waits until connected; fails on `Failed`/`Closed` or after `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), ConnState> {
        let mut state = self.state.clone();
        let r = tokio::time::timeout(
            timeout,
            state.wait_for(|s| {
                matches!(
                    s,
                    ConnState::Connected | ConnState::Failed | ConnState::Closed
                )
            }),
        )
        .await;
        match r {
            Ok(Ok(s)) if *s == ConnState::Connected => Ok(()),
            Ok(Ok(s)) => Err(*s),
            Ok(Err(_)) => Err(ConnState::Closed),
            Err(_) => Err(self.state()),
        }
    }

    /// Milliseconds since this session was created (the clock of `RtpAudio::arrival_ms`).
    pub fn now_ms(&self) -> u64 {
        self.shared.started.elapsed().as_millis() as u64
    }

    /// Audio packets received so far (cheap: no stats report), for the media watchdog.
    pub fn packets_received(&self) -> u64 {
        self.shared.recv.lock().map(|r| r.packets).unwrap_or(0)
    }

    pub async fn stats(&self) -> MediaStats {
        let received = self
            .shared
            .recv
            .lock()
            .map(|r| r.summary(48_000))
            .unwrap_or_default();
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let rtt_ms = report
            .candidate_pairs()
            .filter(|p| p.nominated && p.current_round_trip_time > 0.0)
            .map(|p| p.current_round_trip_time * 1000.0)
            .next();
        MediaStats {
            packets_sent: self.shared.sent_packets.load(Ordering::Relaxed),
            bytes_sent: self.shared.sent_bytes.load(Ordering::Relaxed),
            received,
            rtt_ms,
            dropped_in_queue: self.shared.dropped.load(Ordering::Relaxed),
            unknown_payload_type: self.shared.unknown_pt.load(Ordering::Relaxed),
            playout: Default::default(),
            level_in_dbfs: None,
            level_out_dbfs: None,
            connected_at_ms: Some(self.shared.connected_at.load(Ordering::Relaxed))
                .filter(|&ms| ms > 0),
        }
    }

    /// Closes the peer connection: sockets and the driver task are released.
    pub async fn close(&self) {
        if let Err(e) = self.pc.close().await {
            warn!(parent: &self.span, error = %e, "closing the peer connection");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=ice-lite\r\n\
m=audio 3480 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 127.0.0.1\r\n\
a=candidate:1 1 udp 2122262783 127.0.0.1 3480 typ host\r\n\
a=candidate:2 1 udp 2122262782 127.0.0.2 3480 typ host\r\n\
a=end-of-candidates\r\n\
a=ice-ufrag:Ab12\r\n\
a=ice-pwd:qwertyuiopasdfghjklzxcvb\r\n\
a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
a=setup:actpass\r\n\
a=mid:audio\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn held_candidates_leave_the_rest_of_the_offer_as_it_was() {
        let parsed = ParsedOffer::parse_holding_candidates(OFFER).unwrap();
        assert_eq!(
            parsed.held,
            [
                "candidate:1 1 udp 2122262783 127.0.0.1 3480 typ host",
                "candidate:2 1 udp 2122262782 127.0.0.2 3480 typ host",
            ]
        );
        let kept: Vec<&str> = OFFER
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("a=candidate:") && !l.starts_with("a=end-of-candidates"))
            .collect();
        // What the stack sees: the offer without candidates, reduced to the chosen formats.
        assert_eq!(
            parsed.desc.sdp,
            negotiate::for_stack(&kept.concat(), &parsed.remote.choice)
        );
        assert_eq!(parsed.remote.candidates, 2, "checked before holding");
        assert!(ParsedOffer::parse(OFFER).unwrap().held.is_empty());
    }

    #[tokio::test]
    async fn a_call_with_held_candidates_connects_once_they_are_released() {
        let lite = MediaConfig {
            ice_lite: true,
            ..MediaConfig::loopback()
        };
        let (user, offer) = MediaSession::offering(&lite, "user").await.unwrap();
        let parsed = ParsedOffer::parse_holding_candidates(&offer).unwrap();
        let candidates = offer.matches("a=candidate:").count();
        assert!(candidates > 0, "{offer}");
        assert_eq!(parsed.held.len(), candidates);

        let media = MediaSession::new(&MediaConfig::loopback(), "call")
            .await
            .unwrap();
        media.apply_offer(parsed).await.unwrap();
        let answer = media.local_sdp_after_gathering().await.unwrap();
        user.apply_answer(&answer).await.unwrap();
        assert_eq!(media.held.lock().unwrap().len(), candidates);

        media.release_candidates().await;
        assert!(media.held.lock().unwrap().is_empty());
        media.wait_connected(Duration::from_secs(10)).await.unwrap();
        user.wait_connected(Duration::from_secs(10)).await.unwrap();
        user.close().await;
        media.close().await;
    }
}
