//! What `INFO replication` says about a Redis server: its role, its primary and link, its replicas.

/// A server's replication role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Primary,
    /// A replica of `host:port`, with the link to it up or down.
    Replica {
        host: String,
        port: u16,
        link_up: bool,
    },
}

/// One replica as its primary lists it (`slaveN:ip=…,port=…,state=…,offset=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub host: String,
    pub port: u16,
    /// `online` once the initial sync is done.
    pub online: bool,
    pub offset: u64,
}

/// The parsed `INFO replication` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub role: Role,
    /// Replicas connected to this server (a primary's list; empty on most replicas).
    pub replicas: Vec<Replica>,
    /// The replication offset this server has reached.
    pub offset: u64,
}

impl Replication {
    /// Parses `INFO replication` text; `None` when it has no recognisable role.
    pub fn parse(text: &str) -> Option<Replication> {
        let field = |name: &str| super::super::resp::info_field(text, name);
        let role = match field("role")? {
            "master" => Role::Primary,
            "slave" => Role::Replica {
                host: field("master_host").unwrap_or_default().to_string(),
                port: field("master_port").and_then(|p| p.parse().ok()).unwrap_or(0),
                link_up: field("master_link_status") == Some("up"),
            },
            _ => return None,
        };
        let offset = field("master_repl_offset")
            .or_else(|| field("slave_repl_offset"))
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let replicas = text
            .lines()
            .filter(|l| l.starts_with("slave") && l.as_bytes().get(5).is_some_and(u8::is_ascii_digit))
            .filter_map(|l| parse_replica(l.split_once(':')?.1))
            .collect();
        Some(Replication { role, replicas, offset })
    }

    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }
}

fn parse_replica(fields: &str) -> Option<Replica> {
    let mut host = None;
    let mut port = None;
    let mut online = false;
    let mut offset = 0;
    for kv in fields.trim_end().split(',') {
        match kv.split_once('=')? {
            ("ip", v) => host = Some(v.to_string()),
            ("port", v) => port = v.parse().ok(),
            ("state", v) => online = v == "online",
            ("offset", v) => offset = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    Some(Replica { host: host?, port: port?, online, offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_and_replica_sections_parse() {
        let primary = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=r-1.r-endpoints,port=6379,state=online,offset=120,lag=0\r\n\
            slave1:ip=r-2.r-endpoints,port=7000,state=wait_bgsave,offset=0,lag=1\r\n\
            master_failover_state:no-failover\r\nmaster_repl_offset:120\r\n";
        let r = Replication::parse(primary).unwrap();
        assert!(r.is_primary());
        assert_eq!(r.offset, 120);
        assert_eq!(
            r.replicas,
            vec![
                Replica { host: "r-1.r-endpoints".into(), port: 6379, online: true, offset: 120 },
                Replica { host: "r-2.r-endpoints".into(), port: 7000, online: false, offset: 0 },
            ]
        );
        let replica = "role:slave\r\nmaster_host:r-0.r-endpoints\r\nmaster_port:6379\r\nmaster_link_status:down\r\n\
            slave_repl_offset:99\r\nslave_priority:100\r\nslave_read_only:1\r\nconnected_slaves:0\r\n";
        let r = Replication::parse(replica).unwrap();
        assert_eq!(r.role, Role::Replica { host: "r-0.r-endpoints".into(), port: 6379, link_up: false });
        assert_eq!(r.offset, 99);
        assert!(r.replicas.is_empty(), "slave_priority and friends are not replicas");
        assert_eq!(Replication::parse("role:sentinel\r\n"), None);
        assert_eq!(Replication::parse("garbage"), None);
    }
}
