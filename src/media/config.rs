//! What an operator sets for media: where sockets bind, what address to announce, which STUN/TURN
//! servers to use, and how long gathering may take.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub credential: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Local addresses to bind media sockets on. `0.0.0.0` means every non-loopback interface.
    pub bind: Vec<IpAddr>,
    /// Inclusive UDP port range for media sockets (firewall-friendly); `None` = ephemeral.
    pub port_range: Option<(u16, u16)>,
    /// Public addresses to announce instead of the bound ones (1:1 NAT, e.g. a cloud VM).
    pub public_ips: Vec<String>,
    /// STUN/TURN servers. Not needed against WhatsApp (an ICE-lite peer learns our address from our
    /// checks), and never waited for before `pre_accept` beyond `gather_timeout`.
    pub ice_servers: Vec<IceServer>,
    /// Upper bound on waiting for ICE gathering before the SDP is sent anyway.
    pub gather_timeout: Duration,
    /// Act as an ICE-lite agent. Only the sandbox's simulated WhatsApp users do this.
    pub ice_lite: bool,
    /// ICE gives up after this long without connectivity.
    pub ice_failed_timeout: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: vec![IpAddr::from([0, 0, 0, 0])],
            port_range: None,
            public_ips: Vec::new(),
            ice_servers: Vec::new(),
            gather_timeout: Duration::from_secs(2),
            ice_lite: false,
            ice_failed_timeout: Duration::from_secs(10),
        }
    }
}

impl MediaConfig {
    /// Everything on 127.0.0.1: the sandbox and the tests.
    pub fn loopback() -> Self {
        MediaConfig {
            bind: vec![IpAddr::from([127, 0, 0, 1])],
            ..Default::default()
        }
    }
}
