//! A TCP pass-through load balancer for the tests of several collectors: what an
//! operator puts in front of the agents' port. Each connection goes to the first
//! backend, in order, that accepts it; TLS passes through untouched and ends at a
//! collector, so agents keep authenticating with their client certificates.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub struct Balancer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Balancer {
    /// Listens on a free loopback port and forwards to `backends` ("host:port").
    pub fn start(backends: &[&str]) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the balancer");
        let addr = listener.local_addr().unwrap();
        let backends: Vec<String> = backends.iter().map(|b| b.to_string()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let backends = backends.clone();
                thread::spawn(move || {
                    if let Some(server) = first_alive(&backends) {
                        splice(client, server);
                    }
                });
            }
        });
        Balancer { addr, stop }
    }

    /// The URL agents are given: the balancer's, never a collector's.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn first_alive(backends: &[String]) -> Option<TcpStream> {
    backends.iter().find_map(|b| {
        let addr: SocketAddr = b.parse().ok()?;
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()
    })
}

/// Copies bytes both ways until either side closes; a closed side closes the other,
/// as a balancer's connection does when its backend dies.
fn splice(client: TcpStream, server: TcpStream) {
    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    let up = thread::spawn(move || pump(client, server));
    pump(s2, c2);
    let _ = up.join();
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn echo_server(tag: &'static [u8]) -> (String, thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).unwrap();
            s.write_all(tag).unwrap();
            s.write_all(&b).unwrap();
        });
        (addr, h)
    }

    fn ask(b: &Balancer) -> io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(b.addr)?;
        s.write_all(b"hello")?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn connections_go_to_the_first_backend_alive() {
        // A port nobody listens on, then a live one: the dead one is passed over.
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap().to_string();
        drop(dead);
        let (live, h) = echo_server(b"B:");
        let b = Balancer::start(&[&dead_addr, &live]);
        assert_eq!(ask(&b).unwrap(), b"B:hello");
        h.join().unwrap();
    }
}
