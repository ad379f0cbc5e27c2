//! Host uid/gid slots: every concurrent box runs under its own pair of unprivileged host ids,
//! so processes of two boxes never share an owner. A slot is held by an `flock` on
//! `<lock_dir>/<slot>` for as long as the helper lives; the kernel drops the lock if the helper
//! dies, so a crash never leaks a slot. The lock dir is shared by every instance on the host.
//!
//! Slots are taken lowest free first, so the lock dir holds one file per slot up to the peak
//! number of boxes that ever ran at once, not one per slot ever tried. A slot's file is never
//! removed: if one process unlinked it while another had just opened it, a third could create
//! a fresh file of the same name and lock it too, and two boxes would share a host uid.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A held slot: host ids `first` (box root) and `first + 1` (the program).
#[derive(Debug)]
pub struct Slot {
    pub first: u32,
    _lock: File,
}

impl Slot {
    pub fn acquire(lock_dir: &Path, base: u32, slots: u32) -> io::Result<Slot> {
        fs::create_dir_all(lock_dir)?;
        for slot in 0..slots {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .custom_flags_nofollow()
                .open(lock_dir.join(slot.to_string()))?;
            // SAFETY: flock on an fd we own.
            let ret = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if ret == 0 {
                return Ok(Slot {
                    first: base + 2 * slot,
                    _lock: file,
                });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "all {slots} uid slots under {} are in use",
                lock_dir.display()
            ),
        ))
    }
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = Slot::acquire(dir.path(), 100_000, 2).unwrap();
        let b = Slot::acquire(dir.path(), 100_000, 2).unwrap();
        assert_ne!(a.first, b.first);
        assert!(Slot::acquire(dir.path(), 100_000, 2).is_err());
        drop(a);
        assert!(Slot::acquire(dir.path(), 100_000, 2).is_ok());
    }

    fn slot_of(s: &Slot) -> u32 {
        (s.first - 100_000) / 2
    }

    #[test]
    fn the_lowest_free_slot_is_taken_first_and_files_stop_at_the_peak() {
        let dir = tempfile::tempdir().unwrap();
        let take = || Slot::acquire(dir.path(), 100_000, 64).unwrap();
        let a = take();
        let b = take();
        assert_eq!((slot_of(&a), slot_of(&b)), (0, 1));
        let c = take();
        assert_eq!(slot_of(&c), 2);
        drop(a);
        let d = take();
        assert_eq!(
            slot_of(&d),
            0,
            "a released slot is the first one taken again"
        );
        drop((b, c, d));
        // Three boxes at most ran at once: three lock files, none removed.
        for _ in 0..10 {
            let e = take();
            assert_eq!(slot_of(&e), 0);
        }
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["0", "1", "2"]);
    }
}
