//! 8. Isolation between concurrent runs: two runs in flight at once share no file, no process
//!    view and no host uid.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::common::*;
use crate::*;

/// Searches /tmp, /work, /dev/shm (file names and contents), and every readable
/// /proc/*/cmdline and /proc/*/environ for `needle`; returns the hits. `connect` and `shm`
/// probe a TCP port / abstract unix name and a System V shared-memory key.
const PY_COMMON: &str = r#"
import ctypes, errno, json, os, socket, sys, time
port, shm_key, abstract = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
libc = ctypes.CDLL(None, use_errno=True)
def search(needle):
    hits = []
    for top in ("/tmp", "/work", "/dev/shm"):
        for d, dirs, files in os.walk(top):
            for f in files:
                p = os.path.join(d, f)
                if needle in p:
                    hits.append("name " + p)
                try:
                    if needle.encode() in open(p, "rb").read():
                        hits.append("content " + p)
                except OSError:
                    pass
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        for what in ("cmdline", "environ"):
            try:
                if needle.encode() in open("/proc/%s/%s" % (pid, what), "rb").read():
                    hits.append("/proc/%s/%s" % (pid, what))
            except OSError:
                pass
    return hits
def connect(addr, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(addr)
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
def shm(flags):
    ctypes.set_errno(0)
    r = libc.shmget(ctypes.c_int(shm_key), ctypes.c_size_t(4096), ctypes.c_int(flags))
    return "id" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
"#;

/// Run A: writes the secret (from stdin, so it is in no command line) to /work/secret,
/// /tmp/secret and /dev/shm/secret, listens on 127.0.0.1:<port> and an abstract unix name,
/// creates a System V shared-memory segment; checks it reaches all of them itself (positive
/// control) and holds them 2 s.
const PY_A: &str = r#"
secret = sys.stdin.read().strip()
for p in ("/work/secret", "/tmp/secret", "/dev/shm/secret"):
    with open(p, "w") as f:
        f.write(secret)
tcp = socket.socket()
tcp.bind(("127.0.0.1", port))
tcp.listen(8)
uds = socket.socket(socket.AF_UNIX)
uds.bind("\0" + abstract)
uds.listen(8)
created = shm(0o1000 | 0o666)  # IPC_CREAT
print(json.dumps({"uid": os.getuid(), "own_hits": search(secret), "shm_created": created,
                  "own_shm": shm(0), "own_tcp": connect(("127.0.0.1", port)),
                  "own_abstract": connect("\0" + abstract, socket.AF_UNIX)}), flush=True)
time.sleep(2)
"#;

/// Run B: searches for A's secret and tries A's port, abstract socket and shared memory;
/// plants and finds a marker of its own and binds A's port itself (positive controls: the
/// search works, and the port is free in B's own network namespace); holds 1 s so the host
/// sees both runs at once.
const PY_B: &str = r#"
secret = sys.stdin.read().strip()
res = {"uid": os.getuid(), "hits": search(secret), "tcp": connect(("127.0.0.1", port)),
       "abstract": connect("\0" + abstract, socket.AF_UNIX), "shm": shm(0)}
marker = "b-marker-" + secret[::-1]
with open("/tmp/mine", "w") as f:
    f.write(marker)
res["own_hits"] = search(marker)
mine = socket.socket()
try:
    mine.bind(("127.0.0.1", port))
    res["own_bind"] = "bound"
except OSError as e:
    res["own_bind"] = errno.errorcode.get(e.errno, str(e.errno))
res["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps(res), flush=True)
time.sleep(1)
"#;

/// Cross-run data theft (one user's submission reading another's files or secrets, e.g.
/// through a shared /tmp, /proc, loopback, IPC, or the same host uid): run A writes a secret
/// nonce to /work/secret, /tmp/secret and /dev/shm/secret and sleeps 2 s; run B starts 0.5 s later and finds the nonce
/// nowhere (/tmp, /work, /dev/shm, /proc/*/cmdline, /proc/*/environ), sees only its own two
/// pids, and reaches neither A's 127.0.0.1 listener, A's abstract unix socket nor A's System V
/// shared memory. Positive controls: A's search finds the secret where A wrote it and A
/// reaches its own listeners and segment; B's search finds B's own marker and B can bind A's
/// port in its own network namespace.
/// Host side, while both run: their processes have two distinct host uids, both in the box
/// range, while each sees itself as uid 1000.
#[test]
fn concurrent_runs_share_no_files_processes_or_host_uid() {
    let s = secret_server();
    assert_confined(s);
    let secret = format!("isolation-{}", nonce());
    let tag = nonce();
    let tag_a = format!("iso-a-{tag}");
    let tag_b = format!("iso-b-{tag}");
    let abstract_name = format!("iso-{tag}");
    // A port and a System V key from the nonce: they only have to be the same for A and B.
    let bits = u64::from_str_radix(&tag[1..], 16).expect("hex nonce");
    let port = (20_000 + bits % 20_000).to_string();
    let key = (1 + (bits >> 16) % 0x7fff_0000).to_string();
    let body_a = json!({"language": "python", "code": format!("{PY_COMMON}{PY_A}"),
                        "stdin": secret, "args": [tag_a, port, key, abstract_name], "timeout": 15});
    let body_b = json!({"language": "python", "code": format!("{PY_COMMON}{PY_B}"),
                        "stdin": secret, "args": [tag_b, port, key, abstract_name], "timeout": 15});

    let done = AtomicBool::new(false);
    // (uids of A's processes, uids of B's processes, a sample saw both at once)
    let seen: Mutex<(BTreeSet<u32>, BTreeSet<u32>, bool)> = Mutex::default();
    let (ra, rb) = std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let (mut a_now, mut b_now) = (false, false);
                for (pid, _comm) in box_processes() {
                    let cmd = host_cmdline(pid);
                    let Some((ruid, euid)) = host_uids(pid) else {
                        continue;
                    };
                    let mut g = seen.lock().unwrap_or_else(|p| p.into_inner());
                    if cmd.contains(&tag_a) {
                        g.0.extend([ruid, euid]);
                        a_now = true;
                    } else if cmd.contains(&tag_b) {
                        g.1.extend([ruid, euid]);
                        b_now = true;
                    }
                }
                if a_now && b_now {
                    seen.lock().unwrap_or_else(|p| p.into_inner()).2 = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let a = sc.spawn(|| s.run(body_a));
        std::thread::sleep(Duration::from_millis(500));
        let rb = s.run(body_b);
        let ra = a.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        done.store(true, Ordering::SeqCst);
        (ra, rb)
    });
    let a = probe(&ra);
    let b = probe(&rb);
    assert_eq!(a["uid"], 1000, "{a}");
    assert_eq!(b["uid"], 1000, "{b}");
    let own_a: Vec<&str> = a["own_hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        ["/work/secret", "/tmp/secret", "/dev/shm/secret"]
            .iter()
            .all(|p| own_a.contains(&format!("content {p}").as_str())),
        "positive control: A's search does not find what A wrote: {a}"
    );
    assert_eq!(a["shm_created"], "id", "{a}");
    assert_eq!(
        a["own_shm"], "id",
        "positive control: A cannot find its own segment: {a}"
    );
    assert_eq!(a["own_tcp"], "connected", "positive control: {a}");
    assert_eq!(a["own_abstract"], "connected", "positive control: {a}");
    assert_eq!(b["hits"], json!([]), "B found A's secret: {b}");
    assert_eq!(b["tcp"], "ECONNREFUSED", "B reached A's loopback port: {b}");
    assert_eq!(
        b["abstract"], "ECONNREFUSED",
        "B reached A's abstract socket: {b}"
    );
    assert_eq!(b["shm"], "ENOENT", "B sees A's shared memory: {b}");
    assert_eq!(
        b["own_bind"], "bound",
        "positive control: A's port is taken in B's box: {b}"
    );
    assert_eq!(
        b["own_hits"],
        json!(["content /tmp/mine"]),
        "positive control: B's search misses its own marker: {b}"
    );
    assert_eq!(b["pids"], json!([1, 2]), "B sees other processes: {b}");
    // B received the secret on stdin and never prints it; only a leak would put it there.
    assert!(
        !rb.to_string().contains(&secret),
        "B's response holds A's secret: {}",
        brief(&rb)
    );

    let (uids_a, uids_b, overlap) = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(
        overlap,
        "the two runs were never seen running at once (A {uids_a:?}, B {uids_b:?}): the test proves nothing"
    );
    for uid in uids_a.iter().chain(&uids_b) {
        assert!(
            BOX_UID_RANGE.contains(uid),
            "a box process runs as host uid {uid}, outside the box range"
        );
    }
    assert!(
        uids_a.is_disjoint(&uids_b),
        "the two concurrent runs share a host uid: A {uids_a:?}, B {uids_b:?}"
    );
}
