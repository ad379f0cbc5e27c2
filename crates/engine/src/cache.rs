//! The compile cache: a compiler's artefact (a Rust binary, a TypeScript bundle) and its
//! messages, keyed by a SHA-256 of everything that can change them — the language, the
//! compiler's identity and version, the expanded command and environment, and every input
//! file's name, mode and bytes. A hit skips the compile box entirely.
//!
//! On disk: `<dir>/<key>.bin` (the artefact) and `<key>.out` (the compiler's output). An entry
//! is written to a temp file and renamed into place, `.out` first, so a reader never sees half
//! an entry, and several servers may share one dir. A hit hard-links the artefact into the
//! caller's scratch path, so eviction never pulls a file from under a run. Eviction keeps the
//! total under `max_bytes`, least recently used first (a hit refreshes the entry's mtime).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
    /// What this process believes the dir holds: the scan at open plus every put since. A
    /// put scans the dir (the truth, other servers' entries included) only when this passes
    /// `max_bytes`, so a put costs two small writes, not a stat of every entry.
    estimate: AtomicU64,
}

/// A cached compile: the compiler's output text (warnings).
pub struct Hit {
    pub compile_output: String,
}

impl CompileCache {
    pub fn open(dir: PathBuf, max_bytes: u64) -> io::Result<CompileCache> {
        fs::create_dir_all(&dir)?;
        let cache = CompileCache {
            dir,
            max_bytes,
            estimate: AtomicU64::new(0),
        };
        cache.evict();
        Ok(cache)
    }

    /// The key of a compile: every part is length-prefixed so no two inputs collide by
    /// concatenation.
    pub fn key<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{key}.bin")),
            self.dir.join(format!("{key}.out")),
        )
    }

    /// Looks `key` up; on a hit, hard-links (or copies) the artefact to `dest`.
    pub fn get(&self, key: &str, dest: &Path) -> Option<Hit> {
        let (bin, out) = self.paths(key);
        let compile_output = fs::read_to_string(&out).ok()?;
        if fs::hard_link(&bin, dest).is_err() {
            fs::copy(&bin, dest).ok()?;
        }
        // Refresh the entry for LRU; failure only makes eviction less precise.
        if let Ok(f) = fs::File::options().write(true).open(&bin) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(Hit { compile_output })
    }

    /// Stores `artefact` (left in place) and its compiler output under `key`, then evicts.
    pub fn put(&self, key: &str, artefact: &Path, compile_output: &str) -> io::Result<()> {
        let (bin, out) = self.paths(key);
        let tmp = |ext: &str| {
            self.dir.join(format!(
                ".tmp-{}-{}-{ext}",
                std::process::id(),
                crate::unique()
            ))
        };
        let tmp_out = tmp("out");
        fs::write(&tmp_out, compile_output)?;
        fs::rename(&tmp_out, &out)?;
        let tmp_bin = tmp("bin");
        let len = fs::copy(artefact, &tmp_bin)?;
        fs::rename(&tmp_bin, &bin)?;
        let added = len + compile_output.len() as u64;
        if self.estimate.fetch_add(added, Ordering::Relaxed) + added > self.max_bytes {
            self.evict();
        }
        Ok(())
    }

    /// Removes least recently used entries until the total is under the cap, and records
    /// the total left.
    fn evict(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut bins: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let mut total = 0u64;
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            total += meta.len();
            if path.extension().is_some_and(|x| x == "bin") {
                bins.push((
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                    path,
                ));
            }
        }
        if total <= self.max_bytes {
            self.estimate.store(total, Ordering::Relaxed);
            return;
        }
        bins.sort();
        // Down to 90% of the cap, so a full cache is scanned once per tenth of its size put,
        // not on every put.
        let low_water = self.max_bytes / 10 * 9;
        for (_, len, bin) in bins {
            if total <= low_water {
                break;
            }
            let out = bin.with_extension("out");
            let out_len = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            // The artefact goes first: without it the entry is a miss.
            if fs::remove_file(&bin).is_ok() {
                total = total.saturating_sub(len);
            }
            if fs::remove_file(&out).is_ok() {
                total = total.saturating_sub(out_len);
            }
        }
        self.estimate.store(total, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_their_parts() {
        let a = CompileCache::key([&b"ab"[..], b"c"]);
        let b = CompileCache::key([&b"a"[..], b"bc"]);
        assert_ne!(a, b);
        assert_eq!(a, CompileCache::key([&b"ab"[..], b"c"]));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn a_second_server_on_the_dir_counts_the_first_ones_entries() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let art = scratch.path().join("art");
        fs::write(&art, vec![1u8; 1000]).unwrap();
        let a = CompileCache::open(dir.path().join("c"), 2500).unwrap();
        a.put("k1", &art, "").unwrap();
        a.put("k2", &art, "").unwrap();
        let b = CompileCache::open(dir.path().join("c"), 2500).unwrap();
        b.put("k3", &art, "").unwrap();
        let total: u64 = fs::read_dir(dir.path().join("c"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= 2250, "evicted down to 90% of the cap: {total}");
        assert!(b.get("k3", &scratch.path().join("h3")).is_some());
    }

    #[test]
    fn put_get_and_lru_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path().join("c"), 2500).unwrap();
        let art = scratch.path().join("art");
        fs::write(&art, vec![1u8; 1000]).unwrap();
        assert!(cache.get("k1", &scratch.path().join("x")).is_none());
        cache.put("k1", &art, "warning: one").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("k2", &art, "").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Touch k1 so k2 is the least recently used.
        let hit = cache.get("k1", &scratch.path().join("h1")).unwrap();
        assert_eq!(hit.compile_output, "warning: one");
        assert_eq!(
            fs::read(scratch.path().join("h1")).unwrap(),
            vec![1u8; 1000]
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("k3", &art, "").unwrap();
        assert!(
            cache.get("k2", &scratch.path().join("h2")).is_none(),
            "LRU entry evicted"
        );
        assert!(cache.get("k1", &scratch.path().join("h1b")).is_some());
        assert!(cache.get("k3", &scratch.path().join("h3")).is_some());
    }
}
