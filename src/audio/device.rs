//! Sound devices through cpal: listing, capture (microphone → 20 ms [`Frame`]s) and playback
//! ([`Frame`]s → speaker).
//!
//! Devices run at whatever rate, channel count and sample format they offer; conversion to and
//! from the internal 48 kHz mono `i16` frame happens here, at the edge.
//!
//! Thread model: a cpal `Stream` is `!Send` on some platforms, so each open device owns one
//! dedicated std thread that builds the stream, keeps it alive, does the resampling and drops
//! it when the device handle is dropped. The handles ([`CaptureDevice`], [`PlaybackDevice`])
//! are therefore `Send + Sync`. The audio callbacks never block on the async side: full queues
//! drop audio instead.
//!
//! A stream error (device unplugged, server gone) never panics: it is logged with
//! `tracing::warn`, reported by `failed()` / `failure()`, and the device goes silent (capture
//! stops producing frames, playback plays nothing) while the call goes on.

use super::frame::{Frame, SAMPLE_RATE};
use super::resample::{FrameAssembler, Resampler, downmix, i16_to_f32, upmix};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig, SupportedStreamConfig};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Frames buffered between the capture thread and the consumer (~400 ms).
pub const CAPTURE_QUEUE_FRAMES: usize = 20;
/// Playback ring buffer length in milliseconds (at the device rate).
pub const PLAYBACK_BUFFER_MS: u32 = 200;
/// How long `open` waits for the device thread to build and start the stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Raw chunks buffered between an audio callback and its device thread.
const CALLBACK_QUEUE: usize = 64;
/// Level reported before any audio went through (digital silence, as [`Frame::level_dbfs`]).
const SILENCE_DBFS: f32 = -96.0;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("audio host unavailable: {0}")]
    Host(String),
    #[error("listing {kind} devices: {cause}")]
    List { kind: Direction, cause: String },
    #[error("no {kind} device named \"{name}\" (available: {})", available_list(.available))]
    NotFound {
        kind: Direction,
        name: String,
        available: Vec<String>,
    },
    #[error("no default {kind} device (is a sound server running? in CI: .ci/audio-setup.sh)")]
    NoDefault { kind: Direction },
    #[error("{kind} device \"{name}\": {cause}")]
    Device {
        kind: Direction,
        name: String,
        cause: String,
    },
}

fn available_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Capture (input) or playback (output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------------

/// One supported configuration range of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRange {
    pub channels: u16,
    pub min_rate: u32,
    pub max_rate: u32,
    /// cpal's sample format name, e.g. `i16`, `f32`.
    pub format: String,
}

/// One device as `wacall devices` shows it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// The name to pass to `open` (for ALSA: the PCM name, e.g. `default`, `hw:CARD=0,DEV=0`).
    pub name: String,
    /// Human-readable description, when the host has one.
    pub description: String,
    pub is_default: bool,
    /// The device's default configuration, if it could be queried.
    pub default_config: Option<ConfigRange>,
    pub configs: Vec<ConfigRange>,
    /// Why the configurations could not be queried (device busy, server not running...).
    pub error: Option<String>,
}

/// Input and output devices of the default host.
#[derive(Debug, Clone)]
pub struct DeviceList {
    pub host: String,
    pub inputs: Vec<DeviceInfo>,
    pub outputs: Vec<DeviceInfo>,
}

