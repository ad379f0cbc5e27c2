//! 3. Network: the box has an empty network namespace (loopback only). It reaches neither
//!    the host's loopback services (the coderun server itself, a listener the test opens),
//!    nor the outside, nor the host's unix sockets (paths under /run, abstract names), and
//!    socket families outside AF_UNIX/AF_INET/AF_INET6 are refused by seccomp.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use crate::common::*;
use crate::*;

/// argv: server port, host listener port, host non-loopback address or "-", host listener
/// port on that address, host unix socket path, host abstract socket name.
const PY_NET: &str = r#"
import errno, json, os, socket, sys
server_port, host_port, host_ip, host_ip_port, unix_path, abstract = sys.argv[1:7]
res = {}
def name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else repr(e)
def connect(addr, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect(addr)
        return "connected"
    except OSError as e:
        return name(e)
    finally:
        s.close()
res["interfaces"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:])
res["server"] = connect(("127.0.0.1", int(server_port)))
res["host_listener"] = connect(("127.0.0.1", int(host_port)))
res["host_ip"] = connect((host_ip, int(host_ip_port))) if host_ip != "-" else "skipped"
res["outside"] = connect(("10.255.255.1", 80))
res["outside6"] = connect(("2001:db8::1", 80), socket.AF_INET6)
res["unix_path_exists"] = os.path.exists(unix_path)
res["unix_path"] = connect(unix_path, socket.AF_UNIX)
res["unix_abstract"] = connect("\0" + abstract, socket.AF_UNIX)
for fam, typ, label in [(40, socket.SOCK_STREAM, "vsock"), (16, socket.SOCK_RAW, "netlink"),
                        (17, socket.SOCK_RAW, "packet"), (2, socket.SOCK_STREAM, "inet"),
                        (10, socket.SOCK_STREAM, "inet6"), (1, socket.SOCK_STREAM, "unix")]:
    try:
        socket.socket(fam, typ, 0).close()
        res["family_" + label] = "ok"
    except OSError as e:
        res["family_" + label] = name(e)
# Positive control: a server in the box, on the box's own loopback, answers the same program.
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
c = socket.create_connection(ls.getsockname(), timeout=2)
a, _ = ls.accept()
c.sendall(b"ping")
res["box_loopback"] = a.recv(4).decode()
print(json.dumps(res))
"#;

/// Node variant: the server's port is refused, the box's own loopback server answers.
const TS_NET: &str = r#"
import * as net from "net";
const port = Number(process.argv[2]);
const res: Record<string, string> = {};
function connect(p: number, host: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port: p, host });
    s.setTimeout(2000, () => { s.destroy(); resolve("timeout"); });
    s.on("connect", () => { s.destroy(); resolve("connected"); });
    s.on("error", (e: any) => resolve(e.code));
  });
}
(async () => {
  res.server = await connect(port, "127.0.0.1");
  res.outside = await connect(80, "10.255.255.1");
  const srv = net.createServer((c) => { c.end("pong"); });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const p = (srv.address() as net.AddressInfo).port;
  res.box_loopback = await new Promise<string>((resolve) => {
    const c = net.connect({ port: p, host: "127.0.0.1" });
    let got = "";
    c.on("data", (d) => { got += d.toString(); });
    c.on("end", () => resolve(got));
    c.on("error", (e: any) => resolve("error " + e.code));
  });
  srv.close();
  console.log(JSON.stringify(res));
})();
"#;

fn server_port(s: &Server) -> String {
    s.base.rsplit(':').next().expect("port").to_string()
}

/// The host's address on its default route, if it has one (not loopback).
fn host_outbound_ip() -> Option<std::net::IpAddr> {
    let u = UdpSocket::bind("0.0.0.0:0").ok()?;
    u.connect("10.255.255.1:80").ok()?;
    let ip = u.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// No new connection is waiting on a host listener (nothing from the box got through).
fn assert_no_connection(what: &str, accept: impl FnOnce() -> std::io::Result<()>) {
    match accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("{what}: a connection reached the host listener: {other:?}"),
    }
}

