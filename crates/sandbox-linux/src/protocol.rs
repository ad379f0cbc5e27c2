//! The wire format between the server (`LinuxBackend`) and one box helper process.
//!
//! The server writes a [`Request`] to the helper's stdin; the helper writes a [`Report`] to its
//! stdout. Each message is a sequence of frames: an 8-byte little-endian length, then that many
//! bytes. Request: JSON header, then the program's stdin. Report: JSON header, then stdout, then
//! stderr. Raw bytes travel outside the JSON so binary output and a megabyte of stdin cost no
//! escaping. The helper sends its report as soon as the box's init is reaped, and removes the
//! box after that; the server reads exactly three frames, not to end of file.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use coderun_sandbox::{BoxSpec, LimitHit, Termination};
use serde::{Deserialize, Serialize};

use crate::cgroup::Layout;

/// Frames larger than this are refused (stdin and output are capped far below it).
const MAX_FRAME: u64 = 256 << 20;

/// Everything one helper needs; prepared by the server so the helper decides nothing by itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub spec: BoxSpec,
    /// Unique name of the box: its state dir and its cgroup are called this.
    pub box_name: String,
    /// The server instance's state directory (`<state_root>/instances/<instance>`).
    pub instance_dir: PathBuf,
    /// Directory of the per-box uid/gid lock files, shared by every instance on the host.
    pub uid_lock_dir: PathBuf,
    /// First host uid/gid handed to boxes, and how many box slots exist (two ids per slot).
    pub uid_base: u32,
    pub uid_slots: u32,
    /// Cgroup layout and the server instance's cgroup name. Every box has a cgroup: there is
    /// no way to ask for a box without one.
    pub cgroup: (Layout, String),
    /// Runtime mounts already materialised in the runtime store: (store dir, path in box).
    pub mounts: Vec<(PathBuf, PathBuf)>,
    /// The seccomp policy text to compile and install.
    pub seccomp_policy: String,
    /// What the helper is started for.
    pub mode: Mode,
}

/// What a helper is started for. The two warm modes answer a `{"ready":true}` frame once
/// the box is set up, then wait for a [`Handoff`] and the program's stdin (see
/// [`crate::runner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Run the spec's program now.
    Fresh,
    /// Start the spec's program (a runner) now; it waits on its fd 3 for the program.
    Runner,
    /// Confine the program's process up to its exec and park it there; the hand-off says
    /// what to execute.
    Parked,
}

impl Mode {
    pub fn warm(self) -> bool {
        self != Mode::Fresh
    }
}

/// What a warm box receives when a request takes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handoff {
    pub program: HandoffProgram,
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    pub output_bytes: u64,
}

/// The program, in the form the box's mode takes.
#[derive(Debug, Serialize, Deserialize)]
pub enum HandoffProgram {
    /// For a runner: written verbatim to its fd 3 (the runner's JSON message).
    Runner { message: String },
    /// For a parked box: the helper sends it to the parked process as an [`ExecHeader`]
    /// frame and one frame per file (host files read by the helper).
    Parked {
        argv: Vec<String>,
        files: Vec<coderun_sandbox::InputFile>,
    },
}

/// First frame the parked process reads on its fd 3; a content frame per file follows.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecHeader {
    pub argv: Vec<String>,
    /// (path in /work, executable)
    pub files: Vec<(String, bool)>,
}

/// What the helper answers: either the program's outcome or why the box failed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub result: Result<ReportOutcome, ReportError>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReportOutcome {
    pub termination: Termination,
    pub limit: Option<LimitHit>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub wall_time_us: u64,
    pub cpu_time_us: u64,
    pub memory_peak_kb: u64,
    pub collected: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReportError {
    pub step: String,
    pub message: String,
}

pub fn write_frame(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(&(bytes.len() as u64).to_le_bytes())?;
    w.write_all(bytes)
}

pub fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let mut buf = vec![0u8; checked_len(u64::from_le_bytes(len))?];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// A frame header's length, refused over [`MAX_FRAME`].
pub fn checked_len(len: u64) -> io::Result<usize> {
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    Ok(len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{}").unwrap();
        write_frame(&mut buf, b"").unwrap();
        write_frame(&mut buf, &[0xff, 0]).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap(), b"{}");
        assert_eq!(read_frame(&mut r).unwrap(), b"");
        assert_eq!(read_frame(&mut r).unwrap(), [0xff, 0]);
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        assert!(read_frame(&mut &buf[..buf.len() - 1]).is_err());
        assert!(read_frame(&mut &buf[..4]).is_err());
        let huge = (MAX_FRAME + 1).to_le_bytes();
        assert!(read_frame(&mut &huge[..]).is_err());
    }
}