/// Lists input and output devices with their supported configurations. Opens each device
/// briefly to query it, so it takes a moment on hosts with many ALSA plugins.
pub fn list_devices() -> Result<DeviceList, DeviceError> {
    let host = cpal::default_host();
    let default_in = host.default_input_device();
    let default_out = host.default_output_device();
    let devices: Vec<cpal::Device> = host
        .devices()
        .map_err(|e| DeviceError::List {
            kind: Direction::Input,
            cause: e.to_string(),
        })?
        .collect();

    let mut list = DeviceList {
        host: host.id().name().to_string(),
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    for (kind, default) in [
        (Direction::Input, &default_in),
        (Direction::Output, &default_out),
    ] {
        let mut candidates: Vec<cpal::Device> = Vec::new();
        // The default device first, even when the host does not enumerate it.
        if let Some(d) = default {
            candidates.push(d.clone());
        }
        for d in &devices {
            if supports(d, kind) && !candidates.contains(d) {
                candidates.push(d.clone());
            }
        }
        for d in candidates {
            let is_default = default.as_ref() == Some(&d);
            let info = describe(&d, kind, is_default);
            // Enumerated devices that cannot open in this direction are not devices of it.
            if !is_default && info.configs.is_empty() && info.error.is_some() && !probable(&d, kind)
            {
                continue;
            }
            match kind {
                Direction::Input => list.inputs.push(info),
                Direction::Output => list.outputs.push(info),
            }
        }
    }
    Ok(list)
}

fn supports(d: &cpal::Device, kind: Direction) -> bool {
    match kind {
        Direction::Input => d.supports_input(),
        Direction::Output => d.supports_output(),
    }
}

/// Hosts that know a device's direction without opening it say so in the description.
fn probable(d: &cpal::Device, kind: Direction) -> bool {
    use cpal::DeviceDirection as D;
    match d.description().map(|desc| desc.direction()) {
        Ok(D::Input) => kind == Direction::Input,
        Ok(D::Output) => kind == Direction::Output,
        _ => false,
    }
}

fn device_name(d: &cpal::Device) -> String {
    d.id()
        .map(|id| id.id().to_owned())
        .unwrap_or_else(|_| d.to_string())
}

fn range_of(c: &cpal::SupportedStreamConfigRange) -> ConfigRange {
    ConfigRange {
        channels: c.channels(),
        min_rate: c.min_sample_rate(),
        max_rate: c.max_sample_rate(),
        format: c.sample_format().to_string(),
    }
}

fn describe(d: &cpal::Device, kind: Direction, is_default: bool) -> DeviceInfo {
    let description = d
        .description()
        .map(|desc| desc.name().to_owned())
        .unwrap_or_default();
    let (configs, default_config) = match kind {
        Direction::Input => (
            d.supported_input_configs().map(|c| c.collect::<Vec<_>>()),
            d.default_input_config().ok(),
        ),
        Direction::Output => (
            d.supported_output_configs().map(|c| c.collect::<Vec<_>>()),
            d.default_output_config().ok(),
        ),
    };
    let default_config = default_config.map(|c| ConfigRange {
        channels: c.channels(),
        min_rate: c.sample_rate(),
        max_rate: c.sample_rate(),
        format: c.sample_format().to_string(),
    });
    let (configs, error) = match configs {
        Ok(c) => (c.iter().map(range_of).collect(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    DeviceInfo {
        name: device_name(d),
        description,
        is_default,
        default_config,
        configs,
        error,
    }
}

impl DeviceInfo {
    /// A one-line summary of the supported configurations: formats, channels, rates.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("unavailable: {e}");
        }
        if self.configs.is_empty() {
            return "no configurations".to_owned();
        }
        let mut formats: Vec<&str> = Vec::new();
        for c in &self.configs {
            if !formats.contains(&c.format.as_str()) {
                formats.push(&c.format);
            }
        }
        let ch_min = self.configs.iter().map(|c| c.channels).min().unwrap_or(0);
        let ch_max = self.configs.iter().map(|c| c.channels).max().unwrap_or(0);
        let r_min = self.configs.iter().map(|c| c.min_rate).min().unwrap_or(0);
        let r_max = self.configs.iter().map(|c| c.max_rate).max().unwrap_or(0);
        let channels = if ch_min == ch_max {
            format!("{ch_min} ch")
        } else {
            format!("{ch_min}-{ch_max} ch")
        };
        let rates = if r_min == r_max {
            format!("{r_min} Hz")
        } else {
            format!("{r_min}-{r_max} Hz")
        };
        let default = self
            .default_config
            .as_ref()
            .map(|c| {
                format!(
                    "; default {} Hz {} ch {}",
                    c.min_rate, c.channels, c.format
                )
            })
            .unwrap_or_default();
        format!("{} | {channels} | {rates}{default}", formats.join(","))
    }
}

impl fmt::Display for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Audio host: {}", self.host)?;
        for (title, devices) in [("Input", &self.inputs), ("Output", &self.outputs)] {
            writeln!(f)?;
            writeln!(f, "{title} devices ({}):", devices.len())?;
            if devices.is_empty() {
                writeln!(f, "  (none)")?;
                continue;
            }
            let name_w = devices
                .iter()
                .map(|d| d.name.chars().count())
                .max()
                .unwrap_or(0)
                .max(4);
            writeln!(f, "    {:<name_w$}  {}", "NAME", "CONFIGS (formats | channels | rates)")?;
            for d in devices {
                let mark = if d.is_default { "*" } else { " " };
                writeln!(f, "  {mark} {:<name_w$}  {}", d.name, d.summary())?;
                if !d.description.is_empty() && d.description != d.name {
                    writeln!(f, "    {:<name_w$}  {}", "", d.description)?;
                }
            }
        }
        write!(f, "\n* = default; pass NAME to select a device")
    }
}

