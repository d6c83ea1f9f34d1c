//! The changes collectors sharing one store tell each other about, and their
//! one-line form (a PostgreSQL NOTIFY payload).

/// A change one collector tells the others sharing its store about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A scan was requested for an agent that may be connected elsewhere.
    Scan { agent_id: String, scan_id: String },
    /// An agent enrolled or said hello: its host name and addresses, for searches.
    Agent { agent_id: String },
    /// An agent was revoked: its stream ends and its certificate joins the CRL.
    Revoke { agent_id: String },
    /// An agent's stream was accepted at `since_ms` (the publisher's clock): an
    /// older stream of the agent on another collector ends, as one on the same
    /// collector does, so that an agent holds one stream, and one message budget,
    /// across the fleet.
    Stream { agent_id: String, since_ms: i64 },
    /// The settings changed: read them again.
    Settings,
    /// A certificate was replaced: build the CRL again.
    Crl,
    /// A webhook delivery was queued.
    Webhook,
    /// Events may have been missed: read everything again.
    Resync,
}

impl Event {
    /// The event as one line of text (a NOTIFY payload).
    pub fn encode(&self) -> String {
        match self {
            Event::Scan { agent_id, scan_id } => format!("scan {agent_id} {scan_id}"),
            Event::Agent { agent_id } => format!("agent {agent_id}"),
            Event::Revoke { agent_id } => format!("revoke {agent_id}"),
            Event::Stream { agent_id, since_ms } => format!("stream {agent_id} {since_ms}"),
            Event::Settings => "settings".into(),
            Event::Crl => "crl".into(),
            Event::Webhook => "webhook".into(),
            Event::Resync => "resync".into(),
        }
    }
    /// The event of a line [`Event::encode`] made; `None` for anything else.
    pub fn decode(s: &str) -> Option<Event> {
        let mut w = s.split(' ');
        let e = match (w.next()?, w.next(), w.next()) {
            ("scan", Some(a), Some(sc)) => Event::Scan {
                agent_id: a.into(),
                scan_id: sc.into(),
            },
            ("agent", Some(a), None) => Event::Agent { agent_id: a.into() },
            ("revoke", Some(a), None) => Event::Revoke { agent_id: a.into() },
            ("stream", Some(a), Some(t)) => Event::Stream {
                agent_id: a.into(),
                since_ms: t.parse().ok()?,
            },
            ("settings", None, None) => Event::Settings,
            ("crl", None, None) => Event::Crl,
            ("webhook", None, None) => Event::Webhook,
            ("resync", None, None) => Event::Resync,
            _ => return None,
        };
        w.next().is_none().then_some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn events_read_back_as_written_and_nothing_else_reads() {
        for e in [
            Event::Scan {
                agent_id: "ag-1".into(),
                scan_id: "sc-2".into(),
            },
            Event::Agent {
                agent_id: "ag-1".into(),
            },
            Event::Revoke {
                agent_id: "ag-1".into(),
            },
            Event::Stream {
                agent_id: "ag-1".into(),
                since_ms: 1_796_637_630_000,
            },
            Event::Settings,
            Event::Crl,
            Event::Webhook,
            Event::Resync,
        ] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        for junk in [
            "",
            "scan",
            "scan ag-1",
            "scan ag-1 sc-2 more",
            "revoke",
            "stream ag-1",
            "stream ag-1 soon",
            "settings now",
            "drop table",
        ] {
            assert_eq!(Event::decode(junk), None, "{junk:?}");
        }
    }
}
