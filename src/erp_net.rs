//! The network side of an ERP connection: finding the port of a named instance through SQL
//! Server Browser, the bounded TCP connect, and the socket options that notice a silently dead
//! server (TCP keepalive, and `TCP_USER_TIMEOUT` on Linux).
//!
//! Named instances (`MSSQL_SERVER=host\INSTANCE`, ADO `Data Source=host\INSTANCE`) are resolved
//! as every SQL Server client does: one SSRP `CLNT_UCAST_INST` datagram (0x04 + instance name)
//! to UDP 1434, answered by `SVR_RESP` (0x05, length, `…;tcp;PORT;…`). A port given explicitly
//! (`host\INSTANCE,PORT`, `MSSQL_PORT`) wins and the browser is not asked. The browser is asked on
//! every new connection, because a dynamic port changes when the instance restarts.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};

/// How long one SSRP request waits for the browser's answer, and how many are sent (UDP may
/// drop one): the whole lookup is bounded by their product.
pub const BROWSER_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(700);
/// SSRP requests sent before giving up.
pub const BROWSER_ATTEMPTS: u32 = 3;

/// TCP keepalive on ERP sockets: first probe after this much silence …
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// … then one probe every …
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// … and the connection is dropped after this many unanswered probes (30 s in all).
pub const KEEPALIVE_RETRIES: u32 = 3;
/// Sent data unacknowledged this long drops the connection (Linux `TCP_USER_TIMEOUT`).
pub const USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the network part of an ERP connection failed. Each message names what was tried.
#[derive(Debug, thiserror::Error)]
pub enum ErpNetError {
    /// The host name does not resolve.
    #[error("cannot resolve SQL Server host {host}: {message}")]
    Resolve { host: String, message: String },
    /// SQL Server Browser did not answer for the instance.
    #[error(
        "SQL Server Browser at {host}:{browser_port} (UDP) did not answer for instance {instance} \
         within {waited_ms} ms: is the SQL Server Browser service running and the instance name \
         right? or give the port (MSSQL_SERVER={host}\\{instance},PORT or MSSQL_PORT)"
    )]
    BrowserSilent {
        host: String,
        instance: String,
        browser_port: u16,
        waited_ms: u128,
    },
    /// SQL Server Browser answered, but not with a TCP port for the instance.
    #[error(
        "SQL Server Browser at {host}:{browser_port} answered for instance {instance} without a \
         TCP port ({answer}): enable TCP/IP for the instance in SQL Server Configuration Manager, \
         or give the port (MSSQL_SERVER={host}\\{instance},PORT)"
    )]
    BrowserNoTcp {
        host: String,
        instance: String,
        browser_port: u16,
        answer: String,
    },
    /// The UDP socket for the browser request could not be used.
    #[error("cannot ask SQL Server Browser at {host}:{browser_port}: {message}")]
    BrowserIo {
        host: String,
        browser_port: u16,
        message: String,
    },
    /// The TCP connection failed or timed out.
    #[error("cannot connect to SQL Server at {addr}: {message}")]
    Connect { addr: String, message: String },
}

/// Where an ERP connection goes: host, the port if known, and the named instance.
#[derive(Debug, Clone)]
pub struct ErpTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port (1433 unless configured).
    pub port: u16,
    /// Whether the port was given explicitly (then the browser is never asked).
    pub port_explicit: bool,
    /// Named instance, if any.
    pub instance: Option<String>,
    /// SQL Server Browser's UDP port (1434; another one only in tests).
    pub browser_port: u16,
}

impl ErpTarget {
    /// True when the TCP port must come from SQL Server Browser.
    pub fn needs_browser(&self) -> bool {
        self.instance.is_some() && !self.port_explicit
    }

    /// `host:port`, `host\INSTANCE` or `host\INSTANCE,port` as the operator wrote it.
    pub fn display(&self) -> String {
        match (&self.instance, self.needs_browser()) {
            (Some(i), true) => format!("{}\\{}", self.host, i),
            (Some(i), false) => format!("{}\\{},{}", self.host, i, self.port),
            (None, _) => format!("{}:{}", self.host, self.port),
        }
    }

    /// The TCP port to connect to: the configured one, or the browser's answer.
    pub async fn resolve_port(&self) -> Result<u16, ErpNetError> {
        match &self.instance {
            Some(instance) if !self.port_explicit => {
                browser_port_of(&self.host, instance, self.browser_port).await
            }
            _ => Ok(self.port),
        }
    }
}

/// Asks SQL Server Browser on `host:browser_port` for the TCP port of `instance`. Bounded by
/// [`BROWSER_ATTEMPTS`] × [`BROWSER_ATTEMPT_TIMEOUT`].
pub async fn browser_port_of(
    host: &str,
    instance: &str,
    browser_port: u16,
) -> Result<u16, ErpNetError> {
    let addr = resolve_one(host, browser_port).await?;
    let io = |e: std::io::Error| ErpNetError::BrowserIo {
        host: host.to_string(),
        browser_port,
        message: e.to_string(),
    };
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(addr).await.map_err(io)?;
    let mut req = Vec::with_capacity(instance.len() + 2);
    req.push(0x04);
    req.extend_from_slice(instance.as_bytes());
    req.push(0x00);
    let mut buf = vec![0u8; 4096];
    let started = std::time::Instant::now();
    for _ in 0..BROWSER_ATTEMPTS {
        // A refused datagram (ICMP port unreachable) shows up as an error on the next
        // send/recv: treat it like silence, the browser is not there.
        if sock.send(&req).await.is_err() {
            tokio::time::sleep(BROWSER_ATTEMPT_TIMEOUT).await;
            continue;
        }
        match tokio::time::timeout(BROWSER_ATTEMPT_TIMEOUT, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let answer = parse_svr_resp(&buf[..n]);
                return match instance_tcp_port(&answer, instance) {
                    Some(p) => Ok(p),
                    None => Err(ErpNetError::BrowserNoTcp {
                        host: host.to_string(),
                        instance: instance.to_string(),
                        browser_port,
                        answer,
                    }),
                };
            }
            Ok(Err(_)) => tokio::time::sleep(BROWSER_ATTEMPT_TIMEOUT).await,
            Err(_) => {}
        }
    }
    Err(ErpNetError::BrowserSilent {
        host: host.to_string(),
        instance: instance.to_string(),
        browser_port,
        waited_ms: started.elapsed().as_millis(),
    })
}