// ---------------------------------------------------------------------------------------------
// Device selection and shared state
// ---------------------------------------------------------------------------------------------

fn find_device(
    host: &cpal::Host,
    name: Option<&str>,
    kind: Direction,
) -> Result<cpal::Device, DeviceError> {
    let default = || match kind {
        Direction::Input => host.default_input_device(),
        Direction::Output => host.default_output_device(),
    };
    let wanted = match name.map(str::trim) {
        None | Some("") => return default().ok_or(DeviceError::NoDefault { kind }),
        Some(n) => n,
    };
    let devices: Vec<cpal::Device> = host
        .devices()
        .map_err(|e| DeviceError::List {
            kind,
            cause: e.to_string(),
        })?
        .filter(|d| supports(d, kind))
        .collect();
    let description = |d: &cpal::Device| d.description().map(|x| x.name().to_owned()).ok();
    // Exact id, then exact description, then case-insensitive either.
    let found = devices
        .iter()
        .find(|d| device_name(d) == wanted)
        .or_else(|| {
            devices
                .iter()
                .find(|d| description(d).as_deref() == Some(wanted))
        })
        .or_else(|| {
            devices.iter().find(|d| {
                device_name(d).eq_ignore_ascii_case(wanted)
                    || description(d).is_some_and(|x| x.eq_ignore_ascii_case(wanted))
            })
        });
    if let Some(d) = found {
        return Ok(d.clone());
    }
    if let Some(d) = default().filter(|d| device_name(d) == wanted) {
        return Ok(d);
    }
    Err(DeviceError::NotFound {
        kind,
        name: wanted.to_owned(),
        available: devices.iter().map(device_name).collect(),
    })
}

/// Formats this module converts; anything else (DSD...) is skipped when choosing a config.
fn known_format(f: SampleFormat) -> bool {
    use SampleFormat as S;
    matches!(
        f,
        S::I8
            | S::I16
            | S::I24
            | S::I32
            | S::I64
            | S::U8
            | S::U16
            | S::U24
            | S::U32
            | S::U64
            | S::F32
            | S::F64
    )
}

