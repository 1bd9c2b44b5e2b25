//! Who an edge is, decided by the token it presents, never by what it claims in `hello`.
//!
//! `[[server.edges]]` entries bind a token to a name, a role and rights: an agent's softphone,
//! a bot, or a supervisor (who reads every call's history but takes no calls). Tokens of the
//! older `server.edge_tokens` list still work: such an edge keeps the name and kind it says in
//! `hello` (its name cleaned and capped), may dial, and reads only the calls of the names it used.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::hub_protocol::EdgeKind;
use crate::secret::Secret;

/// Longest edge name kept (names go into edge ids, logs and history).
pub const MAX_NAME: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Bot,
    Supervisor,
}

/// One configured edge (`[[server.edges]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeIdentity {
    pub name: String,
    pub role: Role,
    pub token: Secret,
    pub may_dial: bool,
    /// Calls held at once (default: agents 1, bots `routing.max_calls`).
    pub max_calls: Option<usize>,
}

/// Whom a token belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum Who {
    /// A configured identity.
    Named(EdgeIdentity),
    /// The `n`-th token of `server.edge_tokens`.
    Legacy(usize),
}

/// What a connecting edge is granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub name: String,
    pub kind: EdgeKind,
    pub may_dial: bool,
    pub max_calls: Option<usize>,
}

/// The calls a token may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readable {
    /// A supervisor: every call.
    All,
    /// The calls held by edges of these names.
    Names(Vec<String>),
}

impl Readable {
    /// Whether a call held by `edge` (an edge id, `name-xxxxxxxx`) is readable.
    pub fn covers(&self, edge: Option<&str>) -> bool {
        match self {
            Readable::All => true,
            Readable::Names(names) => edge.is_some_and(|e| {
                names.iter().any(|n| {
                    e.strip_prefix(n.as_str())
                        .is_some_and(|r| r.starts_with('-'))
                })
            }),
        }
    }
}

/// Every token the bridge accepts, and the names legacy tokens have used.
#[derive(Debug, Default)]
pub struct Identities {
    legacy: Vec<Secret>,
    named: Vec<EdgeIdentity>,
    legacy_names: Mutex<HashMap<usize, HashSet<String>>>,
}

/// `name` as an edge name: letters, digits, `-`, `_`, `.`; anything else becomes `_`; capped.
pub fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "edge".to_owned()
    } else {
        cleaned
    }
}

impl Identities {
    pub fn new(legacy: Vec<Secret>, named: Vec<EdgeIdentity>) -> Arc<Identities> {
        Arc::new(Identities {
            legacy,
            named,
            legacy_names: Mutex::new(HashMap::new()),
        })
    }

    /// The owner of `token`. Every configured token is compared, in constant time each, so the
    /// time taken tells nothing about which (or whether one) matched.
    pub fn who(&self, token: &str) -> Option<Who> {
        let mut found = None;
        for (i, t) in self.legacy.iter().enumerate() {
            if t.matches(token) && found.is_none() {
                found = Some(Who::Legacy(i));
            }
        }
        for id in &self.named {
            if id.token.matches(token) && found.is_none() {
                found = Some(Who::Named(id.clone()));
            }
        }
        found
    }

    /// What an edge that said `hello` with `token`, `name` and `kind` may be; `Err` says why it
    /// is refused.
    pub fn admit(&self, token: &str, name: &str, kind: EdgeKind) -> Result<Grant, &'static str> {
        match self.who(token) {
            None => Err("invalid edge token"),
            Some(Who::Named(id)) => {
                let kind = match id.role {
                    Role::Agent => EdgeKind::Agent,
                    Role::Bot => EdgeKind::Bot,
                    Role::Supervisor => {
                        return Err("a supervisor token reads history; it does not take calls");
                    }
                };
                Ok(Grant {
                    name: id.name,
                    kind,
                    may_dial: id.may_dial,
                    max_calls: id.max_calls,
                })
            }
            Some(Who::Legacy(i)) => {
                let name = clean_name(name);
                if let Ok(mut names) = self.legacy_names.lock() {
                    let used = names.entry(i).or_default();
                    // A token cycling through names cannot grow this without bound.
                    if used.len() < 64 {
                        used.insert(name.clone());
                    }
                }
                Ok(Grant {
                    name,
                    kind,
                    may_dial: true,
                    max_calls: None,
                })
            }
        }
    }

    /// Whose calls `token` may read in `/calls`; `None` when the token is not ours.
    pub fn readable(&self, token: &str) -> Option<Readable> {
        Some(match self.who(token)? {
            Who::Named(id) if id.role == Role::Supervisor => Readable::All,
            Who::Named(id) => Readable::Names(vec![id.name]),
            Who::Legacy(i) => Readable::Names(
                self.legacy_names
                    .lock()
                    .ok()
                    .and_then(|n| n.get(&i).map(|s| s.iter().cloned().collect()))
                    .unwrap_or_default(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Arc<Identities> {
        Identities::new(
            vec![Secret::new("legacy-1")],
            vec![
                EdgeIdentity {
                    name: "ana".into(),
                    role: Role::Agent,
                    token: Secret::new("tok-ana"),
                    may_dial: false,
                    max_calls: None,
                },
                EdgeIdentity {
                    name: "qa".into(),
                    role: Role::Supervisor,
                    token: Secret::new("tok-qa"),
                    may_dial: false,
                    max_calls: None,
                },
            ],
        )
    }

    #[test]
    fn the_token_decides_name_and_kind_not_hello() {
        let ids = ids();
        let g = ids.admit("tok-ana", "serve-bot", EdgeKind::Bot).unwrap();
        assert_eq!(
            (g.name.as_str(), g.kind, g.may_dial),
            ("ana", EdgeKind::Agent, false)
        );
        assert!(ids.admit("tok-qa", "qa", EdgeKind::Agent).is_err());
        assert!(ids.admit("nope", "ana", EdgeKind::Agent).is_err());
        assert!(ids.admit("", "ana", EdgeKind::Agent).is_err());
    }

    #[test]
    fn readers_see_their_own_calls_and_supervisors_all() {
        let ids = ids();
        assert_eq!(ids.readable("tok-qa"), Some(Readable::All));
        assert_eq!(
            ids.readable("tok-ana"),
            Some(Readable::Names(vec!["ana".into()]))
        );
        assert_eq!(ids.readable("legacy-1"), Some(Readable::Names(vec![])));
        ids.admit("legacy-1", "desk 4", EdgeKind::Agent).unwrap();
        assert_eq!(
            ids.readable("legacy-1"),
            Some(Readable::Names(vec!["desk_4".into()]))
        );
        assert_eq!(ids.readable("x"), None);
    }

    #[test]
    fn names_are_cleaned_and_capped() {
        assert_eq!(clean_name("bot/../x\u{7}"), "bot_.._x");
        assert_eq!(clean_name(""), "edge");
        assert_eq!(clean_name(&"a".repeat(100)).len(), MAX_NAME);
    }
}