/// The text of an `SVR_RESP` (0x05, u16 LE size, then the data); anything else as lossy text.
pub fn parse_svr_resp(datagram: &[u8]) -> String {
    let data = match datagram {
        [0x05, lo, hi, rest @ ..] => {
            let size = usize::from(u16::from_le_bytes([*lo, *hi]));
            &rest[..size.min(rest.len())]
        }
        other => other,
    };
    String::from_utf8_lossy(data).into_owned()
}

/// The `tcp` port of `instance` in a browser answer
/// (`ServerName;H;InstanceName;I;IsClustered;No;Version;v;tcp;1433;;`, possibly several
/// instances separated by `;;`). Instance names compare case-insensitively, as SQL Server does.
pub fn instance_tcp_port(answer: &str, instance: &str) -> Option<u16> {
    for record in answer.split(";;") {
        let fields: Vec<&str> = record.split(';').collect();
        let value = |key: &str| {
            fields
                .chunks(2)
                .find(|kv| kv.len() == 2 && kv[0].eq_ignore_ascii_case(key))
                .map(|kv| kv[1])
        };
        let name_matches = value("InstanceName")
            .map(|n| n.eq_ignore_ascii_case(instance))
            .unwrap_or(true);
        if name_matches {
            if let Some(p) = value("tcp").and_then(|p| p.trim().parse().ok()) {
                return Some(p);
            }
        }
    }
    None
}

async fn resolve_one(host: &str, port: u16) -> Result<SocketAddr, ErpNetError> {
    let err = |message: String| ErpNetError::Resolve {
        host: host.to_string(),
        message,
    };
    let mut addrs = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host, port)),
    )
    .await
    .map_err(|_| err("no answer from the resolver within 10 s".into()))?
    .map_err(|e| err(e.to_string()))?;
    addrs.next().ok_or_else(|| err("no address".into()))
}

/// Opens the TCP connection to `host:port` within `timeout` (every address the name resolves
/// to is tried in turn) and sets nodelay, keepalive and the user timeout on it.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, ErpNetError> {
    let addr = format!("{host}:{port}");
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| ErpNetError::Connect {
            addr: addr.clone(),
            message: format!("no answer within {} ms", timeout.as_millis()),
        })?
        .map_err(|e| ErpNetError::Connect {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
    configure_socket(&stream).map_err(|e| ErpNetError::Connect {
        addr,
        message: format!("cannot set socket options: {e}"),
    })?;
    Ok(stream)
}

/// nodelay (postings are small request/response batches), keepalive, and on Linux the user
/// timeout: together they turn a peer that vanished without a FIN/RST into an error within
/// about 30 s instead of the kernel's two hours (keepalive) or ~15 minutes (retransmissions).
pub fn configure_socket(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    let ka = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    let ka = ka.with_retries(KEEPALIVE_RETRIES);
    sock.set_tcp_keepalive(&ka)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svr_resp_is_parsed() {
        let data =
            b"ServerName;WINBOX;InstanceName;MIKRO;IsClustered;No;Version;13.0.1601.5;tcp;49813;;";
        let mut dgram = vec![0x05];
        dgram.extend_from_slice(&(data.len() as u16).to_le_bytes());
        dgram.extend_from_slice(data);
        let text = parse_svr_resp(&dgram);
        assert_eq!(instance_tcp_port(&text, "mikro"), Some(49813));
        assert_eq!(instance_tcp_port(&text, "MIKRO"), Some(49813));
    }

    #[test]
    fn several_instances_pick_the_named_one() {
        let text = "ServerName;H;InstanceName;SQLEXPRESS;IsClustered;No;Version;15.0;tcp;50001;;\
                    ServerName;H;InstanceName;İST;IsClustered;No;Version;15.0;tcp;50002;;";
        assert_eq!(instance_tcp_port(text, "SQLEXPRESS"), Some(50001));
        assert_eq!(instance_tcp_port(text, "İST"), Some(50002));
    }

    #[test]
    fn no_tcp_is_none() {
        let text = "ServerName;H;InstanceName;MIKRO;IsClustered;No;Version;15.0;np;\\\\H\\pipe\\sql\\query;;";
        assert_eq!(instance_tcp_port(text, "MIKRO"), None);
    }

    #[test]
    fn display_names_what_is_used() {
        let mut t = ErpTarget {
            host: "winbox".into(),
            port: 1433,
            port_explicit: false,
            instance: Some("MIKRO".into()),
            browser_port: 1434,
        };
        assert!(t.needs_browser());
        assert_eq!(t.display(), "winbox\\MIKRO");
        t.port_explicit = true;
        t.port = 50123;
        assert!(!t.needs_browser());
        assert_eq!(t.display(), "winbox\\MIKRO,50123");
    }
}