/// The device's default config when usable, else its best supported one.
fn choose_config(
    d: &cpal::Device,
    kind: Direction,
    name: &str,
) -> Result<SupportedStreamConfig, DeviceError> {
    let err = |cause: String| DeviceError::Device {
        kind,
        name: name.to_owned(),
        cause,
    };
    let default = match kind {
        Direction::Input => d.default_input_config(),
        Direction::Output => d.default_output_config(),
    };
    let default_err = match default {
        Ok(c) if known_format(c.sample_format()) => return Ok(c),
        Ok(c) => format!("unsupported default sample format {}", c.sample_format()),
        Err(e) => e.to_string(),
    };
    let ranges: Vec<cpal::SupportedStreamConfigRange> = match kind {
        Direction::Input => d.supported_input_configs().map(|r| r.collect()),
        Direction::Output => d.supported_output_configs().map(|r| r.collect()),
    }
    .map_err(|e| err(e.to_string()))?;
    let mut ranges: Vec<_> = ranges
        .into_iter()
        .filter(|r| known_format(r.sample_format()) && r.channels() > 0)
        .collect();
    ranges.sort_by(|a, b| b.cmp_default_heuristics(a));
    ranges
        .into_iter()
        .next()
        .map(|r| {
            r.try_with_sample_rate(SAMPLE_RATE)
                .unwrap_or_else(|| r.with_standard_sample_rate())
        })
        .ok_or_else(|| err(format!("no usable configuration ({default_err})")))
}

