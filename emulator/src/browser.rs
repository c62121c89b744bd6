//! A SQL Server Browser responder (SSRP, [MC-SQLR]) for tests: answers `CLNT_UCAST_INST`
//! (0x04 + instance name) with `SVR_RESP` (0x05, u16 LE size, `ServerName;…;tcp;PORT;;`) for the
//! instances it knows, and `CLNT_UCAST_EX` / `CLNT_BCAST_EX` (0x03 / 0x02) with all of them.
//! Like the real service it stays silent for an instance it does not know. It listens on any UDP
//! port, so tests need no privileges and never touch a real browser on 1434.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

/// A running responder; dropping it stops answering.
pub struct BrowserResponder {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BrowserResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `SVR_RESP` datagram describing `instances` (name, TCP port) of server `server`.
pub fn svr_resp(server: &str, instances: &[(String, u16)]) -> Vec<u8> {
    let mut data = String::new();
    for (name, port) in instances {
        data.push_str(&format!(
            "ServerName;{server};InstanceName;{name};IsClustered;No;Version;13.0.1601.5;tcp;{port};;"
        ));
    }
    let mut out = vec![0x05];
    out.extend_from_slice(&(data.len().min(u16::MAX as usize) as u16).to_le_bytes());
    out.extend_from_slice(data.as_bytes());
    out
}

impl BrowserResponder {
    /// Answers on an ephemeral UDP port of 127.0.0.1 for `instances` (name, TCP port).
    pub async fn start(instances: Vec<(String, u16)>) -> std::io::Result<BrowserResponder> {
        Self::start_on(([127, 0, 0, 1], 0).into(), instances).await
    }

    /// Answers on `addr` for `instances`.
    pub async fn start_on(
        addr: SocketAddr,
        instances: Vec<(String, u16)>,
    ) -> std::io::Result<BrowserResponder> {
        let sock = UdpSocket::bind(addr).await?;
        let addr = sock.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let count = requests.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                let answer = match buf[..n] {
                    [0x04, ref name @ ..] => {
                        let name = String::from_utf8_lossy(name);
                        let name = name.trim_end_matches('\0');
                        let found: Vec<(String, u16)> = instances
                            .iter()
                            .filter(|(i, _)| i.eq_ignore_ascii_case(name))
                            .cloned()
                            .collect();
                        (!found.is_empty()).then(|| svr_resp("EMULATOR", &found))
                    }
                    [0x02, ..] | [0x03, ..] => Some(svr_resp("EMULATOR", &instances)),
                    _ => None,
                };
                if let Some(a) = answer {
                    let _ = sock.send_to(&a, from).await;
                }
            }
        });
        Ok(BrowserResponder {
            addr,
            requests,
            task,
        })
    }

    /// The UDP address it answers on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its UDP port (what `MIKRO_SYNC_MSSQL_BROWSER_PORT` must name).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Datagrams received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(port: u16, msg: &[u8]) -> Option<Vec<u8>> {
        let s = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
        s.send_to(msg, ("127.0.0.1", port)).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(std::time::Duration::from_millis(500), s.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf[..n].to_vec())
    }

    #[tokio::test]
    async fn answers_a_known_instance_case_insensitively_and_ignores_others() {
        let b = BrowserResponder::start(vec![("MIKRO".into(), 49813)])
            .await
            .unwrap();
        let a = ask(b.port(), b"\x04mikro\x00").await.expect("an answer");
        assert_eq!(a[0], 0x05);
        let size = u16::from_le_bytes([a[1], a[2]]) as usize;
        let text = String::from_utf8(a[3..3 + size].to_vec()).unwrap();
        assert!(text.contains("InstanceName;MIKRO;"), "{text}");
        assert!(text.ends_with("tcp;49813;;"), "{text}");
        assert!(ask(b.port(), b"\x04SQLEXPRESS").await.is_none());
        assert_eq!(b.requests(), 2);
    }
}