/// Reaching host services from the box (SSRF to the service's own API or metadata-style
/// endpoints, lateral movement, exfiltration): only `lo` exists; the coderun server's port and
/// a host loopback listener are refused; a non-loopback address (the outside, and the host's
/// own address) is unreachable; a host unix socket under /run and a host abstract unix socket
/// are not reachable. AF_VSOCK, AF_NETLINK and AF_PACKET sockets fail with EAFNOSUPPORT.
/// Positive controls: AF_INET/AF_INET6/AF_UNIX sockets open, a TCP server on the box's own
/// 127.0.0.1 answers the same program, and the host listeners accept the host's own
/// connections. Host side: no connection ever arrived on the host listeners.
#[test]
fn python_reaches_no_host_or_outside_network() {
    let s = shared();
    assert_confined(s);
    let tag = nonce();

    let tcp = TcpListener::bind("127.0.0.1:0").expect("host listener");
    let tcp_port = tcp.local_addr().expect("addr").port();
    let outbound = host_outbound_ip();
    let wide = TcpListener::bind("0.0.0.0:0").expect("host listener on all addresses");
    let wide_port = wide.local_addr().expect("addr").port();
    let dir = tempfile::Builder::new()
        .prefix("coderun-escape-")
        .tempdir_in("/run")
        .expect("temp dir under /run");
    let sock_path = dir.path().join("host.sock");
    let unix = UnixListener::bind(&sock_path).expect("host unix socket");
    let abstract_name = format!("coderun-escape-{tag}");
    let abs = UnixListener::bind_addr(
        &SocketAddr::from_abstract_name(abstract_name.as_bytes()).expect("abstract name"),
    )
    .expect("host abstract socket");

    // Positive controls on the host: every listener is reachable from the host itself.
    drop(TcpStream::connect(("127.0.0.1", tcp_port)).expect("host connects to its listener"));
    drop(UnixStream::connect(&sock_path).expect("host connects to its unix socket"));
    drop(
        UnixStream::connect_addr(
            &SocketAddr::from_abstract_name(abstract_name.as_bytes()).expect("name"),
        )
        .expect("host connects to its abstract socket"),
    );
    tcp.accept().expect("accept control");
    unix.accept().expect("accept control");
    abs.accept().expect("accept control");

    let host_ip = outbound.map_or("-".to_string(), |ip| ip.to_string());
    let r = s.run(with(
        py(PY_NET),
        json!({"args": [server_port(s), tcp_port.to_string(), host_ip, wide_port.to_string(),
                        sock_path.to_str().expect("utf-8 path"), abstract_name]}),
    ));
    let res = probe(&r);
    assert_eq!(res["interfaces"], json!(["lo"]), "{res}");
    assert_eq!(res["server"], "ECONNREFUSED", "{res}");
    assert_eq!(res["host_listener"], "ECONNREFUSED", "{res}");
    if outbound.is_some() {
        assert_eq!(res["host_ip"], "ENETUNREACH", "{res}");
    }
    assert_eq!(res["outside"], "ENETUNREACH", "{res}");
    assert_eq!(res["outside6"], "ENETUNREACH", "{res}");
    assert_eq!(res["unix_path_exists"], false, "{res}");
    assert_eq!(res["unix_path"], "ENOENT", "{res}");
    assert_eq!(res["unix_abstract"], "ECONNREFUSED", "{res}");
    for family in ["vsock", "netlink", "packet"] {
        assert_eq!(res[format!("family_{family}")], "EAFNOSUPPORT", "{res}");
    }
    for family in ["inet", "inet6", "unix"] {
        assert_eq!(res[format!("family_{family}")], "ok", "{res}");
    }
    assert_eq!(res["box_loopback"], "ping", "{res}");

    // Host side: nothing from the box arrived.
    for l in [&tcp, &wide] {
        l.set_nonblocking(true).expect("nonblocking");
    }
    unix.set_nonblocking(true).expect("nonblocking");
    abs.set_nonblocking(true).expect("nonblocking");
    assert_no_connection("127.0.0.1 listener", || tcp.accept().map(drop));
    assert_no_connection("0.0.0.0 listener", || wide.accept().map(drop));
    assert_no_connection("unix socket", || unix.accept().map(drop));
    assert_no_connection("abstract socket", || abs.accept().map(drop));
    // And the server whose port the box tried is still serving.
    assert_eq!(s.get("/health").0, 200);
}

/// The same from node: the server's port is refused and the outside unreachable, while a
/// server on the box's own loopback answers.
#[test]
fn typescript_reaches_no_host_network() {
    let s = shared();
    assert_confined(s);
    let r = s.run(with(
        ts(TS_NET),
        json!({"args": [server_port(s)], "timeout": 10}),
    ));
    let res = probe(&r);
    assert_eq!(res["server"], "ECONNREFUSED", "{res}");
    assert_eq!(res["outside"], "ENETUNREACH", "{res}");
    assert_eq!(res["box_loopback"], "pong", "{res}");
}

/// No request field turns the network on: an unknown field such as `"network": true` (or
/// the names other services use) is refused with 422, never ignored; the same request without
/// it runs (positive control).
#[test]
fn no_request_field_enables_network() {
    let s = shared();
    let base = py("print('hi')");
    for (field, value) in [
        ("network", json!(true)),
        ("enable_network", json!(true)),
        ("network_mode", json!("host")),
        ("allow_network", json!(true)),
    ] {
        let (code, body) = s.execute(&with(base.clone(), json!({ field: value })));
        assert_eq!(code, 422, "{field}: {body}");
        assert_eq!(body["code"], "invalid_request", "{field}: {body}");
    }
    let r = s.run(base);
    assert_ok(&r);
    assert_eq!(stdout(&r), "hi\n");
}