/// Failure flag, level meter and counters shared by a handle, its thread and its callbacks.
struct Shared {
    kind: Direction,
    name: String,
    failure: watch::Sender<Option<String>>,
    level_bits: AtomicU32,
    dropped: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn new(kind: Direction, name: String) -> Arc<Self> {
        Arc::new(Shared {
            kind,
            name,
            failure: watch::Sender::new(None),
            level_bits: AtomicU32::new(SILENCE_DBFS.to_bits()),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    fn set_level(&self, dbfs: f32) {
        self.level_bits.store(dbfs.to_bits(), Ordering::Relaxed);
    }

    fn level(&self) -> f32 {
        f32::from_bits(self.level_bits.load(Ordering::Relaxed))
    }

    fn failed(&self) -> bool {
        self.failure.borrow().is_some()
    }

    /// Stream error callback: xruns are glitches, anything else ends the device.
    fn on_stream_error(&self, e: cpal::Error) {
        if e.kind() == cpal::ErrorKind::Xrun {
            tracing::debug!(device = %self.name, kind = %self.kind, "audio xrun: {e}");
            return;
        }
        self.fail(format!("{} device \"{}\": {e}", self.kind, self.name));
    }

    fn fail(&self, msg: String) {
        if self.failed() {
            return;
        }
        tracing::warn!(device = %self.name, kind = %self.kind, "audio device failed: {msg}; continuing silent");
        self.failure.send_replace(Some(msg));
    }
}

/// The dedicated thread that owns a cpal stream; stopping it drops the stream.
struct DeviceThread {
    shared: Arc<Shared>,
    wake: Option<std_mpsc::SyncSender<Msg>>,
    handle: Option<JoinHandle<()>>,
}

enum Msg {
    /// Captured audio: mono, device rate.
    Captured(Vec<f32>),
    /// A frame to play.
    Play(Frame),
    Stop,
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(wake) = self.wake.take() {
            let _ = wake.try_send(Msg::Stop);
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Spawns the device thread, which runs `setup` (build and start the stream) and then `run`;
/// waits until the stream has started or failed to.
fn spawn_device<S, R>(
    shared: Arc<Shared>,
    msg_tx: std_mpsc::SyncSender<Msg>,
    setup: S,
) -> Result<DeviceThread, DeviceError>
where
    S: FnOnce() -> Result<(cpal::Stream, R), DeviceError> + Send + 'static,
    R: FnMut() -> bool + 'static,
{
    let (ready_tx, ready_rx) = std_mpsc::sync_channel::<Result<(), DeviceError>>(1);
    let thread_shared = shared.clone();
    let name = format!("wacall-{}-{}", shared.kind, shared.name);
    let handle = std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            let (stream, mut run) = match setup() {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            drop(ready_tx);
            device_loop(&thread_shared, &mut run);
            drop(stream);
        })
        .map_err(|e| DeviceError::Device {
            kind: shared.kind,
            name: shared.name.clone(),
            cause: format!("spawning the device thread: {e}"),
        })?;
    let mut thread = DeviceThread {
        shared: shared.clone(),
        wake: Some(msg_tx),
        handle: Some(handle),
    };
    match ready_rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            // Either the thread panicked or the backend hangs; do not wait for it on drop.
            shared.stop.store(true, Ordering::SeqCst);
            thread.handle.take();
            Err(DeviceError::Device {
                kind: shared.kind,
                name: shared.name.clone(),
                cause: format!("stream did not start within {OPEN_TIMEOUT:?}"),
            })
        }
    }
}

/// The thread's receive loop; the receiving end lives in `run`, built by `setup`.
fn device_loop<R: FnMut() -> bool>(shared: &Shared, run: &mut R) {
    // `run` handles one message (or a 100 ms timeout) and returns false once told to stop.
    while !shared.stop.load(Ordering::SeqCst) && run() {}
}

// ---------------------------------------------------------------------------------------------
// Capture
// ---------------------------------------------------------------------------------------------

/// An open input device producing 20 ms 48 kHz mono frames.
pub struct CaptureDevice {
    shared: Arc<Shared>,
    config: StreamConfig,
    format: SampleFormat,
    _thread: DeviceThread,
}

impl fmt::Debug for CaptureDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureDevice")
            .field("name", &self.shared.name)
            .field("rate", &self.config.sample_rate)
            .field("channels", &self.config.channels)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl CaptureDevice {
    /// Opens the input device `name` (see [`list_devices`]; `None` = the default device) and
    /// starts capturing. Frames arrive on the returned channel every 20 ms; if the consumer
    /// falls behind by more than [`CAPTURE_QUEUE_FRAMES`], new frames are dropped (counted by
    /// [`CaptureDevice::dropped_frames`]) rather than blocking the audio thread.
    pub fn open(name: Option<&str>) -> Result<(CaptureDevice, mpsc::Receiver<Frame>), DeviceError> {
        let host = cpal::default_host();
        let device = find_device(&host, name, Direction::Input)?;
        let dev_name = device_name(&device);
        let supported = choose_config(&device, Direction::Input, &dev_name)?;
        let config = supported.config();
        let format = supported.sample_format();
        let shared = Shared::new(Direction::Input, dev_name.clone());
        let (frame_tx, frame_rx) = mpsc::channel(CAPTURE_QUEUE_FRAMES);
        let (msg_tx, msg_rx) = std_mpsc::sync_channel::<Msg>(CALLBACK_QUEUE);

        let setup_shared = shared.clone();
        let cb_tx = msg_tx.clone();
        let setup = move || {
            let shared = setup_shared;
            let err = |cause: String| DeviceError::Device {
                kind: Direction::Input,
                name: shared.name.clone(),
                cause,
            };
            let mut resampler = Resampler::new(config.sample_rate, SAMPLE_RATE)
                .map_err(|e| err(e.to_string()))?;
            let stream = build_input(&device, config, format, cb_tx, shared.clone())?;
            stream
                .play()
                .map_err(|e| err(format!("starting the stream: {e}")))?;
            tracing::info!(device = %shared.name, rate = config.sample_rate, channels = config.channels, format = %format, "capture started");
            let mut assembler = FrameAssembler::new();
            let run_shared = shared.clone();
            let run = move || -> bool {
                match msg_rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Msg::Captured(mono)) => {
                        if run_shared.failed() {
                            return true;
                        }
                        assembler.push(&resampler.process(&mono));
                        while let Some(frame) = assembler.pop() {
                            run_shared.set_level(frame.level_dbfs());
                            if frame_tx.try_send(frame).is_err() {
                                run_shared.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        true
                    }
                    Ok(Msg::Play(_)) => true,
                    Ok(Msg::Stop) => false,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => true,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => false,
                }
            };
            Ok((stream, run))
        };
        let thread = spawn_device(shared.clone(), msg_tx, setup)?;
        Ok((
            CaptureDevice {
                shared,
                config,
                format,
                _thread: thread,
            },
            frame_rx,
        ))
    }

    /// The device name (as [`list_devices`] shows it).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The device's native rate, channels and format in use.
    pub fn config(&self) -> (u32, u16, SampleFormat) {
        (self.config.sample_rate, self.config.channels, self.format)
    }

    /// Level of the last captured frame in dBFS (−96 for silence), for meters.
    pub fn level(&self) -> f32 {
        self.shared.level()
    }

    /// `Some(reason)` once the stream failed (device gone...); no frames follow.
    pub fn failed(&self) -> Option<String> {
        self.shared.failure.borrow().clone()
    }

    /// Watch the failure state (`None` while healthy) from async code.
    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.shared.failure.subscribe()
    }

    /// Frames dropped because the consumer did not keep up.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

fn build_input(
    device: &cpal::Device,
    config: StreamConfig,
    format: SampleFormat,
    tx: std_mpsc::SyncSender<Msg>,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, DeviceError> {
    use SampleFormat as S;
    match format {
        S::I8 => input_stream::<i8>(device, config, tx, shared),
        S::I16 => input_stream::<i16>(device, config, tx, shared),
        S::I24 => input_stream::<cpal::I24>(device, config, tx, shared),
        S::I32 => input_stream::<i32>(device, config, tx, shared),
        S::I64 => input_stream::<i64>(device, config, tx, shared),
        S::U8 => input_stream::<u8>(device, config, tx, shared),
        S::U16 => input_stream::<u16>(device, config, tx, shared),
        S::U24 => input_stream::<cpal::U24>(device, config, tx, shared),
        S::U32 => input_stream::<u32>(device, config, tx, shared),
        S::U64 => input_stream::<u64>(device, config, tx, shared),
        S::F32 => input_stream::<f32>(device, config, tx, shared),
        S::F64 => input_stream::<f64>(device, config, tx, shared),
        other => Err(DeviceError::Device {
            kind: Direction::Input,
            name: shared.name.clone(),
            cause: format!("unsupported sample format {other}"),
        }),
    }
}

fn input_stream<T>(
    device: &cpal::Device,
    config: StreamConfig,
    tx: std_mpsc::SyncSender<Msg>,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, DeviceError>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels);
    let cb_shared = shared.clone();
    let err_shared = shared.clone();
    let mut interleaved: Vec<f32> = Vec::new();
    device
        .build_input_stream::<T, _, _>(
            config,
            move |data: &[T], _: &cpal::InputCallbackInfo| {
                interleaved.clear();
                interleaved.extend(data.iter().map(|&s| <f32 as FromSample<T>>::from_sample_(s)));
                let mono = downmix(&interleaved, channels);
                // Never block the audio thread: a full queue loses this chunk.
                if tx.try_send(Msg::Captured(mono)).is_err() {
                    cb_shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
            move |e| err_shared.on_stream_error(e),
            Some(OPEN_TIMEOUT),
        )
        .map_err(|e| DeviceError::Device {
            kind: Direction::Input,
            name: shared.name.clone(),
            cause: format!(
                "building the stream ({} Hz, {} ch, {}): {e}",
                config.sample_rate,
                config.channels,
                T::FORMAT
            ),
        })
}

// ---------------------------------------------------------------------------------------------
// Playback
// ---------------------------------------------------------------------------------------------

/// Interleaved device-rate samples waiting for the output callback.
struct Ring {
    samples: VecDeque<f32>,
    capacity: usize,
    channels: usize,
    underruns: u64,
}

/// An open output device playing 20 ms 48 kHz mono frames.
pub struct PlaybackDevice {
    shared: Arc<Shared>,
    config: StreamConfig,
    format: SampleFormat,
    tx: std_mpsc::SyncSender<Msg>,
    ring: Arc<Mutex<Ring>>,
    _thread: DeviceThread,
}

impl fmt::Debug for PlaybackDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaybackDevice")
            .field("name", &self.shared.name)
            .field("rate", &self.config.sample_rate)
            .field("channels", &self.config.channels)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl PlaybackDevice {
    /// Opens the output device `name` (`None` = the default device) and starts playing
    /// (silence until frames are pushed).
    pub fn open(name: Option<&str>) -> Result<PlaybackDevice, DeviceError> {
        let host = cpal::default_host();
        let device = find_device(&host, name, Direction::Output)?;
        let dev_name = device_name(&device);
        let supported = choose_config(&device, Direction::Output, &dev_name)?;
        let config = supported.config();
        let format = supported.sample_format();
        let shared = Shared::new(Direction::Output, dev_name);
        let channels = usize::from(config.channels.max(1));
        let capacity =
            (config.sample_rate as usize * PLAYBACK_BUFFER_MS as usize / 1000).max(1) * channels;
        let ring = Arc::new(Mutex::new(Ring {
            samples: VecDeque::with_capacity(capacity),
            capacity,
            channels,
            underruns: 0,
        }));
        // Frames waiting for the device thread: one ring's worth.
        let queue = (PLAYBACK_BUFFER_MS / 20) as usize;
        let (msg_tx, msg_rx) = std_mpsc::sync_channel::<Msg>(queue.max(2));

        let setup_shared = shared.clone();
        let setup_ring = ring.clone();
        let setup = move || {
            let shared = setup_shared;
            let ring = setup_ring;
            let err = |cause: String| DeviceError::Device {
                kind: Direction::Output,
                name: shared.name.clone(),
                cause,
            };
            let mut resampler = Resampler::new(SAMPLE_RATE, config.sample_rate)
                .map_err(|e| err(e.to_string()))?;
            let stream = build_output(&device, config, format, ring.clone(), shared.clone())?;
            stream
                .play()
                .map_err(|e| err(format!("starting the stream: {e}")))?;
            tracing::info!(device = %shared.name, rate = config.sample_rate, channels = config.channels, format = %format, "playback started");
            let run_shared = shared.clone();
            let run = move || -> bool {
                match msg_rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Msg::Play(frame)) => {
                        if run_shared.failed() {
                            return true;
                        }
                        let mono = resampler.process(&i16_to_f32(frame.samples()));
                        let out = upmix(&mono, channels);
                        let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
                        ring.samples.extend(out);
                        let excess = ring.samples.len().saturating_sub(ring.capacity);
                        if excess > 0 {
                            // Overrun: drop the oldest whole sample frames.
                            let excess = (excess.div_ceil(ring.channels) * ring.channels)
                                .min(ring.samples.len());
                            ring.samples.drain(..excess);
                            run_shared.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        true
                    }
                    Ok(Msg::Captured(_)) => true,
                    Ok(Msg::Stop) => false,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => true,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => false,
                }
            };
            Ok((stream, run))
        };
        let thread = spawn_device(shared.clone(), msg_tx.clone(), setup)?;
        Ok(PlaybackDevice {
            shared,
            config,
            format,
            tx: msg_tx,
            ring,
            _thread: thread,
        })
    }

    /// Queues a 48 kHz frame for playback. Never blocks: when the device lags far behind, the
    /// frame is dropped; when the buffer overflows, the oldest audio is dropped.
    pub fn push(&self, frame: &Frame) {
        self.shared.set_level(frame.level_dbfs());
        if self.shared.failed() {
            return;
        }
        if self.tx.try_send(Msg::Play(frame.clone())).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The device's native rate, channels and format in use.
    pub fn config(&self) -> (u32, u16, SampleFormat) {
        (self.config.sample_rate, self.config.channels, self.format)
    }

    /// Level of the last pushed frame in dBFS (−96 for silence), for meters.
    pub fn level(&self) -> f32 {
        self.shared.level()
    }

    /// `Some(reason)` once the stream failed (device gone...); pushed frames are then ignored.
    pub fn failed(&self) -> Option<String> {
        self.shared.failure.borrow().clone()
    }

    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.shared.failure.subscribe()
    }

    /// Milliseconds of audio waiting in the ring buffer.
    pub fn buffered_ms(&self) -> u32 {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let frames = ring.samples.len() / ring.channels.max(1);
        (frames as u64 * 1000 / u64::from(self.config.sample_rate.max(1))) as u32
    }

    /// Output callbacks that found the buffer short and played (partly) silence.
    pub fn underruns(&self) -> u64 {
        self.ring.lock().map(|r| r.underruns).unwrap_or(0)
    }

    /// Frames or buffered audio dropped because the device did not keep up.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

fn build_output(
    device: &cpal::Device,
    config: StreamConfig,
    format: SampleFormat,
    ring: Arc<Mutex<Ring>>,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, DeviceError> {
    use SampleFormat as S;
    match format {
        S::I8 => output_stream::<i8>(device, config, ring, shared),
        S::I16 => output_stream::<i16>(device, config, ring, shared),
        S::I24 => output_stream::<cpal::I24>(device, config, ring, shared),
        S::I32 => output_stream::<i32>(device, config, ring, shared),
        S::I64 => output_stream::<i64>(device, config, ring, shared),
        S::U8 => output_stream::<u8>(device, config, ring, shared),
        S::U16 => output_stream::<u16>(device, config, ring, shared),
        S::U24 => output_stream::<cpal::U24>(device, config, ring, shared),
        S::U32 => output_stream::<u32>(device, config, ring, shared),
        S::U64 => output_stream::<u64>(device, config, ring, shared),
        S::F32 => output_stream::<f32>(device, config, ring, shared),
        S::F64 => output_stream::<f64>(device, config, ring, shared),
        other => Err(DeviceError::Device {
            kind: Direction::Output,
            name: shared.name.clone(),
            cause: format!("unsupported sample format {other}"),
        }),
    }
}

fn output_stream<T>(
    device: &cpal::Device,
    config: StreamConfig,
    ring: Arc<Mutex<Ring>>,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, DeviceError>
where
    T: SizedSample + FromSample<f32> + Send + 'static,
{
    let err_shared = shared.clone();
    device
        .build_output_stream::<T, _, _>(
            config,
            move |out: &mut [T], _: &cpal::OutputCallbackInfo| {
                let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
                let n = out.len().min(ring.samples.len());
                for (dst, src) in out.iter_mut().zip(ring.samples.drain(..n)) {
                    *dst = T::from_sample(src);
                }
                if n < out.len() {
                    // Underrun: the rest is silence.
                    for dst in &mut out[n..] {
                        *dst = T::EQUILIBRIUM;
                    }
                    ring.underruns += 1;
                }
            },
            move |e| err_shared.on_stream_error(e),
            Some(OPEN_TIMEOUT),
        )
        .map_err(|e| DeviceError::Device {
            kind: Direction::Output,
            name: shared.name.clone(),
            cause: format!(
                "building the stream ({} Hz, {} ch, {}): {e}",
                config.sample_rate,
                config.channels,
                T::FORMAT
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CaptureDevice>();
        assert_send_sync::<PlaybackDevice>();
    }

    #[test]
    fn not_found_error_names_device_and_alternatives() {
        let e = DeviceError::NotFound {
            kind: Direction::Input,
            name: "foo".into(),
            available: vec!["default".into(), "pulse".into()],
        };
        assert_eq!(
            e.to_string(),
            "no input device named \"foo\" (available: default, pulse)"
        );
    }

    #[test]
    fn summary_merges_ranges() {
        let info = DeviceInfo {
            name: "x".into(),
            description: String::new(),
            is_default: true,
            default_config: None,
            configs: vec![
                ConfigRange {
                    channels: 1,
                    min_rate: 8000,
                    max_rate: 48000,
                    format: "i16".into(),
                },
                ConfigRange {
                    channels: 2,
                    min_rate: 8000,
                    max_rate: 96000,
                    format: "f32".into(),
                },
            ],
            error: None,
        };
        assert_eq!(info.summary(), "i16,f32 | 1-2 ch | 8000-96000 Hz");
    }

}
